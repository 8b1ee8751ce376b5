"""AWS Signature Version 4 verification of received requests (header-signed, not presigned URLs).

The ``Authorization`` header has the form::

    AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/<service>/aws4_request,
        SignedHeaders=<lowercase names joined by ';'>, Signature=<64 lowercase hex digits>

Verification rebuilds the request from what was received — the method, the raw path, the decoded
query parameters, exactly the headers named in ``SignedHeaders`` and the body — and lets botocore's
own ``SigV4Auth`` (``S3SigV4Auth`` rules for service ``s3``) compute the canonical request,
string to sign and signature with the secret of the named access key. The two signatures are
compared with ``hmac.compare_digest``. No canonicalization is done here.

Per request, nothing heavy is rebuilt: the received request is handed to botocore's signer as a
small object with exactly the attributes ``SigV4Auth.canonical_request`` reads (no ``AWSRequest``,
no ``email.message`` headers), one signer is kept per access key, and each signer keeps the
derived signing key (``HMAC`` chain over secret, day, region, service) for the last few days, as
the SigV4 specification suggests. The chain and the final HMAC are botocore's ``_sign``; a test
checks the result against botocore's own ``SigV4Auth.signature``. Request timestamps are parsed
once per distinct value (a small cache), and the clock check is arithmetic on epoch seconds.
Each signer also remembers botocore's normalization of the few request paths it sees, and the
verifier keeps the prepared ``Caller`` per (access key, source address), reused only while the
directory still maps that key to the same principal. The received headers are lower-cased into
one map, once; the payload-hash hook runs only when ``x-amz-content-sha256`` was sent.

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

import calendar
import datetime
import email.utils
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth, SigV4Auth
from botocore.credentials import Credentials

from kmsgate.auth.identities import IdentityDirectory, Principal
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
SIGNER_CACHE_ENTRIES = 1024  # access keys with a cached signer (least recently used dropped)
SIGNING_KEY_DAYS = 3  # derived signing keys kept per signer: today, and days either side at midnight
TIMESTAMP_CACHE_ENTRIES = 1024  # distinct X-Amz-Date values whose parse is remembered
SIGNED_HEADERS_CACHE_ENTRIES = 256  # distinct SignedHeaders lists whose check is remembered
MAX_CACHED_SIGNED_HEADERS_CHARS = 512
PATH_CACHE_ENTRIES = 64  # normalized request paths remembered per signer
MAX_CACHED_PATH_CHARS = 256
CALLER_CACHE_ENTRIES = 4096  # prepared callers per (access key, source address)

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_USUAL_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)"
)
_SIGV4_TIMESTAMP_CHARS = 16  # len("20260131T120000Z")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class _SignedHeaders:
    """The received headers named in ``SignedHeaders``, shaped as botocore's signer reads them.

    ``SigV4Auth`` iterates the names, calls ``get_all(name)`` and tests and reads
    ``X-Amz-Content-SHA256`` case-insensitively; names are stored lower-case, repeated headers
    keep every value in the order received (botocore joins them with ``,``).
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()][0]

    def get(self, name: str, default: Any = None) -> Any:
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: Any = None) -> Any:
        # botocore asks with the lower-case names it iterated; other spellings fall back.
        values = self._values.get(name)
        if values is None:
            values = self._values.get(name.lower())
        return values if values is not None else (failobj if failobj is not None else [])

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self._values.items() for value in values]


class _ReceivedRequest:
    """What ``SigV4Auth.canonical_request`` reads of a request: no more, nothing prepared."""

    __slots__ = ("method", "url", "params", "headers", "body", "context")

    def __init__(
        self, method: str, url: str, params: list[tuple[str, str]], headers: _SignedHeaders, body: bytes, stamp: str
    ) -> None:
        self.method = method
        self.url = url
        self.params = params
        self.headers = headers
        self.body = body
        self.context: dict[str, Any] = {"timestamp": stamp}


class _CachedSigningKey:
    """Mixin for botocore's signers: keep the derived signing key of the last few days.

    The derivation is the one ``SigV4Auth.signature`` performs, step for step, with botocore's
    ``_sign``; only the result is remembered.
    """

    credentials: Credentials
    _region_name: str
    _service_name: str
    _sign: Callable[..., Any]
    _signing_keys: dict[str, bytes]
    _normalized_paths: dict[str, str]

    def headers_to_sign(self, request: Any) -> Any:
        # Exactly the headers the client said it signed (botocore would pick its own set).
        return request.headers

    def _normalize_url_path(self, path: str) -> str:
        # botocore's own normalization (this signer's class rules), remembered per short path.
        normalized = self._normalized_paths.get(path)
        if normalized is None:
            normalized = super()._normalize_url_path(path)  # type: ignore[misc]
            if len(path) <= MAX_CACHED_PATH_CHARS:
                if len(self._normalized_paths) >= PATH_CACHE_ENTRIES:
                    self._normalized_paths.clear()
                self._normalized_paths[path] = normalized
        return normalized

    def signature(self, string_to_sign: str, request: Any) -> str:
        day = request.context["timestamp"][0:8]
        signing_key = self._signing_keys.get(day)
        if signing_key is None:
            k_date = self._sign(f"AWS4{self.credentials.secret_key}".encode(), day)
            k_region = self._sign(k_date, self._region_name)
            k_service = self._sign(k_region, self._service_name)
            signing_key = self._sign(k_service, "aws4_request")
            if len(self._signing_keys) >= SIGNING_KEY_DAYS:
                self._signing_keys.clear()
            self._signing_keys[day] = signing_key
        return self._sign(signing_key, string_to_sign, hex=True)  # type: ignore[no-any-return]


class _ReceivedSigner(_CachedSigningKey, SigV4Auth):  # type: ignore[misc]
    def __init__(self, credentials: Credentials, service_name: str, region_name: str) -> None:
        super().__init__(credentials, service_name, region_name)
        self._signing_keys = {}
        self._normalized_paths = {}


class _ReceivedS3Signer(_CachedSigningKey, S3SigV4Auth):  # type: ignore[misc]
    def __init__(self, credentials: Credentials, service_name: str, region_name: str) -> None:
        super().__init__(credentials, service_name, region_name)
        self._signing_keys = {}
        self._normalized_paths = {}


def _parse_authorization(value: str) -> tuple[list[str], frozenset[str], str]:
    """(credential parts, signed header names, signature) of an Authorization header value."""
    if len(value) > MAX_AUTHORIZATION_CHARS:
        raise IncompleteSignatureError("Authorization header is too long.")
    usual = _USUAL_AUTHORIZATION.fullmatch(value)
    if usual is not None:
        # The layout every SDK sends; the general parser below gives the same three fields.
        credential_text, signed_text, signature = usual.groups()
        credential = credential_text.split("/")
        signed = _signed_header_names(signed_text)
        if len(credential) != 5 or not all(credential) or signed is None:
            return _parse_authorization_fields(value)  # for the general parser's error message
        return credential, signed, signature
    return _parse_authorization_fields(value)


def _parse_authorization_fields(value: str) -> tuple[list[str], frozenset[str], str]:
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
    signed = _signed_header_names(fields["SignedHeaders"])
    if signed is None:
        raise IncompleteSignatureError("SignedHeaders is not a list of lowercase header names.")
    return credential, signed, fields["Signature"]


def _check_signed_header_names(text: str) -> frozenset[str] | None:
    names = text.split(";")
    if len(names) > MAX_SIGNED_HEADERS or not all(_HEADER_NAME.fullmatch(n) for n in names):
        return None
    return frozenset(names)


_check_signed_header_names_cached = lru_cache(maxsize=SIGNED_HEADERS_CACHE_ENTRIES)(_check_signed_header_names)


def _signed_header_names(text: str) -> frozenset[str] | None:
    """The names in a ``SignedHeaders`` value, or ``None`` if it is not a valid list.

    A client sends the same list with every request, so short values are remembered.
    """
    if len(text) <= MAX_CACHED_SIGNED_HEADERS_CHARS:
        return _check_signed_header_names_cached(text)
    return _check_signed_header_names(text)


def _parse_stamp(stamp: str) -> float | None:
    """Seconds since the epoch of a SigV4 timestamp, or ``None`` if it is not one."""
    try:
        parsed = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP)
    except ValueError:
        return None
    return float(calendar.timegm(parsed.timetuple()))


_parse_stamp_cached = lru_cache(maxsize=TIMESTAMP_CACHE_ENTRIES)(_parse_stamp)


def _stamp_seconds(stamp: str) -> float | None:
    # Only values of the one valid length are remembered, so the cache holds short strings.
    if len(stamp) == _SIGV4_TIMESTAMP_CHARS:
        return _parse_stamp_cached(stamp)
    return _parse_stamp(stamp)


def _request_time(received: Mapping[str, list[str]], signed: frozenset[str]) -> tuple[str, float]:
    """The request's SigV4 timestamp and its epoch seconds, from signed X-Amz-Date or else Date."""
    if "x-amz-date" in signed and "x-amz-date" in received:
        stamp = received["x-amz-date"][-1]
        seconds = _stamp_seconds(stamp)
        if seconds is None:
            raise IncompleteSignatureError(f"Date must be in ISO-8601 'basic format'. Got '{stamp[:40]}'.")
        return stamp, seconds
    if "date" in signed and "date" in received:
        try:
            parsed = email.utils.parsedate_to_datetime(received["date"][-1])
        except (TypeError, ValueError):
            raise IncompleteSignatureError("The Date header is not an HTTP date.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        stamp = parsed.astimezone(datetime.timezone.utc).strftime(SIGV4_TIMESTAMP)
        seconds = _stamp_seconds(stamp)
        if seconds is None:  # a year before 1000 formats without four digits
            raise IncompleteSignatureError("The Date header is not an HTTP date.")
        return stamp, seconds
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
        self._signers: OrderedDict[tuple[str, str], SigV4Auth] = OrderedDict()
        self._callers: dict[tuple[str, str | None], tuple[Principal, Caller]] = {}

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
        received: dict[str, list[str]] = {}
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            name = name.lower()
            values = received.get(name)
            if values is None:
                received[name] = [value]
            else:
                values.append(value)
        authorizations = received.get("authorization")
        if not authorizations:
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        if len(authorizations) > 1:
            raise IncompleteSignatureError("More than one Authorization header.")
        credential, signed, signature = _parse_authorization(authorizations[0])
        access_key_id, scope_day, scope_region, scope_service, terminator = credential

        found = self._directory.lookup_access_key(access_key_id)
        if found is None or "x-amz-security-token" in received:
            raise UnrecognizedClientError(_INVALID_TOKEN)
        principal, access_key = found

        if "host" not in signed:
            raise IncompleteSignatureError("'Host' must be a 'SignedHeader' in the AWS Authorization.")
        for name in received:
            if name not in signed and name.startswith("x-amz-"):
                unsigned = sorted(n for n in received if n.startswith("x-amz-") and n not in signed)
                raise IncompleteSignatureError(
                    "Headers present in the request are not signed: " + ", ".join(unsigned)
                )
        if not signed.issubset(received):
            raise InvalidSignatureError(_SIGNATURE_MISMATCH)

        stamp, signed_at = _request_time(received, signed)
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
        declared = received.get("x-amz-content-sha256")
        if declared is not None:  # the hook sees only the pairs it reads, and only when there are some
            self._check_payload_hash([("x-amz-content-sha256", value) for value in declared], set(signed), body)

        request = _ReceivedRequest(
            method.upper(),
            self._url(path),
            _query_params(query) if query else [],
            _SignedHeaders({name: received[name] for name in signed}),
            body,
            stamp,
        )
        signer = self._signer(access_key.access_key_id, access_key.secret_access_key)
        canonical_request = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical_request), request)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidSignatureError(_SIGNATURE_MISMATCH)

        self._check_clock(stamp, signed_at)
        return self._caller(principal, access_key_id, source_ip)

    def _caller(self, principal: Principal, access_key_id: str, source_ip: str | None) -> Caller:
        """The ``Caller`` for an authenticated request, prepared once per access key and address.

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

    def _signer(self, access_key_id: str, secret_access_key: str) -> SigV4Auth:
        """botocore's signer for one access key, kept (with its signing keys) across requests.

        Keyed by the secret too, so a replaced secret never meets a key derived from the old one.
        """
        cache_key = (access_key_id, secret_access_key)
        signer = self._signers.get(cache_key)
        if signer is not None:
            self._signers.move_to_end(cache_key)
            return signer
        signer = self._signer_class(Credentials(access_key_id, secret_access_key), self._service, self._region)
        self._signers[cache_key] = signer
        if len(self._signers) > SIGNER_CACHE_ENTRIES:
            self._signers.popitem(last=False)
        return signer

    def _url(self, path: str) -> str:
        if not path.startswith("/"):
            raise IncompleteSignatureError("The request path must be absolute.")
        if self._service == "s3":
            # S3 signs the path URI-encoded once, without dot-segment normalization.
            path = quote(unquote(path), safe="/~")
        return "http://kmsgate.invalid" + path

    def _check_payload_hash(self, pairs: list[tuple[str, str]], signed: set[str], body: bytes) -> None:
        """Check a declared ``x-amz-content-sha256`` (``pairs``: its lower-cased received pairs)."""
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
