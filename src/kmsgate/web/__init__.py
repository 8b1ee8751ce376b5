"""Protocol adapters: thin aiohttp layers over the services."""
