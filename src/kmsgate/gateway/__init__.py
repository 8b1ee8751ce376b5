"""The envelope-encryption gateway: HTTP routes that encrypt into storage, metrics and workers."""
