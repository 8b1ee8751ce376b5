"""AWS Signature Version 4 verification of received requests, in two phases.

kmsgate verifies signatures itself (``sigv4_canonical`` builds the canonical request and string
to sign, ``sigv4_authorization`` parses what the request claims); botocore is only the tests'
oracle. The KMS API verifies with service ``kms``, the gateway with service ``s3``.

Phase 1, ``check_headers`` (or ``check_presigned`` for a presigned URL), reads nothing but the
request line and headers, so a caller can answer a bad request before reading its body:

* the request target: no ``#`` fragment and no invalid percent-escape (``InvalidUriError``,
  400), before anything else, so the signed path is the routed path;
* the ``Authorization`` header's syntax (``IncompleteSignatureError``);
* the access key is known and no session token is sent (``UnrecognizedClientError``: kmsgate
  issues no session tokens);
* ``host`` is signed, and so is every ``x-amz-*`` header present: otherwise a captured request
  could be replayed with another ``X-Amz-Target`` (operation) or date;
* the credential scope: its day is the request's day (``X-Amz-Date``, else ``Date``), the
  region and service are this verifier's and the terminator is ``aws4_request``;
* a declared ``x-amz-content-sha256`` is single, signed and of an accepted form
  (``UNSIGNED-PAYLOAD`` only where allowed; ``STREAMING-*`` only where allowed);
* the request time is within ``MAX_CLOCK_SKEW_SECONDS`` of the clock (a presigned URL: not
  before its time, not after its ``X-Amz-Expires``).

It returns a ``PendingSignature``: the canonical request short of its payload hash, and the
derived signing key (cached per secret, day, region and service). Phase 2 computes the
signature over the payload hash and compares it in constant time: ``verify_body(body)`` over
the SHA-256 of a body read after phase 1 (a declared hash must equal it), or
``verify_declared_payload()`` over the declared hash alone, for a caller that checks the body
as it streams (the gateway's ``PayloadCheck``, or ``chunk_verifier()`` for chunk-signed
uploads).

Per request, nothing heavy is rebuilt: the received headers are lower-cased into one map, the
``SignedHeaders`` list and timestamps are parsed once per distinct value, canonical paths are
remembered, and the prepared ``Caller`` is kept per (access key, source address) while the
directory still maps that key to the same principal.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from kmsgate.auth import sigv4_canonical as canonical
from kmsgate.auth.identities import IdentityDirectory, Principal
from kmsgate.auth.sigv4_authorization import (
    SIGNATURE_PARAMETER,
    SIGV4_TIMESTAMP,
    Credential,
    SignedHeaders,
    parse_authorization,
    parse_presigned,
    request_time,
)
from kmsgate.auth.sigv4_chunked import (
    SIGNED_STREAMING_PAYLOADS,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    ChunkSignatureVerifier,
)
from kmsgate.auth.sigv4_canonical import UNSIGNED_PAYLOAD, PathRules, SigningKeys
from kmsgate.core.errors import (
    AccessDeniedError,
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from kmsgate.core.principal import Caller

MAX_CLOCK_SKEW_SECONDS = 5 * 60
CALLER_CACHE_ENTRIES = 4096  # prepared callers per (access key, source address)
PAYLOAD_HASH_HEADER = "x-amz-content-sha256"

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."
_HEX64 = re.compile(r"[0-9a-f]{64}")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class PendingSignature:
    """A request that passed phase 1; its signature is verified over a payload hash (phase 2).

    ``declared_payload_hash`` is the signed ``x-amz-content-sha256`` value (``UNSIGNED-PAYLOAD``
    for an S3 presigned URL without one), or ``None`` when the body's own hash is signed.
    """

    __slots__ = (
        "declared_payload_hash", "_caller", "_signing_key", "_stamp", "_scope", "_prefix", "_claimed", "_verified",
    )

    def __init__(self, caller: Caller, signing_key: bytes, stamp: str, scope: str, prefix: str, claimed: str,
                 declared_payload_hash: str | None) -> None:
        self.declared_payload_hash: Final = declared_payload_hash
        self._caller = caller
        self._signing_key = signing_key
        self._stamp = stamp
        self._scope = scope
        self._prefix = prefix
        self._claimed = claimed
        self._verified = False

    def canonical_request(self, payload_hash: str) -> str:
        return self._prefix + payload_hash

    def string_to_sign(self, payload_hash: str) -> str:
        return canonical.string_to_sign(self._stamp, self._scope, self._prefix + payload_hash)

    def _verify(self, payload_hash: str) -> Caller:
        expected = canonical.signature(self._signing_key, self.string_to_sign(payload_hash))
        if not canonical.signatures_equal(expected, self._claimed):
            raise InvalidSignatureError(_SIGNATURE_MISMATCH)
        self._verified = True
        return self._caller

    def verify_body(self, body: bytes) -> Caller:
        """The caller, if the signature covers ``body`` (the whole body, read after phase 1)."""
        declared = self.declared_payload_hash
        if declared is None:
            return self._verify(hashlib.sha256(body).hexdigest() if body else canonical.EMPTY_SHA256)
        if _HEX64.fullmatch(declared):
            if not hmac.compare_digest(declared, hashlib.sha256(body).hexdigest()):
                raise InvalidSignatureError(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                )
        elif declared != UNSIGNED_PAYLOAD:
            raise IncompleteSignatureError("A streaming payload is verified chunk by chunk, not whole.")
        return self._verify(declared)

    def verify_declared_payload(self) -> Caller:
        """The caller, if the signature covers the declared payload hash; the body is not looked at.

        The caller of this method compares the body with the declared hash as it streams
        (``UNSIGNED-PAYLOAD``: nothing to compare; ``STREAMING-*``: ``chunk_verifier()``).
        """
        if self.declared_payload_hash is None:
            raise IncompleteSignatureError("The request does not declare its payload hash (x-amz-content-sha256).")
        return self._verify(self.declared_payload_hash)

    def chunk_verifier(self, **limits: int) -> ChunkSignatureVerifier:
        """The verifier of a chunk-signed body whose seed signature ``verify_declared_payload`` checked."""
        if not self._verified or self.declared_payload_hash not in (
            *SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER,
        ):
            raise IncompleteSignatureError("The request is not a verified streaming upload.")
        return ChunkSignatureVerifier(
            self._signing_key, self._stamp, self._scope, self._claimed,
            mode=self.declared_payload_hash, **limits,
        )


def _check_target(path: str, query: str) -> None:
    canonical.check_request_target(path, query)
    if not path.startswith("/"):
        raise IncompleteSignatureError("The request path must be absolute.")


def _received_headers(headers: Headers) -> dict[str, list[str]]:
    received: dict[str, list[str]] = {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        name = name.lower()
        values = received.get(name)
        if values is None:
            received[name] = [value]
        else:
            values.append(value)
    return received


class SigV4Verifier:
    """Verifies SigV4-signed requests against an ``IdentityDirectory``.

    ``service`` is the signing name clients use (``kms`` for the KMS API, ``s3`` for S3-style
    gateway clients; ``s3`` also selects S3's path rules). ``clock`` returns seconds since the
    epoch. ``UNSIGNED-PAYLOAD`` and chunk-signed ``STREAMING-*`` payloads are refused unless
    allowed. ``path_rules`` overrides the service's own path rules (for test suites that sign
    with another service name).
    """

    def __init__(
        self,
        directory: IdentityDirectory,
        region: str,
        service: str = "kms",
        clock: Callable[[], float] = time.time,
        *,
        allow_unsigned_payload: bool = False,
        allow_streaming_payload: bool = False,
        path_rules: PathRules | None = None,
    ) -> None:
        self._directory = directory
        self._region = region
        self._service = service
        self._clock = clock
        self._allow_unsigned_payload = allow_unsigned_payload
        self._allow_streaming_payload = allow_streaming_payload
        self._path_rules = path_rules or PathRules.for_service(service)
        self._signing_keys = SigningKeys()
        self._callers: dict[tuple[str, str | None], tuple[Principal, Caller]] = {}

    def verify(self, method: str, path: str, query: str, headers: Headers, body: bytes, *,
               source_ip: str | None = None) -> Caller:
        """Both phases at once, for a body already read: the caller, or a ``KmsError`` saying why not."""
        return self.check_headers(method, path, query, headers, source_ip=source_ip).verify_body(body)

    def check_headers(self, method: str, path: str, query: str, headers: Headers, *,
                      source_ip: str | None = None) -> PendingSignature:
        """Phase 1 of a header-signed request (see the module docstring); nothing of the body is needed.

        ``path`` and ``query`` are as received on the wire (percent-encoded, no ``?``);
        ``headers`` may repeat names.
        """
        _check_target(path, query)
        received = _received_headers(headers)
        authorizations = received.get("authorization")
        if not authorizations:
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        if len(authorizations) > 1:
            raise IncompleteSignatureError("More than one Authorization header.")
        claim = parse_authorization(authorizations[0])
        principal, secret = self._access_key(claim.credential.access_key_id, "x-amz-security-token" in received)
        signed = claim.signed
        self._check_signed_headers(signed, received)
        stamp, signed_at = request_time(received, signed.names)
        self._check_scope(claim.credential, stamp)
        declared = self._declared_payload_hash(received, signed)
        self._check_clock(stamp, signed_at)
        pairs = canonical.query_pairs(query)
        return self._pending(principal, claim.credential, secret, source_ip, method, path, pairs, received,
                             signed, stamp, claim.signature, declared)

    def check_presigned(self, method: str, path: str, query: str, headers: Headers, *,
                        source_ip: str | None = None) -> PendingSignature:
        """Phase 1 of a presigned URL (the claim is in the query); expired URLs are ``AccessDeniedError``."""
        _check_target(path, query)
        received = _received_headers(headers)
        if "authorization" in received:
            raise IncompleteSignatureError("Only one auth mechanism allowed: Authorization header or presigned URL.")
        pairs = canonical.query_pairs(query)
        claim = parse_presigned(pairs)
        principal, secret = self._access_key(
            claim.credential.access_key_id, claim.has_session_token or "x-amz-security-token" in received,
        )
        self._check_signed_headers(claim.signed, received)
        self._check_scope(claim.credential, claim.stamp)
        declared = self._declared_payload_hash(received, claim.signed)
        now = self._clock()
        if claim.signed_at - now > MAX_CLOCK_SKEW_SECONDS:
            raise AccessDeniedError("Request is not yet valid.")
        if now > claim.signed_at + claim.expires_seconds:
            raise AccessDeniedError("Request has expired.")
        if declared is None and self._service == "s3":
            declared = UNSIGNED_PAYLOAD  # S3 presigned URLs never sign the payload
        signed_pairs = [(name, value) for name, value in pairs if name != SIGNATURE_PARAMETER]
        return self._pending(principal, claim.credential, secret, source_ip, method, path, signed_pairs, received,
                             claim.signed, claim.stamp, claim.signature, declared)

    def _pending(self, principal: Principal, credential: Credential, secret: str, source_ip: str | None,
                 method: str, path: str, pairs: list[tuple[str, str]], received: Mapping[str, list[str]],
                 signed: SignedHeaders, stamp: str, claimed: str, declared: str | None) -> PendingSignature:
        prefix = (
            f"{method}\n{canonical.canonical_uri(path, self._path_rules)}\n{canonical.canonical_query(pairs)}\n"
            f"{canonical.canonical_headers(signed.ordered, received)}\n{signed.text}\n"
        )
        signing_key = self._signing_keys.get(secret, credential.day, credential.region, credential.service)
        caller = self._caller(principal, credential.access_key_id, source_ip)
        return PendingSignature(caller, signing_key, stamp, credential.scope, prefix, claimed, declared)

    def _access_key(self, access_key_id: str, has_session_token: bool) -> tuple[Principal, str]:
        found = self._directory.lookup_access_key(access_key_id)
        if found is None or has_session_token:
            raise UnrecognizedClientError(_INVALID_TOKEN)
        principal, access_key = found
        return principal, access_key.secret_access_key

    @staticmethod
    def _check_signed_headers(signed: SignedHeaders, received: Mapping[str, list[str]]) -> None:
        names = signed.names
        if "host" not in names:
            raise IncompleteSignatureError("'Host' must be a 'SignedHeader' in the AWS Authorization.")
        for name in received:
            if name not in names and name.startswith("x-amz-"):
                unsigned = sorted(n for n in received if n.startswith("x-amz-") and n not in names)
                raise IncompleteSignatureError(
                    "Headers present in the request are not signed: " + ", ".join(unsigned)
                )
        if not names.issubset(received):
            raise InvalidSignatureError(_SIGNATURE_MISMATCH)

    def _check_scope(self, credential: Credential, stamp: str) -> None:
        if credential.day != stamp[:8]:
            raise InvalidSignatureError(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{credential.day[:8]}' != '{stamp[:8]}', from '{stamp}'."
            )
        if credential.region != self._region:
            raise InvalidSignatureError("Credential should be scoped to a valid region.")
        if credential.service != self._service:
            raise InvalidSignatureError(f"Credential should be scoped to correct service: '{self._service}'.")
        if credential.terminator != canonical.TERMINATOR:
            raise InvalidSignatureError("Credential should be scoped with a valid terminator: 'aws4_request'.")

    def _declared_payload_hash(self, received: Mapping[str, list[str]], signed: SignedHeaders) -> str | None:
        """The signed ``x-amz-content-sha256`` value, checked for form and policy, or ``None``."""
        declared = received.get(PAYLOAD_HASH_HEADER)
        if declared is None:
            return None
        if len(declared) > 1 or PAYLOAD_HASH_HEADER not in signed.names:
            raise IncompleteSignatureError("x-amz-content-sha256 must be a single, signed header.")
        value = declared[0].strip()
        if _HEX64.fullmatch(value):
            return value
        if value == UNSIGNED_PAYLOAD:
            if not self._allow_unsigned_payload:
                raise InvalidSignatureError("This endpoint requires a signed payload.")
            return value
        if value.startswith("STREAMING-"):
            if not self._allow_streaming_payload or (
                value not in SIGNED_STREAMING_PAYLOADS
                and not (value == STREAMING_UNSIGNED_PAYLOAD_TRAILER and self._allow_unsigned_payload)
            ):
                raise IncompleteSignatureError("Streaming (chunk-signed) payloads are not supported.")
            return value
        raise IncompleteSignatureError("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 hex digest.")

    def _caller(self, principal: Principal, access_key_id: str, source_ip: str | None) -> Caller:
        """The ``Caller`` for a request, prepared once per access key and address.

        An entry is used only while the directory still maps the key to the same principal.
        """
        cache_key = (access_key_id, source_ip)
        cached = self._callers.get(cache_key)
        if cached is not None and cached[0] is principal:
            return cached[1]
        caller = principal.caller(access_key_id=access_key_id, source_ip=source_ip)
        if len(self._callers) >= CALLER_CACHE_ENTRIES:
            self._callers.clear()
        self._callers[cache_key] = (principal, caller)
        return caller

    def _check_clock(self, stamp: str, signed_at: float) -> None:
        now = self._clock()
        if abs(signed_at - now) <= MAX_CLOCK_SKEW_SECONDS:
            return
        moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        skew = datetime.timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
        if signed_at < now:
            raise InvalidSignatureError(
                f"Signature expired: {stamp} is now earlier than "
                f"{(moment - skew).strftime(SIGV4_TIMESTAMP)} ({moment.strftime(SIGV4_TIMESTAMP)} - 5 min.)"
            )
        raise InvalidSignatureError(
            f"Signature not yet current: {stamp} is still later than "
            f"{(moment + skew).strftime(SIGV4_TIMESTAMP)} ({moment.strftime(SIGV4_TIMESTAMP)} + 5 min.)"
        )
