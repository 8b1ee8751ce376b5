"""The message header: serialization, incremental parsing under caps, and header authentication.

Message format version 2 (written and read; all integers big-endian, unsigned)::

    offset  size  field
    0       1     version = 0x02
    1       2     algorithm suite id (0x0478 or 0x0578)
    3       32    message id (random, from os.urandom)
    35      2     AAD length A (0 when the encryption context is empty)
    37      A     encryption context (see context.py)
    ..      2     encrypted data key count E (>= 1)
    ..            E times: 2 provider id length, provider id (UTF-8),
                           2 provider info length, provider info,
                           2 ciphertext length, ciphertext
    ..      1     content type = 0x02 (framed)
    ..      4     frame length F (> 0)
    ..      32    commitment key (suite data)
    -- header authentication --
    ..      16    AES-GCM tag over empty plaintext; IV = 12 zero bytes; AAD = all header bytes above

Message format version 1 (read only, and only when non-committing suites are allowed)::

    0 1 version = 0x01 | 1 1 type = 0x80 | 2 2 suite id | 4 16 message id | 20 2 AAD length A |
    context | 2 EDK count | EDKs | 1 content type = 0x02 | 4 reserved = 0 | 1 IV length = 12 |
    4 frame length | header authentication: 12 IV, 16 tag (AAD = all header bytes)

The header auth key is the derived data key; with a fixed IV it is safe because
each message id yields a distinct derived key. Every length and count read here is
attacker-controlled: the header as a whole, the encryption context and the number of
encrypted data keys are capped by ``DecryptPolicy`` before anything is allocated, and
the parser only ever waits for bytes up to the header cap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .context import parse_context
from .data_keys import EncryptedDataKey
from .errors import (
    ForbiddenSuiteError,
    HeaderAuthenticationError,
    HeaderLimitError,
    MalformedHeaderError,
    UnsupportedSuiteError,
)
from .suites import AlgorithmSuite, suite_by_id

CONTENT_TYPE_FRAMED = 0x02
_VERSION_SUITE = struct.Struct(">BH")
_TYPE_FRAME = struct.Struct(">BI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_V1_RESERVED = b"\x00\x00\x00\x00"
_ZERO_IVS = {12: bytes(12)}
FIELDS_MEMO_ENTRIES = 128
TEMPLATE_MEMO_ENTRIES = 128
V1_TYPE_CUSTOMER_AED = 0x80

MAX_HEADER_BYTES = 64 * 1024  # ample for one KMS data key and a 16 KiB context
MAX_ENCRYPTED_DATA_KEYS = 1  # kmsgate writes one; more is an attacker's multiplier of KMS calls
MAX_CONTEXT_BYTES = 16 * 1024
MAX_FRAME_LENGTH = 4 * 1024 * 1024  # the decryptor buffers one frame per stream


@dataclass(frozen=True, slots=True)
class DecryptPolicy:
    """Caps and permissions applied while reading a message."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_encrypted_data_keys: int = MAX_ENCRYPTED_DATA_KEYS
    max_context_bytes: int = MAX_CONTEXT_BYTES
    max_frame_length: int = MAX_FRAME_LENGTH
    allow_non_committing: bool = False
    allow_signed: bool = True


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """A parsed (or freshly written) header. ``header_bytes`` is the exact serialized
    header, which is the AAD of the header authentication tag."""

    suite: AlgorithmSuite
    message_id: bytes
    encryption_context: Mapping[str, str]
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    frame_length: int
    commitment_key: bytes
    header_bytes: bytes = field(repr=False)
    auth_iv: bytes
    auth_tag: bytes

    @property
    def version(self) -> int:
        return self.suite.message_format_version

    @property
    def length(self) -> int:
        """Bytes from the start of the message to the first frame."""
        auth = self.suite.tag_length + (self.suite.iv_length if self.version == 1 else 0)
        return len(self.header_bytes) + auth


def serialize_header(
    suite: AlgorithmSuite, message_id: bytes, header_fields: bytes, frame_length: int, commitment: bytes
) -> bytes:
    """The version-2 header bytes (without the authentication tag). ``header_fields`` is
    ``data_keys.serialize_header_fields(...)``: AAD length through the last EDK."""
    if suite.message_format_version != 2:
        raise ValueError("kmsgate writes message format version 2 only")
    return b"".join((
        _VERSION_SUITE.pack(2, suite.suite_id), message_id, header_fields,
        _TYPE_FRAME.pack(CONTENT_TYPE_FRAMED, frame_length), commitment,
    ))


@lru_cache(maxsize=TEMPLATE_MEMO_ENTRIES)
def header_template(suite_id: int, header_fields: bytes, frame_length: int) -> tuple[bytes, bytes]:
    """The constant parts of a version-2 header (``suite_id`` of a format-2 suite):
    ``(prefix, middle)`` such that ``prefix + message_id + middle + commitment`` equals
    ``serialize_header(...)``. Memoized: every message under one cached data key (and frame
    length) shares them; the key hashes cheaply, ``header_fields`` being one bytes object
    per materials whose hash Python keeps."""
    return _VERSION_SUITE.pack(2, suite_id), header_fields + _TYPE_FRAME.pack(CONTENT_TYPE_FRAMED, frame_length)


def header_auth_tag(aead: AESGCM, suite: AlgorithmSuite, header_bytes: bytes) -> bytes:
    """The v2 header authentication tag (GCM over empty plaintext, zero IV)."""
    return aead.encrypt(bytes(suite.iv_length), b"", header_bytes)


def verify_header_auth(aead: AESGCM, header: MessageHeader) -> None:
    """Raise ``HeaderAuthenticationError`` unless the header tag verifies under ``aead``."""
    try:
        aead.decrypt(header.auth_iv, header.auth_tag, header.header_bytes)
    except InvalidTag as exc:
        raise HeaderAuthenticationError("header authentication failed") from exc


class _NeedMore(Exception):
    def __init__(self, total: int) -> None:
        self.total = total


def parse_header(data: bytes | bytearray | memoryview, policy: DecryptPolicy) -> tuple[MessageHeader | None, int]:
    """Parse a header and its authentication fields from the start of ``data``.

    Returns ``(header, consumed)`` once complete, else ``(None, needed)`` where
    ``needed`` is the total byte count to wait for before calling again. Raises a
    ``DecryptionError`` subclass for anything malformed, forbidden or over a cap.
    """
    with memoryview(data) as view:
        try:
            header, consumed = _parse(view if view.format == "B" else view.cast("B"), policy)
        except _NeedMore as need:
            if need.total > policy.max_header_bytes:
                raise HeaderLimitError("header exceeds the configured size") from None
            return None, need.total
    if consumed > policy.max_header_bytes:
        raise HeaderLimitError("header exceeds the configured size")
    return header, consumed


def _parse(view: memoryview, policy: DecryptPolicy) -> tuple[MessageHeader, int]:
    """Straight-line parse with explicit offsets; ``_NeedMore(end)`` names the end of the
    first field that has not fully arrived (several fixed fields may be checked at once)."""
    size = len(view)
    if size < 1:
        raise _NeedMore(1)
    version = view[0]
    if version == 2:
        if size < 3:
            raise _NeedMore(3)
        suite = _suite(_U16.unpack_from(view, 1)[0], 2, policy)
        pos = 3
    elif version == 1:
        if size < 2:
            raise _NeedMore(2)
        if view[1] != V1_TYPE_CUSTOMER_AED:
            raise MalformedHeaderError("unknown message type")
        if size < 4:
            raise _NeedMore(4)
        suite = _suite(_U16.unpack_from(view, 2)[0], 1, policy)
        pos = 4
    else:
        raise MalformedHeaderError("unknown message format version")
    end = pos + suite.message_id_length + 2
    if end > size:
        raise _NeedMore(end)
    message_id = bytes(view[pos : end - 2])
    fields_start = end - 2
    (context_length,) = _U16.unpack_from(view, fields_start)
    if context_length > policy.max_context_bytes:
        raise HeaderLimitError("encryption context exceeds the configured size")
    pos = end + context_length
    if pos + 2 > size:
        raise _NeedMore(pos + 2)
    (count,) = _U16.unpack_from(view, pos)
    if count == 0:
        raise MalformedHeaderError("no encrypted data keys")
    if count > policy.max_encrypted_data_keys:
        raise HeaderLimitError("too many encrypted data keys")
    pos += 2
    for _ in range(3 * count):  # provider id, provider info, ciphertext: each 2-byte length + bytes
        if pos + 2 > size:
            raise _NeedMore(pos + 2)
        pos += 2 + _U16.unpack_from(view, pos)[0]
        if pos > size:
            raise _NeedMore(pos)
    context, edks = _header_fields(bytes(view[fields_start:pos]))
    if pos + 1 > size:
        raise _NeedMore(pos + 1)
    if view[pos] != CONTENT_TYPE_FRAMED:
        raise MalformedHeaderError("only framed content is supported")
    pos += 1
    if version == 1:
        if pos + 5 > size:
            raise _NeedMore(pos + 5)
        if view[pos : pos + 4] != _V1_RESERVED:
            raise MalformedHeaderError("reserved field is not zero")
        if view[pos + 4] != suite.iv_length:
            raise MalformedHeaderError("IV length does not match the suite")
        pos += 5
    if pos + 4 > size:
        raise _NeedMore(pos + 4)
    (frame_length,) = _U32.unpack_from(view, pos)
    if frame_length == 0:
        raise MalformedHeaderError("frame length is zero")
    if frame_length > policy.max_frame_length:
        raise HeaderLimitError("frame length exceeds the configured maximum")
    header_end = pos + 4 + suite.commitment_length
    auth_end = header_end + suite.tag_length + (suite.iv_length if version == 1 else 0)
    if auth_end > size:
        raise _NeedMore(auth_end)
    if version == 1:
        auth_iv = bytes(view[header_end : header_end + suite.iv_length])
    else:
        auth_iv = _ZERO_IVS.get(suite.iv_length) or bytes(suite.iv_length)
    header = MessageHeader(
        suite=suite,
        message_id=message_id,
        encryption_context=context,
        encrypted_data_keys=edks,
        frame_length=frame_length,
        commitment_key=bytes(view[pos + 4 : header_end]),
        header_bytes=bytes(view[:header_end]),
        auth_iv=auth_iv,
        auth_tag=bytes(view[auth_end - suite.tag_length : auth_end]),
    )
    return header, auth_end


@lru_cache(maxsize=FIELDS_MEMO_ENTRIES)
def _header_fields(data: bytes) -> tuple[Mapping[str, str], tuple[EncryptedDataKey, ...]]:
    """The encryption context and encrypted data keys from the header bytes that hold
    them (AAD length through the last EDK; ``_parse`` has checked every length and cap).

    Memoized: messages written under one cached data key share these bytes exactly, so a
    busy reader decodes each distinct set once. The values are immutable; failures are
    not memoized. At most ``FIELDS_MEMO_ENTRIES`` entries of at most the header cap each
    are kept.
    """
    (context_length,) = _U16.unpack_from(data, 0)
    context = MappingProxyType(parse_context(data[2 : 2 + context_length]))
    (count,) = _U16.unpack_from(data, 2 + context_length)
    pos = 4 + context_length
    edks = []
    for _ in range(count):
        fields = []
        for _part in range(3):
            end = pos + 2 + _U16.unpack_from(data, pos)[0]
            fields.append(data[pos + 2 : end])
            pos = end
        try:
            provider_id = fields[0].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedHeaderError("provider id is not UTF-8") from exc
        edks.append(EncryptedDataKey(provider_id, fields[1], fields[2]))
    return context, tuple(edks)


def _suite(suite_id: int, version: int, policy: DecryptPolicy) -> AlgorithmSuite:
    suite = suite_by_id(suite_id)
    if suite is None or suite.message_format_version != version:
        raise UnsupportedSuiteError("unknown algorithm suite")
    if not suite.committing and not policy.allow_non_committing:
        raise ForbiddenSuiteError("non-committing algorithm suites are not allowed")
    if suite.signed and not policy.allow_signed:
        raise ForbiddenSuiteError("signed algorithm suites are not allowed")
    return suite
