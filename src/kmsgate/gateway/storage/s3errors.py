"""The S3 client's failures, translated once into the storage errors (``kmsgate.gateway.storage.base``)."""

from __future__ import annotations

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from kmsgate.gateway.storage.base import (
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    ObjectNotFound,
    StorageError,
)

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)
CLIENT_ERRORS: tuple[type[BaseException], ...] = TRANSPORT_ERRORS + (ClientError,)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TYPED_CODES: dict[str, type[StorageError]] = {
    "NoSuchUpload": NoSuchUpload,
    "InvalidPart": InvalidPart,
    "InvalidPartOrder": InvalidPartOrder,
    "EntityTooSmall": EntityTooSmall,
}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: BaseException, what: str) -> StorageError:
    """One place that turns an S3 client failure into our storage errors. The upstream's own
    ``NoSuchBucket`` is a misconfiguration (``StorageError``), not a missing bucket of ours."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _NOT_FOUND_CODES:
            return ObjectNotFound(what)
        if code in _TYPED_CODES:
            return _TYPED_CODES[code](what)
        return StorageError(f"s3 {what} failed: {code or 'error'}")
    return StorageError(f"s3 {what} failed: {type(exc).__name__}")


def clean_etag(raw: object) -> str:
    return str(raw or "").strip('"')
