"""What a SigV4 request claims: its credential, signed headers, signature and time, parsed.

Two places carry the claim. The ``Authorization`` header::

    AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/<service>/aws4_request,
        SignedHeaders=<lowercase names joined by ';'>, Signature=<64 lowercase hex digits>

and, for a presigned URL, the query parameters ``X-Amz-Algorithm``, ``X-Amz-Credential``,
``X-Amz-Date``, ``X-Amz-Expires`` (seconds, 1..604800), ``X-Amz-SignedHeaders`` and
``X-Amz-Signature``. Parsing is pure and bounded: the header's length, the number of signed
headers and their names are checked before anything else looks at them. Nothing here knows
which access keys exist or what time it is.
"""

from __future__ import annotations

import calendar
import datetime
import email.utils
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from kmsgate.auth.sigv4_canonical import ALGORITHM
from kmsgate.core.errors import IncompleteSignatureError

MAX_AUTHORIZATION_CHARS = 8 * 1024
MAX_SIGNED_HEADERS = 64
MAX_PRESIGNED_EXPIRES_SECONDS = 7 * 24 * 3600  # 604800, as AWS allows
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
TIMESTAMP_CACHE_ENTRIES = 1024  # distinct X-Amz-Date values whose parse is remembered
SIGNED_HEADERS_CACHE_ENTRIES = 256  # distinct SignedHeaders lists whose check is remembered
MAX_CACHED_SIGNED_HEADERS_CHARS = 512

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_USUAL_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)"
)
_SIGV4_TIMESTAMP_CHARS = 16  # len("20260131T120000Z")
_EXPIRES = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True, slots=True)
class Credential:
    """``<access_key_id>/<day>/<region>/<service>/<terminator>``, split."""

    access_key_id: str
    day: str
    region: str
    service: str
    terminator: str

    @property
    def scope(self) -> str:
        return f"{self.day}/{self.region}/{self.service}/{self.terminator}"


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The ``SignedHeaders`` list: its names, and their sorted ``;``-joined canonical form."""

    names: frozenset[str]
    ordered: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class AuthorizationClaim:
    credential: Credential
    signed: SignedHeaders
    signature: str


@dataclass(frozen=True, slots=True)
class PresignedClaim:
    credential: Credential
    signed: SignedHeaders
    signature: str
    stamp: str
    signed_at: float
    expires_seconds: int
    has_session_token: bool


def _credential(text: str) -> Credential | None:
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        return None
    return Credential(*parts)


_CREDENTIAL_ERROR = (
    "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term."
)


def parse_authorization(value: str) -> AuthorizationClaim:
    """The claim of an ``Authorization`` header value, or ``IncompleteSignatureError``."""
    if len(value) > MAX_AUTHORIZATION_CHARS:
        raise IncompleteSignatureError("Authorization header is too long.")
    usual = _USUAL_AUTHORIZATION.fullmatch(value)
    if usual is not None:
        # The layout every SDK sends; the general parser below gives the same three fields.
        credential_text, signed_text, signature = usual.groups()
        credential = _credential(credential_text)
        signed = signed_header_names(signed_text)
        if credential is not None and signed is not None:
            return AuthorizationClaim(credential, signed, signature)
    return parse_authorization_fields(value)


def parse_authorization_fields(value: str) -> AuthorizationClaim:
    """The general parser: fields in any order, optional spaces; says which part is wrong."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(f"Unsupported AWS 'algorithm': '{algorithm[:40]}'.")
    fields: dict[str, str] = {}
    for component in rest.split(","):
        name, sep, field_value = component.strip().partition("=")
        if sep:
            fields[name] = field_value
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if not fields.get(name)]  # "X=" too
    if missing:
        raise IncompleteSignatureError(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )
    credential = _credential(fields["Credential"])
    if credential is None:
        raise IncompleteSignatureError(_CREDENTIAL_ERROR)
    signed = signed_header_names(fields["SignedHeaders"])
    if signed is None:
        raise IncompleteSignatureError("SignedHeaders is not a list of lowercase header names.")
    return AuthorizationClaim(credential, signed, fields["Signature"])


def _check_signed_header_names(text: str) -> SignedHeaders | None:
    names = text.split(";")
    if len(names) > MAX_SIGNED_HEADERS or not all(_HEADER_NAME.fullmatch(n) for n in names):
        return None
    ordered = tuple(sorted(set(names)))
    return SignedHeaders(frozenset(ordered), ordered, ";".join(ordered))


_check_signed_header_names_cached = lru_cache(maxsize=SIGNED_HEADERS_CACHE_ENTRIES)(_check_signed_header_names)


def signed_header_names(text: str) -> SignedHeaders | None:
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


def stamp_seconds(stamp: str) -> float | None:
    # Only values of the one valid length are remembered, so the cache holds short strings.
    if len(stamp) == _SIGV4_TIMESTAMP_CHARS:
        return _parse_stamp_cached(stamp)
    return _parse_stamp(stamp)


def _iso_stamp(stamp: str) -> float:
    seconds = stamp_seconds(stamp)
    if seconds is None:
        raise IncompleteSignatureError(f"Date must be in ISO-8601 'basic format'. Got '{stamp[:40]}'.")
    return seconds


def request_time(received: Mapping[str, Sequence[str]], signed: frozenset[str]) -> tuple[str, float]:
    """The request's SigV4 timestamp and its epoch seconds, from signed X-Amz-Date or else Date."""
    if "x-amz-date" in signed and "x-amz-date" in received:
        stamp = received["x-amz-date"][-1]
        return stamp, _iso_stamp(stamp)
    if "date" in signed and "date" in received:
        try:
            parsed = email.utils.parsedate_to_datetime(received["date"][-1])
        except (TypeError, ValueError):
            raise IncompleteSignatureError("The Date header is not an HTTP date.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        stamp = parsed.astimezone(datetime.timezone.utc).strftime(SIGV4_TIMESTAMP)
        seconds = stamp_seconds(stamp)
        if seconds is None:  # a year before 1000 formats without four digits
            raise IncompleteSignatureError("The Date header is not an HTTP date.")
        return stamp, seconds
    raise IncompleteSignatureError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


PRESIGNED_PARAMETERS = (
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
)
SIGNATURE_PARAMETER = "X-Amz-Signature"
SESSION_TOKEN_PARAMETER = "X-Amz-Security-Token"


def is_presigned(pairs: Sequence[tuple[str, str]]) -> bool:
    return any(name == "X-Amz-Algorithm" for name, _ in pairs)


def parse_presigned(pairs: Sequence[tuple[str, str]]) -> PresignedClaim:
    """The claim of a presigned URL's decoded query pairs, or ``IncompleteSignatureError``."""
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in PRESIGNED_PARAMETERS or name == SESSION_TOKEN_PARAMETER:
            if name in found:
                raise IncompleteSignatureError(f"The query parameter {name} is repeated.")
            found[name] = value
    missing = [name for name in PRESIGNED_PARAMETERS if name not in found]
    if missing:
        raise IncompleteSignatureError(
            "A presigned URL requires the query parameters " + ", ".join(missing) + "."
        )
    if found["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureError(f"Unsupported AWS 'algorithm': '{found['X-Amz-Algorithm'][:40]}'.")
    credential = _credential(found["X-Amz-Credential"])
    if credential is None:
        raise IncompleteSignatureError(_CREDENTIAL_ERROR)
    signed = signed_header_names(found["X-Amz-SignedHeaders"])
    if signed is None:
        raise IncompleteSignatureError("X-Amz-SignedHeaders is not a list of lowercase header names.")
    expires = found["X-Amz-Expires"]
    if not _EXPIRES.fullmatch(expires) or not 1 <= int(expires) <= MAX_PRESIGNED_EXPIRES_SECONDS:
        raise IncompleteSignatureError(
            f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_SECONDS}."
        )
    stamp = found["X-Amz-Date"]
    return PresignedClaim(
        credential, signed, found[SIGNATURE_PARAMETER], stamp, _iso_stamp(stamp), int(expires),
        SESSION_TOKEN_PARAMETER in found,
    )
