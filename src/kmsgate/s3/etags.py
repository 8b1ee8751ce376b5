"""S3 entity tags: how they are computed from MD5s, and quoted on the wire.

- A single PUT: the lower-case hex MD5 of the object's bytes (for us, of the plaintext:
  the ETag a client sees is the one S3 would have given for the bytes it sent).
- A multipart upload of N parts: the hex MD5 of the N binary part MD5s concatenated in
  part order, then ``-N``, e.g. ``"3858f62230ac3c915f300c664312c11f-2"``.

ETags are kept unquoted inside the code and quoted (``"..."``) in headers and XML.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

MAX_PARTS = 10_000
"""Most parts a multipart upload may have (part numbers 1..10000)."""
MD5_BYTES = 16
_PART_ETAG = re.compile(r"^[0-9a-fA-F]{32}$")


def md5_etag(md5_digest: bytes) -> str:
    """The ETag of a single-PUT object with this MD5 digest."""
    if len(md5_digest) != MD5_BYTES:
        raise ValueError("an MD5 digest is 16 bytes")
    return md5_digest.hex()


def multipart_etag(part_md5_digests: Sequence[bytes]) -> str:
    """The ETag of a completed multipart upload whose parts have these MD5 digests, in order."""
    if not 1 <= len(part_md5_digests) <= MAX_PARTS:
        raise ValueError("a multipart upload has 1 to 10000 parts")
    combined = hashlib.md5(usedforsecurity=False)
    for digest in part_md5_digests:
        if len(digest) != MD5_BYTES:
            raise ValueError("an MD5 digest is 16 bytes")
        combined.update(digest)
    return f"{combined.hexdigest()}-{len(part_md5_digests)}"


def part_md5_of(etag: str) -> bytes | None:
    """The MD5 digest a part's ETag stands for, or ``None`` if it is not a plain MD5 ETag."""
    bare = unquote_etag(etag)
    if _PART_ETAG.match(bare) is None:
        return None
    return bytes.fromhex(bare)


def quote_etag(etag: str) -> str:
    """``etag`` as it goes on the wire: in double quotes."""
    return f'"{etag}"'


def unquote_etag(value: str) -> str:
    """An ETag as clients send it (quoted or not, maybe padded) without the quotes."""
    bare = value.strip()
    if len(bare) >= 2 and bare.startswith('"') and bare.endswith('"'):
        return bare[1:-1]
    return bare
