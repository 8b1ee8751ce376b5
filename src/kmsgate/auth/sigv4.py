"""AWS Signature Version 4 verification of received requests (header-signed, not presigned URLs).

The ``Authorization`` header has the form::

    AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/<service>/aws4_request,
        SignedHeaders=<lowercase names joined by ';'>, Signature=<64 lowercase hex digits>

Verification rebuilds the request from what was received — the method, the raw path, the decoded
query parameters, exactly the headers named in ``SignedHeaders`` and the body — and lets botocore's
own ``SigV4Auth`` (``S3SigV4Auth`` rules for service ``s3``) compute the canonical request,
string to sign and signature with the secret of the named access key. The two signatures are
compared with ``hmac.compare_digest``. No canonicalization is done here.

Checks beyond the signature, and why:

* ``host`` must be signed, and so must every ``x-amz-*`` header present: otherwise a captured
  request could be replayed with another ``X-Amz-Target`` (operation) or date.
* The payload hash: botocore uses ``x-amz-content-sha256`` when that header is signed, so its value
  is checked against the SHA-256 of the received body. ``UNSIGNED-PAYLOAD`` is accepted only when
  the verifier allows it (S3-style gateway uploads); the KMS API always requires a signed body.
  Streaming (``STREAMING-*``) chunk signatures are not supported.
* The request time (``X-Amz-Date``, else ``Date``) must be within ``MAX_CLOCK_SKEW_SECONDS`` of the
  verifier's clock, and its day must equal the credential scope's day.
* Session tokens (``X-Amz-Security-Token``) are refused: kmsgate issues none.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, unquote

from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from kmsgate.auth.identities import IdentityDirectory
from kmsgate.core.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from kmsgate.core.principal import Caller

MAX_CLOCK_SKEW_SECONDS = 5 * 60
MAX_AUTHORIZATION_CHARS = 8 * 1024
MAX_SIGNED_HEADERS = 64
MAX_QUERY_CHARS = 16 * 1024
ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class _ReceivedSigner(SigV4Auth):
    """botocore's SigV4 signer, restricted to the headers the client said it signed."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers


class _ReceivedS3Signer(S3SigV4Auth):
    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value) for name, value in items]


def _parse_authorization(value: str) -> tuple[list[str], list[str], str]:
    """(credential parts, signed header names, signature) of an Authorization header value."""
    if len(value) > MAX_AUTHORIZATION_CHARS:
        raise IncompleteSignatureError("Authorization header is too long.")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(f"Unsupported AWS 'algorithm': '{algorithm[:40]}'.")
    fields: dict[str, str] = {}
    for component in rest.split(","):
        name, sep, field_value = component.strip().partition("=")
        if sep:
            fields[name] = field_value
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if name not in fields]
    if missing:
        raise IncompleteSignatureError(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise IncompleteSignatureError(
            "Credential must have exactly 5 slash-delimited elements, "
            "e.g. keyid/date/region/service/term."
        )
    signed = fields["SignedHeaders"].split(";")
    if len(signed) > MAX_SIGNED_HEADERS or not all(_HEADER_NAME.fullmatch(n) for n in signed):
        raise IncompleteSignatureError("SignedHeaders is not a list of lowercase header names.")
    return credential, signed, fields["Signature"]


def _request_time(pairs: list[tuple[str, str]]) -> str:
    """The request's SigV4 timestamp, from X-Amz-Date or else Date."""
    values = dict(pairs)
    if "x-amz-date" in values:
        stamp = values["x-amz-date"]
        try:
            datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP)
        except ValueError:
            raise IncompleteSignatureError(
                f"Date must be in ISO-8601 'basic format'. Got '{stamp[:40]}'."
            ) from None
        return stamp
    if "date" in values:
        try:
            parsed = email.utils.parsedate_to_datetime(values["date"])
        except (TypeError, ValueError):
            raise IncompleteSignatureError("The Date header is not an HTTP date.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        return parsed.astimezone(datetime.timezone.utc).strftime(SIGV4_TIMESTAMP)
    raise IncompleteSignatureError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _query_params(query: str) -> list[tuple[str, str]]:
    if len(query) > MAX_QUERY_CHARS:
        raise IncompleteSignatureError("The query string is too long.")
    params = []
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        params.append((unquote(name), unquote(value)))
    return params


class SigV4Verifier:
    """Verifies SigV4-signed requests against an ``IdentityDirectory``.

    ``service`` is the signing name clients use (``kms`` for the KMS API, ``s3`` for S3-style
    gateway clients). ``clock`` returns seconds since the epoch.
    """

    def __init__(
        self,
        directory: IdentityDirectory,
        region: str,
        service: str = "kms",
        clock: Callable[[], float] = time.time,
        *,
        allow_unsigned_payload: bool = False,
    ) -> None:
        self._directory = directory
        self._region = region
        self._service = service
        self._clock = clock
        self._allow_unsigned_payload = allow_unsigned_payload
        self._signer_class = _ReceivedS3Signer if service == "s3" else _ReceivedSigner

    def verify(
        self,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: bytes,
        *,
        source_ip: str | None = None,
    ) -> Caller:
        """The authenticated caller of a received request, or a ``KmsError`` saying why not.

        ``path`` and ``query`` are as received on the wire (percent-encoded, no ``?``);
        ``headers`` may repeat names.
        """
        pairs = _header_pairs(headers)
        authorizations = [value for name, value in pairs if name == "authorization"]
        if not authorizations:
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        if len(authorizations) > 1:
            raise IncompleteSignatureError("More than one Authorization header.")
        credential, signed_names, signature = _parse_authorization(authorizations[0])
        access_key_id, scope_day, scope_region, scope_service, terminator = credential

        found = self._directory.lookup_access_key(access_key_id)
        if found is None or any(name == "x-amz-security-token" for name, _ in pairs):
            raise UnrecognizedClientError(_INVALID_TOKEN)
        principal, access_key = found

        signed = set(signed_names)
        if "host" not in signed:
            raise IncompleteSignatureError("'Host' must be a 'SignedHeader' in the AWS Authorization.")
        unsigned = sorted({n for n, _ in pairs if n.startswith("x-amz-") and n not in signed})
        if unsigned:
            raise IncompleteSignatureError(
                "Headers present in the request are not signed: " + ", ".join(unsigned)
            )
        received_names = {name for name, _ in pairs}
        absent = sorted(signed - received_names)
        if absent:
            raise InvalidSignatureError(_SIGNATURE_MISMATCH)

        stamp = _request_time([(n, v) for n, v in pairs if n in signed])
        if scope_day != stamp[:8]:
            raise InvalidSignatureError(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{scope_day[:8]}' != '{stamp[:8]}', from '{stamp}'."
            )
        if scope_region != self._region:
            raise InvalidSignatureError("Credential should be scoped to a valid region.")
        if scope_service != self._service:
            raise InvalidSignatureError(
                f"Credential should be scoped to correct service: '{self._service}'."
            )
        if terminator != "aws4_request":
            raise InvalidSignatureError(
                "Credential should be scoped with a valid terminator: 'aws4_request'."
            )
        self._check_payload_hash(pairs, signed, body)

        request = AWSRequest(method=method.upper(), url=self._url(path), data=body)
        request.params = _query_params(query)
        request.headers = HTTPHeaders()
        for name, value in pairs:
            if name in signed:
                request.headers[name] = value
        request.context["timestamp"] = stamp
        signer = self._signer_class(
            Credentials(access_key.access_key_id, access_key.secret_access_key),
            self._service,
            self._region,
        )
        canonical_request = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical_request), request)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidSignatureError(_SIGNATURE_MISMATCH)

        self._check_clock(stamp)
        return principal.caller(access_key_id=access_key_id, source_ip=source_ip)

    def _url(self, path: str) -> str:
        if not path.startswith("/"):
            raise IncompleteSignatureError("The request path must be absolute.")
        if self._service == "s3":
            # S3 signs the path URI-encoded once, without dot-segment normalization.
            path = quote(unquote(path), safe="/~")
        return "http://kmsgate.invalid" + path

    def _check_payload_hash(self, pairs: list[tuple[str, str]], signed: set[str], body: bytes) -> None:
        declared = [v for n, v in pairs if n == "x-amz-content-sha256"]
        if not declared:
            return
        value = declared[0].strip()
        if len(declared) > 1 or "x-amz-content-sha256" not in signed:
            raise IncompleteSignatureError("x-amz-content-sha256 must be a single, signed header.")
        if value == UNSIGNED_PAYLOAD:
            if not self._allow_unsigned_payload:
                raise InvalidSignatureError("This endpoint requires a signed payload.")
            return
        if value.startswith("STREAMING-"):
            raise IncompleteSignatureError("Streaming (chunk-signed) payloads are not supported.")
        actual = hashlib.sha256(body).hexdigest()
        if not _HEX64.fullmatch(value) or not hmac.compare_digest(value, actual):
            raise InvalidSignatureError(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )

    def _check_clock(self, stamp: str) -> None:
        signed_at = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(
            tzinfo=datetime.timezone.utc
        )
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.timezone.utc)
        skew = datetime.timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
        if signed_at < now - skew:
            raise InvalidSignatureError(
                f"Signature expired: {stamp} is now earlier than "
                f"{(now - skew).strftime(SIGV4_TIMESTAMP)} ({now.strftime(SIGV4_TIMESTAMP)} - 5 min.)"
            )
        if signed_at > now + skew:
            raise InvalidSignatureError(
                f"Signature not yet current: {stamp} is still later than "
                f"{(now + skew).strftime(SIGV4_TIMESTAMP)} ({now.strftime(SIGV4_TIMESTAMP)} + 5 min.)"
            )
