"""Gateway errors: one tree with each failure's code and HTTP status, for every front to render.

Every failure the gateway's services report goes through ``to_gateway_error``; the ``/v1``
routes render it as ``{"error": "<Code>", "message": "..."}`` in one place
(``kmsgate.gateway.exchange.error_response``). Status codes:

====  ==================================================================================
401   no, unknown or invalid credentials (the AWS code, e.g. ``InvalidSignatureException``;
      with ``WWW-Authenticate``)
400   bad input (object key, headers, range syntax, a message that does not decrypt,
      KMS client errors such as ``NotFoundException`` or ``DisabledException``; the AWS
      code is kept)
403   not permitted: ``AccessDenied`` when the caller's identity policy does not allow the
      object action (``kmsgate.gateway.object_access``), ``AccessDeniedException`` from the
      KMS when its key policy or grants do not allow the operation under this key and context
404   no such object
408   the client stopped sending its body (``--body-read-timeout``)
413   body larger than the configured maximum
415   a compressed body (``Content-Encoding``); bodies are never inflated
416   range not satisfiable
502   the storage backend failed (``StorageError``)
503   the KMS is unavailable, or the gateway is saturated (always with ``Retry-After``)
504   the storage upstream (``--storage s3``) did not answer within ``--s3-timeout``
      (``StorageTimeout``)
====  ==================================================================================

Messages are fixed strings or come from exception classes whose messages are known to
carry no secrets (KMS errors, storage errors); decryption failures always report the
single ``DecryptionError.PUBLIC_MESSAGE``.
"""

from __future__ import annotations

from collections.abc import Mapping

from kmsgate.core.errors import AccessDeniedError, ClientError, KmsError
from kmsgate.web.connections import BodyReadTimeout
from kmsgate.envelope.errors import DataKeyUnavailableError, DecryptionError, EncryptionError
from kmsgate.envelope.pool import PoolSaturated
from kmsgate.gateway.headers import HeaderError
from kmsgate.gateway.keys import InvalidObjectKey
from kmsgate.gateway.storage.base import ObjectNotFound, StorageError, StorageFull, StorageUpstreamTimeout

RETRY_AFTER_SECONDS = 1


class GatewayError(Exception):
    """An error with its HTTP status and code, ready to render."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class KmsUnavailableError(Exception):
    """The KMS could not be reached or timed out (raised by the gateway's KMS adapter)."""


def corrupt() -> GatewayError:
    """A stored object that failed authentication (truncated, tampered, moved to another name)."""
    return GatewayError(502, "ObjectCorrupt", "The stored object failed authentication.")


def saturated() -> GatewayError:
    return GatewayError(503, "SlowDown", "The gateway is saturated; retry later.", retry_after=RETRY_AFTER_SECONDS)


def compressed_body() -> GatewayError:
    return GatewayError(415, "UnsupportedMediaType", "Compressed request bodies (Content-Encoding) are not accepted.")


def bad_request(code: str, message: str) -> GatewayError:
    return GatewayError(400, code, message)


def to_gateway_error(exc: BaseException) -> GatewayError:
    """Translate any known failure into the status and code a client sees."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, InvalidObjectKey):
        return GatewayError(400, "InvalidObjectKey", str(exc))
    if isinstance(exc, HeaderError):
        return GatewayError(400, "InvalidArgument", str(exc))
    if isinstance(exc, PoolSaturated):
        return saturated()
    if isinstance(exc, ObjectNotFound):
        return GatewayError(404, "NoSuchKey", "The object does not exist.")
    if isinstance(exc, StorageFull):
        return GatewayError(507, "InsufficientStorage", "The storage has no space left; retry later.",
                            retry_after=RETRY_AFTER_SECONDS)
    if isinstance(exc, StorageUpstreamTimeout):
        return GatewayError(504, "StorageTimeout", "The storage backend did not answer in time.")
    if isinstance(exc, StorageError):
        return GatewayError(502, "StorageError", "The storage backend failed.")
    if isinstance(exc, DataKeyUnavailableError) and isinstance(exc.__cause__, KmsError):
        return to_gateway_error(exc.__cause__)  # the KMS refused: keep its AWS code
    if isinstance(exc, DecryptionError):
        return GatewayError(400, "DecryptionFailed", DecryptionError.PUBLIC_MESSAGE)
    if isinstance(exc, EncryptionError):
        return GatewayError(400, "InvalidArgument", str(exc))
    if isinstance(exc, AccessDeniedError):
        return GatewayError(403, exc.code, exc.message)
    if isinstance(exc, ClientError):
        return GatewayError(400, exc.code, exc.message)
    if isinstance(exc, BodyReadTimeout):
        return GatewayError(408, "RequestTimeout", BodyReadTimeout.MESSAGE)
    if isinstance(exc, (KmsError, KmsUnavailableError, TimeoutError)):
        code = exc.code if isinstance(exc, KmsError) else "KMSUnavailable"
        return GatewayError(503, code, "The KMS is unavailable; retry later.", retry_after=RETRY_AFTER_SECONDS)
    return GatewayError(500, "InternalError", "Internal error.")
