"""Every failure of an S3 request as S3 reports it: an ``S3Error`` from the ``kmsgate.s3.errors`` tree.

``to_s3_error`` translates, in one place, what the layers below raise: the S3 wire format's own
errors pass through; storage errors keep their S3 code; SigV4 failures become S3's
authentication codes (``SignatureDoesNotMatch``, ``InvalidAccessKeyId``,
``RequestTimeTooSkewed``, ``AuthorizationHeaderMalformed``, ``AccessDenied``); a KMS failure is
``error_for_kms`` of its AWS code; the gateway's own errors (``GatewayError``) map by code.
Messages come from those classes, which carry no secrets; anything unknown is
``InternalError`` with S3's generic text. A failing storage upstream (``--storage s3``) is
kmsgate's own ``BadGateway`` (502), or ``GatewayTimeout`` (504) past its deadline: S3 has no
such codes, but the shape is S3's and every SDK retries these statuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from kmsgate.core.errors import (
    AccessDeniedError,
    IncompleteSignatureError,
    InvalidSignatureError,
    InvalidUriError,
    KmsError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from kmsgate.gateway import storage
from kmsgate.gateway.errors import GatewayError, to_gateway_error
from kmsgate.gateway.sealed_metadata import MetadataError
from kmsgate.s3 import errors as s3


class InvalidURI(s3.S3Error):
    code, status = "InvalidURI", 400
    default_message = "Couldn't parse the specified URI."


class RequestTimeout(s3.S3Error):
    code, status = "RequestTimeout", 400
    default_message = "Your socket connection to the server was not read from or written to within the timeout period."


class IncompleteBody(s3.S3Error):
    code, status = "IncompleteBody", 400
    default_message = "You did not provide the number of bytes specified by the Content-Length HTTP header."


class BadGateway(s3.S3Error):
    """The storage upstream (the S3 endpoint of ``--storage s3``) failed. kmsgate's own code: S3
    has no 502 error; SDKs retry a 502 as they retry a 500 or 503."""

    code, status = "BadGateway", 502
    default_message = "The storage upstream failed; please try again."


class GatewayTimeout(s3.S3Error):
    """The storage upstream did not answer within its deadline (``--s3-timeout``). kmsgate's
    own code: S3 has no 504 error; SDKs retry a 504 as they retry a 500 or 503."""

    code, status = "GatewayTimeout", 504
    default_message = "The storage upstream did not answer in time; please try again."


class ObjectCorrupt(s3.InternalError):
    """A stored object that failed authentication (moved, truncated or tampered with in storage)."""

    default_message = "The stored object failed authentication."


class EncryptionContextMismatch(s3.InvalidArgument):
    default_message = "The encryption context does not match the one the object was encrypted with."


_SKEW_PREFIXES = ("Signature expired", "Signature not yet current")
_SCOPE_PREFIXES = ("Credential should be scoped", "Date in Credential scope")


def auth_error(exc: KmsError) -> s3.S3Error:
    """A SigV4 failure as S3 reports it."""
    message = exc.message
    if isinstance(exc, UnrecognizedClientError):
        return s3.InvalidAccessKeyId()
    if isinstance(exc, InvalidSignatureError):
        if message.startswith(_SKEW_PREFIXES):
            return s3.RequestTimeTooSkewed()
        if message.startswith(_SCOPE_PREFIXES):
            return s3.AuthorizationHeaderMalformed(message)
        if "x-amz-content-sha256" in message:
            return s3.XAmzContentSHA256Mismatch()
        return s3.SignatureDoesNotMatch()
    if isinstance(exc, IncompleteSignatureError):
        return s3.AuthorizationHeaderMalformed(message)
    if isinstance(exc, MissingAuthenticationTokenError):
        return s3.AccessDenied("Anonymous access is not allowed.")
    if isinstance(exc, AccessDeniedError):
        return s3.AccessDenied(message)
    if isinstance(exc, InvalidUriError):
        return InvalidURI(message)
    return s3.InternalError()


def _storage_error(exc: storage.StorageError) -> s3.S3Error:
    if isinstance(exc, storage.ObjectNotFound):
        return s3.NoSuchKey()
    if isinstance(exc, storage.NoSuchBucket):
        return s3.NoSuchBucket()
    if isinstance(exc, storage.BucketAlreadyExists):
        return s3.BucketAlreadyOwnedByYou()  # one account owns every bucket here
    if isinstance(exc, storage.BucketNotEmpty):
        return s3.BucketNotEmpty()
    if isinstance(exc, storage.NoSuchUpload):
        return s3.NoSuchUpload()
    if isinstance(exc, storage.InvalidArgument):
        return s3.InvalidArgument()
    if isinstance(exc, storage.StorageFull):
        return s3.ServiceUnavailable()
    if isinstance(exc, storage.StorageUpstreamTimeout):
        return GatewayTimeout()
    if isinstance(exc, storage.StorageUpstreamError):
        return BadGateway()
    return s3.InternalError()


# The gateway's own codes that have an S3 counterpart (KMS codes go through error_for_kms).
_BY_GATEWAY_CODE: Mapping[str, type[s3.S3Error]] = {
    "AccessDenied": s3.AccessDenied,
    "NoSuchKey": s3.NoSuchKey,
    "InvalidRange": s3.InvalidRange,
    "EntityTooLarge": s3.EntityTooLarge,
    "XAmzContentSHA256Mismatch": s3.XAmzContentSHA256Mismatch,
    "SlowDown": s3.SlowDown,
    "KMSUnavailable": s3.ServiceUnavailable,
    "RequestTimeout": RequestTimeout,
    "InvalidURI": InvalidURI,
    "ObjectCorrupt": ObjectCorrupt,
    "EncryptionContextMismatch": EncryptionContextMismatch,
    "InvalidObjectKey": s3.KeyTooLongError,
    "InvalidPart": s3.InvalidPart,
    "InvalidPartNumber": s3.InvalidPartNumber,
    "InvalidPartOrder": s3.InvalidPartOrder,
    "EntityTooSmall": s3.EntityTooSmall,
    "MalformedXML": s3.MalformedXML,
    "MetadataTooLarge": s3.MetadataTooLarge,
    "IncompleteBody": IncompleteBody,
    "StorageError": s3.InternalError,
    "StorageTimeout": GatewayTimeout,
    "InternalError": s3.InternalError,
}


def _from_gateway(err: GatewayError) -> s3.S3Error:
    known = _BY_GATEWAY_CODE.get(err.code)
    if known is not None:
        return known(err.message) if known not in (s3.InternalError, s3.SlowDown, s3.ServiceUnavailable) else known()
    if err.status == 503:  # a KMS code with the KMS unavailable
        return s3.ServiceUnavailable()
    if err.status in (400, 403) and err.code != "InvalidArgument":
        return s3.error_for_kms(err.code, err.message)
    if err.status < 500:
        return s3.InvalidArgument(err.message)
    return s3.InternalError()


def to_s3_error(exc: BaseException) -> s3.S3Error:
    """What an S3 client is told about ``exc`` (see the module docstring)."""
    if isinstance(exc, s3.S3Error):
        return exc
    if isinstance(exc, storage.StorageError):
        return _storage_error(exc)
    if isinstance(exc, KmsError) and _is_auth_error(exc):
        return auth_error(exc)
    if isinstance(exc, MetadataError):
        return ObjectCorrupt()
    return _from_gateway(to_gateway_error(exc))


def _is_auth_error(exc: KmsError) -> bool:
    return isinstance(exc, (UnrecognizedClientError, InvalidSignatureError, IncompleteSignatureError,
                            MissingAuthenticationTokenError, InvalidUriError))


def retry_after(exc: BaseException) -> int | None:
    """The ``Retry-After`` seconds the gateway attaches to a failure, if any: the same as
    ``/v1`` gives for it (a KMS that is unavailable or slower than its deadline, a full storage,
    a saturated gateway)."""
    if isinstance(exc, s3.S3Error):
        return None
    return to_gateway_error(exc).retry_after
