"""Integrity headers: ``Content-MD5`` and ``x-amz-checksum-*``, with streaming hashers.

Each header carries the base64 of a big-endian digest of the request body:

    header                    algorithm                                  digest bytes
    Content-MD5               MD5                                        16
    x-amz-checksum-crc32      CRC-32 (ISO-HDLC, zlib's)                  4
    x-amz-checksum-crc32c     CRC-32C (Castagnoli)                       4
    x-amz-checksum-crc64nvme  CRC-64/NVME                                8
    x-amz-checksum-sha1       SHA-1                                      20
    x-amz-checksum-sha256     SHA-256                                    32

The caller feeds the body through ``Digest.update`` as it streams and compares the
``finalize``d digest with what the client sent, in constant time (``ExpectedDigest``).
A header that is not valid base64 of the right length is ``InvalidDigest`` for
Content-MD5 and ``InvalidRequest`` for the others; a mismatch is ``BadDigest``, as S3
answers. CRC-32 is zlib's; CRC-32C and CRC-64/NVME come from ``anycrc`` (carry-less
multiply accelerated, parameterised from the CRC catalogue). Not ``awscrt``: installing
it switches every botocore client in the process to its CRT signer.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anycrc

from kmsgate.s3.errors import BadDigest, InvalidDigest, InvalidRequest

CHECKSUM_HEADER_PREFIX = "x-amz-checksum-"
# x-amz-checksum-* headers that name an algorithm or mode rather than carry a value.
_NOT_VALUE_HEADERS = frozenset({"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"})


class DigestAlgorithm(enum.Enum):
    MD5 = "MD5"
    CRC32 = "CRC32"
    CRC32C = "CRC32C"
    CRC64NVME = "CRC64NVME"
    SHA1 = "SHA1"
    SHA256 = "SHA256"

    @property
    def header(self) -> str:
        """The request/response header carrying this digest."""
        if self is DigestAlgorithm.MD5:
            return "Content-MD5"
        return CHECKSUM_HEADER_PREFIX + self.name.lower()

    @property
    def digest_bytes(self) -> int:
        return _DIGEST_BYTES[self]


_DIGEST_BYTES = {
    DigestAlgorithm.MD5: 16,
    DigestAlgorithm.CRC32: 4,
    DigestAlgorithm.CRC32C: 4,
    DigestAlgorithm.CRC64NVME: 8,
    DigestAlgorithm.SHA1: 20,
    DigestAlgorithm.SHA256: 32,
}
CHECKSUM_ALGORITHMS = tuple(a for a in DigestAlgorithm if a is not DigestAlgorithm.MD5)
_BY_HEADER = {a.header.lower(): a for a in CHECKSUM_ALGORITHMS}
_CRC32C = anycrc.Model("CRC32-ISCSI")
_CRC64NVME = anycrc.Model("CRC64-NVME")


def _crc32c(data: bytes, previous: int) -> int:
    return int(_CRC32C.calc(data, previous))


def _crc64nvme(data: bytes, previous: int) -> int:
    return int(_CRC64NVME.calc(data, previous))


_CRC_FUNCTIONS: Mapping[DigestAlgorithm, Callable[[bytes, int], int]] = {
    DigestAlgorithm.CRC32: zlib.crc32,
    DigestAlgorithm.CRC32C: _crc32c,
    DigestAlgorithm.CRC64NVME: _crc64nvme,
}
_HASH_NAMES = {DigestAlgorithm.MD5: "md5", DigestAlgorithm.SHA1: "sha1", DigestAlgorithm.SHA256: "sha256"}


class AlreadyFinalized(Exception):
    """``update`` or ``finalize`` called on a digest that has been finalized."""


class Digest:
    """A streaming digest of one body: ``update`` with each chunk, ``finalize`` once."""

    def __init__(self, algorithm: DigestAlgorithm) -> None:
        self.algorithm = algorithm
        self._crc_function = _CRC_FUNCTIONS.get(algorithm)
        self._crc = 0
        self._hash = (
            None if self._crc_function else hashlib.new(_HASH_NAMES[algorithm], usedforsecurity=False)
        )
        self._finalized = False

    def update(self, data: bytes) -> None:
        if self._finalized:
            raise AlreadyFinalized()
        if self._crc_function is not None:
            self._crc = self._crc_function(data, self._crc)
        elif self._hash is not None:
            self._hash.update(data)

    def finalize(self) -> bytes:
        """The digest, big-endian, ``algorithm.digest_bytes`` long."""
        if self._finalized:
            raise AlreadyFinalized()
        self._finalized = True
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(self.algorithm.digest_bytes, "big")


def digest_of(algorithm: DigestAlgorithm, data: bytes) -> bytes:
    """The digest of ``data`` in one call."""
    digest = Digest(algorithm)
    digest.update(data)
    return digest.finalize()


def encode_digest(digest: bytes) -> str:
    """A digest as its header value (base64)."""
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class ExpectedDigest:
    """A digest a client sent, to check the body against once it has been read."""

    algorithm: DigestAlgorithm
    digest: bytes

    def matches(self, computed: bytes) -> bool:
        """Whether ``computed`` equals the expected digest (constant time)."""
        return hmac.compare_digest(self.digest, computed)

    def verify(self, computed: bytes) -> None:
        """``BadDigest`` unless ``computed`` equals the expected digest."""
        if self.matches(computed):
            return
        if self.algorithm is DigestAlgorithm.MD5:
            raise BadDigest()
        raise BadDigest(f"The {self.algorithm.value} you specified did not match the calculated checksum.")


def _decode(value: str, algorithm: DigestAlgorithm) -> bytes | None:
    text = value.strip()
    if len(text) > 4 * (algorithm.digest_bytes + 2) // 3 + 4:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == algorithm.digest_bytes else None


def parse_content_md5(value: str) -> ExpectedDigest:
    """The expected MD5 from a ``Content-MD5`` header; ``InvalidDigest`` if malformed."""
    digest = _decode(value, DigestAlgorithm.MD5)
    if digest is None:
        raise InvalidDigest()
    return ExpectedDigest(DigestAlgorithm.MD5, digest)


def parse_checksum_headers(headers: Mapping[str, str]) -> ExpectedDigest | None:
    """The expected checksum from a request's ``x-amz-checksum-<algorithm>`` header, if any.

    At most one is allowed. One this front cannot compute (S3 also knows SHA-512, MD5 and
    the XXHash family there) is refused rather than ignored, so a client is never told a
    body was checked when it was not.
    """
    found: list[tuple[str, str]] = [
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith(CHECKSUM_HEADER_PREFIX) and name.lower() not in _NOT_VALUE_HEADERS
    ]
    if not found:
        return None
    if len(found) > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    name, value = found[0]
    algorithm = _BY_HEADER.get(name)
    if algorithm is None:
        raise InvalidRequest(f"The {name} checksum is not supported.")
    digest = _decode(value, algorithm)
    if digest is None:
        raise InvalidRequest(f"Value for {name} header is invalid.")
    return ExpectedDigest(algorithm, digest)
