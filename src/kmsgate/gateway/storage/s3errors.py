"""The S3 client's failures, translated once into the storage errors (``kmsgate.gateway.storage.base``)."""

from __future__ import annotations

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from kmsgate.gateway.storage.base import (
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    ObjectNotFound,
    StorageError,
    StorageUpstreamError,
    StorageUpstreamTimeout,
)

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)
CLIENT_ERRORS: tuple[type[BaseException], ...] = TRANSPORT_ERRORS + (ClientError,)
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (ConnectTimeoutError, ReadTimeoutError, TimeoutError)
"""The upstream did not answer in time (botocore's own, and aiohttp's, which are ``TimeoutError``)."""
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
    """One place that turns an S3 client failure into our storage errors. Any other error the
    upstream answers (a 500, a 503, an ``AccessDenied``; its own ``NoSuchBucket`` is a
    misconfiguration, not a missing bucket of ours) and a broken connection are
    ``StorageUpstreamError``; no answer within the deadline is ``StorageUpstreamTimeout``."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _NOT_FOUND_CODES:
            return ObjectNotFound(what)
        if code in _TYPED_CODES:
            return _TYPED_CODES[code](what)
        return StorageUpstreamError(f"s3 {what} failed: {code or 'error'}")
    if isinstance(exc, TIMEOUT_ERRORS):
        return StorageUpstreamTimeout(f"s3 {what} timed out")
    return StorageUpstreamError(f"s3 {what} failed: {type(exc).__name__}")


def clean_etag(raw: object) -> str:
    return str(raw or "").strip('"')
