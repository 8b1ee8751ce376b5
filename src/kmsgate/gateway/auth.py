"""Who is calling a gateway route: authentication before anything is read or stored.

Every ``/v1/...`` request carries one of:

* ``Authorization: Bearer <token>``: a token declared for a principal in the identities file
  (the account root's from ``KMSGATE_ROOT_TOKEN``).
* An S3-style SigV4 header signature (credential scope ``<day>/<region>/s3/aws4_request``), as
  ``curl --aws-sigv4 "aws:amz:<region>:s3"`` and botocore's ``S3SigV4Auth`` produce it. The
  signature covers the method, path, query, the signed headers and ``x-amz-content-sha256``.

A failure is answered 401 with the AWS code (``MissingAuthenticationTokenException``,
``UnrecognizedClientException``, ``InvalidSignatureException``, ``IncompleteSignatureException``)
and a ``WWW-Authenticate`` challenge. A SigV4 request whose target the router cannot route
unambiguously (a ``#`` fragment, an invalid percent-escape such as ``%FF`` or ``%G1``) is answered
400 ``InvalidURI`` before anything else: the signature covers exactly the routed path.

A SigV4 request is checked in two phases (``kmsgate.auth.sigv4``): first its headers alone
(credential syntax, access key, session token, scope, date, signed headers), so a request from an
unknown key or with a bad scope or date is answered without a byte of its body read; then its
signature over the payload hash.

The payload of a signed request is never buffered to check its hash. ``x-amz-content-sha256``
(required, single and signed whenever the request has a body) is one of:

* ``UNSIGNED-PAYLOAD``: the body is not covered by the signature, as S3 allows.
* 64 lowercase hex digits: the signature is verified over this declared hash at once; the body
  is hashed as it streams in (``PayloadCheck``) and a mismatch found at its end fails the
  request with 400 ``XAmzContentSHA256Mismatch`` before anything is committed: a PUT stores
  nothing, ``/v1/encrypt`` never sends its final frame (the message does not decrypt) and
  ``/v1/decrypt`` aborts the connection before its final chunk. Plaintext frames that
  ``/v1/decrypt`` sent before the end were released to a holder of a valid signature for that
  request, which is no more than ``UNSIGNED-PAYLOAD`` (accepted) allows.
* ``STREAMING-*`` (chunk-signed uploads) is refused.
* Absent (older ``curl --aws-sigv4``): the signature covers the body's SHA-256 but nothing
  declares it, so once the headers passed, the body is read (at most ``MAX_HASHED_BODY_BYTES``,
  with a Content-Length; a larger one is refused 401 asking for the header), the signature
  verified over it, and only then is anything done with it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

from kmsgate.auth.adapters import GatewayAuthenticator
from kmsgate.auth.identities import IdentityDirectory
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.auth.sigv4_canonical import UNSIGNED_PAYLOAD, check_request_target
from kmsgate.core.errors import IncompleteSignatureError, InvalidUriError, KmsError
from kmsgate.core.principal import Caller
from kmsgate.gateway.errors import GatewayError
from kmsgate.web.exchange import Authenticated

PAYLOAD_HASH_HEADER = "x-amz-content-sha256"
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
SIGNING_SERVICE = "s3"
MAX_HASHED_BODY_BYTES = 1024 * 1024
"""Largest body read whole to verify a signature that covers it without declaring its hash."""
WWW_AUTHENTICATE = f'Bearer realm="kmsgate", {SIGV4_ALGORITHM} realm="kmsgate"'


class PendingSignature(Protocol):
    """A SigV4 request whose headers passed; its signature is verified over the payload hash."""

    def verify_body(self, body: bytes) -> Caller: ...

    def verify_declared_payload(self) -> Caller: ...


class RequestAuthenticator(Protocol):
    """Turns a received request into its caller or raises a ``KmsError`` saying why not.

    ``authenticate`` takes ``body`` ``b""`` (bearer tokens, bodiless requests);
    ``check_headers`` is phase 1 of a SigV4 request, reading nothing but its headers.
    """

    def authenticate(self, request: Any, body: bytes) -> Caller: ...

    def check_headers(self, request: Any) -> PendingSignature: ...


def gateway_authenticator(directory: IdentityDirectory, region: str) -> GatewayAuthenticator:
    """Bearer tokens and S3-style SigV4 (unsigned payloads allowed) against ``directory``."""
    verifier = SigV4Verifier(directory, region, SIGNING_SERVICE, allow_unsigned_payload=True)
    return GatewayAuthenticator(directory, verifier)


class PayloadCheck:
    """Hashes a streamed body and compares it, at its end, with the signed declared hash."""

    __slots__ = ("_expected", "_hash")

    def __init__(self, expected_hex: str) -> None:
        self._expected = expected_hex
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def verify(self) -> None:
        if not hmac.compare_digest(self._hash.hexdigest(), self._expected):
            raise GatewayError(400, "XAmzContentSHA256Mismatch",
                               "The provided 'x-amz-content-sha256' header does not match what was computed.")


def _has_body(request: Any) -> bool:
    length = request.content_length
    return (length is not None and length > 0) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def unauthorized(code: str, message: str) -> GatewayError:
    return GatewayError(401, code, message, headers={"WWW-Authenticate": WWW_AUTHENTICATE})


async def _read_small_body(request: Any) -> bytes:
    length = request.content_length
    if length is None or length > MAX_HASHED_BODY_BYTES:
        raise IncompleteSignatureError(
            f"A signed request with a body over {MAX_HASHED_BODY_BYTES} bytes, or without Content-Length, "
            "must sign x-amz-content-sha256 (a SHA-256 hex digest or UNSIGNED-PAYLOAD)."
        )
    body = bytearray()
    while len(body) < length:
        chunk = await request.content.read(length - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


class BearerCallers:
    """Remembers who a bearer token was, per (SHA-256 of the Authorization value, source address).

    Only for an authenticator over an immutable identity directory (``GatewayAuthenticator``):
    a token that authenticated once names the same principal for the authenticator's life, so
    a repeated request skips the directory's digest scan and the ``Caller`` construction. Only
    successes are kept, keyed by a digest (never the token itself), at most ``capacity`` of
    them (the whole map is dropped when full: a flood of distinct tokens costs bounded memory).
    """

    __slots__ = ("_known", "_capacity")

    def __init__(self, capacity: int = 1024) -> None:
        self._known: dict[tuple[bytes, str | None], Authenticated] = {}
        self._capacity = capacity

    def authenticate(self, authenticator: RequestAuthenticator, request: Any, authorization: str) -> Authenticated:
        key = (hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest(), request.remote)
        known = self._known.get(key)
        if known is not None:
            return known
        try:
            who = Authenticated(authenticator.authenticate(request, b""))
        except KmsError as exc:
            raise unauthorized(exc.code, exc.message) from None
        if len(self._known) >= self._capacity:
            self._known.clear()
        self._known[key] = who
        return who


def _is_bearer(authorization: str) -> bool:
    return authorization[:7].lower() == "bearer "


async def authenticate(authenticator: RequestAuthenticator, request: Any,
                       bearer_callers: BearerCallers | None = None) -> Authenticated:
    """The caller of ``request`` and the check its body must pass, or a 401 ``GatewayError``.

    With ``bearer_callers`` (see ``BearerCallers``), a bearer-token request is answered from it.
    """
    path, _, query = request.raw_path.partition("?")
    try:  # every credential, bearer tokens too: what is routed must be what the client meant
        check_request_target(path, query)
    except InvalidUriError as exc:
        raise GatewayError(400, exc.code, exc.message) from None
    authorization = request.headers.get("Authorization", "")
    if bearer_callers is not None and _is_bearer(authorization):
        return bearer_callers.authenticate(authenticator, request, authorization)
    declared = request.headers.get(PAYLOAD_HASH_HEADER)
    try:
        if not authorization.lstrip().startswith(SIGV4_ALGORITHM):
            return Authenticated(authenticator.authenticate(request, b""))
        pending = authenticator.check_headers(request)  # headers only: nothing of the body is read yet
        if declared is None:
            if not _has_body(request):
                return Authenticated(pending.verify_body(b""))
            # The signature covers the body's hash and no header declares it: only the body
            # itself can tell, so a small one is read; nothing acts on it unverified.
            body = await _read_small_body(request)
            return Authenticated(pending.verify_body(body), body=body)
        caller = pending.verify_declared_payload()
    except InvalidUriError as exc:  # the routed path is not what a signature could cover
        raise GatewayError(400, exc.code, exc.message) from None
    except KmsError as exc:
        raise unauthorized(exc.code, exc.message) from None
    declared = declared.strip()
    return Authenticated(caller, None if declared == UNSIGNED_PAYLOAD else PayloadCheck(declared))
