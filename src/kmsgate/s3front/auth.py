"""Who sent an S3 request: SigV4 as S3 accepts it, checked before anything is read or stored.

* A presigned URL (``X-Amz-Algorithm``/``X-Amz-Signature`` in the query, at most 7 days):
  the payload is unsigned, as S3 presigns it.
* An ``Authorization: AWS4-HMAC-SHA256 ...`` header. ``x-amz-content-sha256`` says what the
  signature covers: a SHA-256 hex digest (the body is hashed as it streams and a mismatch
  fails it before anything is committed), ``UNSIGNED-PAYLOAD``, or a streaming mode
  (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``, ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``):
  the body is ``aws-chunked`` and is decoded through ``chunk_verifier()``, which releases no
  chunk before its signature verified. A request with a body must send the header, as S3
  requires; a bodiless one may leave it out (the signature then covers the empty body).
* Nothing: ``AccessDenied`` (no anonymous access). SigV2 (``Authorization: AWS ...``, or a
  presigned URL with ``AWSAccessKeyId``): ``InvalidRequest``, as S3 answers in regions that
  only accept SigV4 (boto3 presigns with SigV4 given ``signature_version="s3v4"``).

With authentication turned off (``--insecure-no-auth``) every request acts as the account root.
Failures are S3's codes (``kmsgate.s3front.errors.auth_error``).
"""

from __future__ import annotations

from aiohttp import web

from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.auth.sigv4_canonical import UNSIGNED_PAYLOAD
from kmsgate.auth.sigv4_chunked import SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER
from kmsgate.core.errors import KmsError
from kmsgate.core.principal import Caller
from kmsgate.gateway.auth import PayloadCheck
from kmsgate.web.exchange import Authenticated
from kmsgate.s3.errors import AccessDenied, InvalidRequest, MissingContentLength
from kmsgate.s3front.errors import auth_error

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
PAYLOAD_HASH_HEADER = "x-amz-content-sha256"
DECODED_LENGTH_HEADER = "x-amz-decoded-content-length"
_PRESIGNED_MARKERS = ("X-Amz-Signature=", "X-Amz-Algorithm=")
_STREAMING = (*SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER)


def _has_body(request: web.Request) -> bool:
    length = request.content_length
    return (length is not None and length > 0) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _decoded_length(request: web.Request) -> int:
    value = request.headers.get(DECODED_LENGTH_HEADER)
    if value is None or not value.isdigit() or len(value) > 19:
        raise MissingContentLength("A streaming upload must send x-amz-decoded-content-length.")
    return int(value)


class S3Authenticator:
    """SigV4 for the S3 API over one verifier (service ``s3``, unsigned and streaming payloads allowed);
    ``verifier=None`` trusts every request as ``trusted`` (authentication turned off)."""

    def __init__(self, verifier: SigV4Verifier | None, trusted: Caller | None = None) -> None:
        if verifier is None and trusted is None:
            raise ValueError("without a verifier, a trusted caller is needed")
        self._verifier = verifier
        self._trusted = trusted

    def authenticate(self, request: web.Request) -> Authenticated:
        if self._verifier is None:
            trusted = self._trusted
            if trusted is None:  # pragma: no cover - refused by __init__
                raise RuntimeError("no verifier and no trusted caller")
            return Authenticated(Caller(arn=trusted.arn, account_id=trusted.account_id, source_ip=request.remote))
        try:
            return self._authenticate(self._verifier, request)
        except KmsError as exc:
            raise auth_error(exc) from None

    def _authenticate(self, verifier: SigV4Verifier, request: web.Request) -> Authenticated:
        path, _, query = request.raw_path.partition("?")
        authorization = request.headers.get("Authorization")
        headers = request.headers.items()
        if authorization is None and any(marker in query for marker in _PRESIGNED_MARKERS):
            pending = verifier.check_presigned(request.method, path, query, headers, source_ip=request.remote)
            return Authenticated(pending.verify_declared_payload())
        if authorization is None and "AWSAccessKeyId=" not in query:
            raise AccessDenied("Anonymous access is not allowed.")
        if authorization is None or not authorization.lstrip().startswith(SIGV4_ALGORITHM):
            raise InvalidRequest("The authorization mechanism you have provided is not supported. "
                                 "Please use AWS4-HMAC-SHA256.")
        pending = verifier.check_headers(request.method, path, query, headers, source_ip=request.remote)
        declared = pending.declared_payload_hash
        if declared is None:
            if _has_body(request):
                raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
            return Authenticated(pending.verify_body(b""))
        caller = pending.verify_declared_payload()
        if declared in _STREAMING:
            return Authenticated(caller, chunk_verifier=pending.chunk_verifier(decoded_length=_decoded_length(request)))
        if declared == UNSIGNED_PAYLOAD:
            return Authenticated(caller)
        return Authenticated(caller, payload_check=PayloadCheck(declared))
