"""Header helpers: ``response-*`` overrides on GET and ``x-amz-meta-*`` user metadata.

A signed GET may ask S3 to answer with different representation headers through six
query parameters (``response-content-type=...`` and friends, see
``RESPONSE_OVERRIDES``). Their values go into response headers, so a value with a
control character (CR or LF would split the header) is ``InvalidArgument``.

User metadata is every ``x-amz-meta-<name>`` request header. Names are case-insensitive
and kept lower-case without the prefix; a header sent several times is joined with
commas, as HTTP defines. S3 limits user metadata to 2 KB, counted as the UTF-8 bytes of
every name (without the prefix) and value: more is ``MetadataTooLarge``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kmsgate.s3.errors import InvalidArgument, MetadataTooLarge

RESPONSE_OVERRIDES: Mapping[str, str] = {
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
    "response-content-language": "Content-Language",
    "response-content-type": "Content-Type",
    "response-expires": "Expires",
}
"""Query parameter → the response header it overrides."""
USER_METADATA_PREFIX = "x-amz-meta-"
MAX_USER_METADATA_BYTES = 2 * 1024


def _has_control_character(value: str) -> bool:
    return any((ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F for char in value)


def parse_response_overrides(query: Mapping[str, str]) -> dict[str, str]:
    """Response header → value for each ``response-*`` parameter in ``query``."""
    overrides: dict[str, str] = {}
    for parameter, header in RESPONSE_OVERRIDES.items():
        value = query.get(parameter)
        if value is None:
            continue
        if _has_control_character(value):
            raise InvalidArgument(
                f"Invalid value for {parameter}",
                argument_name=parameter,
            )
        overrides[header] = value
    return overrides


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def collect_user_metadata(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The user metadata in a request's headers (name without prefix → value)."""
    metadata: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if not lowered.startswith(USER_METADATA_PREFIX) or len(lowered) == len(USER_METADATA_PREFIX):
            continue
        key = lowered[len(USER_METADATA_PREFIX):]
        text = value.strip()
        metadata[key] = f"{metadata[key]},{text}" if key in metadata else text
    size = sum(_size(key) + _size(value) for key, value in metadata.items())
    if size > MAX_USER_METADATA_BYTES:
        raise MetadataTooLarge(
            f"Your metadata headers exceed the maximum allowed metadata size of {MAX_USER_METADATA_BYTES} bytes"
        )
    return metadata


def user_metadata_headers(metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """The response headers that carry ``metadata``."""
    return [(USER_METADATA_PREFIX + name, value) for name, value in metadata.items()]
