"""Storage backends for encrypted objects, behind the ``Storage`` protocol."""

from kmsgate.gateway.storage.base import (
    ObjectNotFound,
    ObjectReader,
    ObjectWriter,
    Storage,
    StorageError,
    StoredObject,
)
from kmsgate.gateway.storage.file import FileStorage

__all__ = [
    "FileStorage",
    "ObjectNotFound",
    "ObjectReader",
    "ObjectWriter",
    "Storage",
    "StorageError",
    "StoredObject",
]
