"""SigV4 canonical requests: the exact text a signature covers, built from a request as received.

A SigV4 signature is ``HMAC-SHA256(signing_key, string_to_sign)`` in lowercase hex, where::

    signing_key    = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request")
    string_to_sign = "AWS4-HMAC-SHA256" \\n <yyyymmddThhmmssZ> \\n <day>/<region>/<service>/aws4_request
                     \\n hex(SHA-256(canonical_request))
    canonical_request = method \\n canonical URI \\n canonical query \\n canonical headers
                        (one "name:value\\n" per signed header) \\n signed header names (';') \\n payload hash

Everything here is pure: text in, text out, no clock and no I/O.

The request target is the one aiohttp routes, and the canonical URI is derived from exactly it,
so that a signature never covers a request that is routed somewhere else:

* A ``#`` anywhere in the target, a ``%`` not followed by two hex digits (``%G1``) and escapes
  whose bytes are not UTF-8 (``%FF``) are refused (``InvalidUriError``, 400). aiohttp routes
  ``/K#y`` as ``/K`` and keeps ``%FF`` as the three characters ``%FF``, while a percent-decoder
  would turn it into U+FFFD: no canonical form can then stand for what is routed.
* With every escape valid, the router sees the percent-decoded path. ``S3`` rules (service
  ``s3``): each ``/``-separated segment is decoded and URI-encoded once, nothing normalized
  (``a%2Fb`` stays one segment, ``%2F``), so two targets with one canonical URI route alike.
  ``STANDARD`` rules (every other service): dot segments and repeated slashes are removed and
  the received (already encoded) path is URI-encoded again, as AWS's SDKs sign it.
* Query parameters: each name and value is percent-decoded (same strictness) and URI-encoded,
  pairs sorted by encoded name then value. ``+`` is a literal plus, as SDKs encode it (``%2B``).
* Header values: trimmed, inner whitespace runs collapsed to one space, repeated headers
  joined by ``,`` in the order received.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from urllib.parse import quote, unquote

from kmsgate.core.errors import InvalidUriError

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PATH_CHARS = 8 * 1024
MAX_QUERY_CHARS = 16 * 1024
SIGNING_KEY_CACHE_ENTRIES = 4096  # (secret, day, region, service) -> derived key; dropped whole when full
CANONICAL_PATH_CACHE_ENTRIES = 1024  # raw path -> canonical URI, per rules; short paths only
MAX_CACHED_PATH_CHARS = 256

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class PathRules(Enum):
    """How the canonical URI is made from the received path."""

    S3 = "s3"  # decode once, encode once, no normalization
    STANDARD = "standard"  # remove dot segments and empty segments, encode the received path again

    @classmethod
    def for_service(cls, service: str) -> PathRules:
        return cls.S3 if service == "s3" else cls.STANDARD


def decode_component(text: str) -> str:
    """``text`` percent-decoded as the router decodes it, or ``InvalidUriError`` if it cannot be."""
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        raise InvalidUriError("The request URI contains an invalid percent-escape.")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidUriError("The request URI contains a percent-escape that is not UTF-8.") from None


def check_request_target(path: str, query: str = "") -> None:
    """Refuse a request target that cannot be routed unambiguously (see the module docstring)."""
    if "#" in path or "#" in query:
        raise InvalidUriError("The request URI must not contain a fragment ('#').")
    if len(path) > MAX_PATH_CHARS or len(query) > MAX_QUERY_CHARS:
        raise InvalidUriError("The request URI is too long.")
    if "%" in path:
        decode_component(path)
    if "%" in query:
        decode_component(query)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, dropping empty segments too, as AWS services normalize."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return "/" + "/".join(segments) + trailing


def _canonical_uri(path: str, rules: PathRules) -> str:
    if rules is PathRules.S3:
        return "/".join(quote(decode_component(segment), safe="") for segment in path.split("/"))
    return quote(remove_dot_segments(path), safe="/~")


_canonical_paths: dict[tuple[str, PathRules], str] = {}


def canonical_uri(path: str, rules: PathRules) -> str:
    """The canonical URI of a received path (already checked by ``check_request_target``)."""
    if path == "/":
        return "/"
    cache_key = (path, rules)
    cached = _canonical_paths.get(cache_key)
    if cached is not None:
        return cached
    uri = _canonical_uri(path, rules)
    if len(path) <= MAX_CACHED_PATH_CHARS:
        if len(_canonical_paths) >= CANONICAL_PATH_CACHE_ENTRIES:
            _canonical_paths.clear()
        _canonical_paths[cache_key] = uri
    return uri


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The decoded ``(name, value)`` pairs of a received query string, in order."""
    if not query:
        return []
    pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        pairs.append((decode_component(name), decode_component(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Decoded pairs URI-encoded and sorted by encoded name, then value."""
    encoded = sorted((quote(name, safe=""), quote(value, safe="")) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def header_value(values: Sequence[str]) -> str:
    """The canonical value of one header: each value trimmed and collapsed, joined by ','."""
    return ",".join(" ".join(value.split()) for value in values)


def canonical_headers(names: Sequence[str], received: Mapping[str, Sequence[str]]) -> str:
    """``name:value\\n`` for each of ``names`` (sorted, lower-case, all present in ``received``)."""
    lines = []
    for name in names:
        values = received[name]
        value = " ".join(values[0].split()) if len(values) == 1 else header_value(values)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def canonical_request(
    method: str, uri: str, query: str, headers: str, signed_headers: str, payload_hash: str
) -> str:
    return f"{method}\n{uri}\n{query}\n{headers}\n{signed_headers}\n{payload_hash}"


def string_to_sign(stamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{stamp}\n{scope}\n{digest}"


def derive_signing_key(secret_access_key: str, day: str, region: str, service: str) -> bytes:
    key = hmac.digest(f"AWS4{secret_access_key}".encode(), day.encode(), "sha256")
    key = hmac.digest(key, region.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    return hmac.digest(key, TERMINATOR.encode(), "sha256")


def signature(signing_key: bytes, text: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``text`` (a string to sign) under ``signing_key``."""
    return hmac.digest(signing_key, text.encode("utf-8", "surrogateescape"), "sha256").hex()


def signatures_equal(expected: str, claimed: str) -> bool:
    """Constant-time comparison of a computed signature with the one a client sent."""
    return hmac.compare_digest(expected.encode(), claimed.encode("utf-8", "surrogateescape"))


class SigningKeys:
    """Derived signing keys, remembered per (secret, day, region, service).

    Keyed by the secret itself, so a replaced secret never meets a key derived from the old one.
    At most ``capacity`` entries; the map is dropped whole when full (bounded memory under a
    flood of distinct credentials).
    """

    __slots__ = ("_keys", "_capacity")

    def __init__(self, capacity: int = SIGNING_KEY_CACHE_ENTRIES) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, secret_access_key: str, day: str, region: str, service: str) -> bytes:
        cache_key = (secret_access_key, day, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            key = derive_signing_key(secret_access_key, day, region, service)
            if len(self._keys) >= self._capacity:
                self._keys.clear()
            self._keys[cache_key] = key
        return key
