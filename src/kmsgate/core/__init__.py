"""Pure, synchronous building blocks: formats, crypto, validation. No I/O, no asyncio."""
