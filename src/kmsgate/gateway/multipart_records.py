"""The records a multipart object keeps beside its parts' messages: formats and sealing, no I/O.

A multipart object is its parts' AWS Encryption SDK messages concatenated, one message per
part, each under the upload's CMK and a context of its own::

    <the caller's pairs>
    aws:s3:arn            arn:aws:s3:::<bucket>/<key>        (the object, as for every object)
    kmsgate:upload-id     <the upload id>
    kmsgate:part-number   <1..10000, decimal>

The message format authenticates its context, so a part moved to another object, another
upload or another position no longer matches what its reader expects (below) and fails.

**The upload record** is made at ``create``, before there is an upload id: a small SDK message
whose plaintext is the caller's object metadata, under the upload's CMK and the caller's context
plus ``aws:s3:arn`` and ``kmsgate:part-number`` = ``0`` (never a part: parts are 1..10000, and
the single-object reader refuses any message carrying ``kmsgate:part-number``). Storage keeps
it as the upload's metadata blob. Its header names the upload's CMK and context; its data key
(``record key``, unwrapped as the caller) seals the records below, with keys derived by
HKDF-SHA256(ikm = record key, salt = record message id, info = the record's label).

**A part record** (storage keeps it with the part) holds what completion needs without reading
the part: the MD5 of the part's plaintext (its ETag) and its plaintext size::

    version 1 byte 0x01 | nonce 12 bytes | AES-256-GCM(md5 16 bytes || u64 size) | tag 16 bytes
    info = b"kmsgate multipart part v1"
    associated data = info || u16 len(upload id) || upload id || u16 part number

so a record moved to another part or upload does not open.

**The completion record** is the object's metadata blob once the upload completed::

    u32 n | the upload record (n bytes) | version 0x01 | nonce 12 bytes | AES-256-GCM(body) | tag
    body = u16 len(upload id) || upload id || u16 len(etag) || etag (ASCII)
           || u16 count || count x u16 part number
    info = b"kmsgate multipart object v1"
    associated data = info || u16 len(arn) || arn

It says which upload made the object and which part numbers it holds, in order: a reader checks
every part message it decrypts against it (object, upload, part number at that position), and
that the object has that many parts, so parts reordered, dropped, duplicated or taken from
another upload are refused. The MD5s are sealed, never stored in the clear. All lengths are
checked before use; every failure is one ``RecordError``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsgate.envelope.context import RESERVED_PREFIX
from kmsgate.gateway.object_access import OBJECT_ARN_CONTEXT_KEY

UPLOAD_ID_CONTEXT_KEY = "kmsgate:upload-id"
PART_NUMBER_CONTEXT_KEY = "kmsgate:part-number"
RESERVED_CONTEXT_PREFIX = "kmsgate:"
"""Context keys the gateway sets itself; a caller may not."""
UPLOAD_RECORD_PART_NUMBER = "0"
MAX_PART_NUMBER = 10_000
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MD5_BYTES = 16
PART_INFO = b"kmsgate multipart part v1"
OBJECT_INFO = b"kmsgate multipart object v1"
MAX_UPLOAD_ID_BYTES = 1024
MAX_ETAG_BYTES = 64


class RecordError(Exception):
    """A record that does not decode or open under this upload and object."""


@dataclass(frozen=True, slots=True)
class PartRecord:
    md5: bytes
    plaintext_size: int


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """What the completion record seals: the upload, the object's ETag (unquoted) and its parts."""

    upload_id: str
    etag: str
    part_numbers: tuple[int, ...]


def record_context(encryption_context: Mapping[str, str], arn: str) -> dict[str, str]:
    """The context of an upload record (see the module docstring)."""
    return {**encryption_context, OBJECT_ARN_CONTEXT_KEY: arn, PART_NUMBER_CONTEXT_KEY: UPLOAD_RECORD_PART_NUMBER}


def part_context(encryption_context: Mapping[str, str], arn: str, upload_id: str, part_number: int) -> dict[str, str]:
    """The context of part ``part_number``'s message."""
    return {**encryption_context, OBJECT_ARN_CONTEXT_KEY: arn, UPLOAD_ID_CONTEXT_KEY: upload_id,
            PART_NUMBER_CONTEXT_KEY: str(part_number)}


def is_upload_record_of(context: Mapping[str, str], arn: str) -> bool:
    return (context.get(OBJECT_ARN_CONTEXT_KEY) == arn and UPLOAD_ID_CONTEXT_KEY not in context
            and context.get(PART_NUMBER_CONTEXT_KEY) == UPLOAD_RECORD_PART_NUMBER)


def is_part_of(context: Mapping[str, str], arn: str, upload_id: str, part_number: int) -> bool:
    return (context.get(OBJECT_ARN_CONTEXT_KEY) == arn and context.get(UPLOAD_ID_CONTEXT_KEY) == upload_id
            and context.get(PART_NUMBER_CONTEXT_KEY) == str(part_number))


def callers_context(context: Mapping[str, str]) -> dict[str, str]:
    """The caller's own pairs of a stored context: without the format's and the gateway's keys."""
    return {k: v for k, v in context.items()
            if not k.startswith(RESERVED_PREFIX) and not k.startswith(RESERVED_CONTEXT_PREFIX)
            and k != OBJECT_ARN_CONTEXT_KEY}


def _aead(record_key: bytes, record_message_id: bytes, info: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=record_message_id, info=info).derive(record_key))


def _with_length(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _seal(aead: AESGCM, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return bytes([VERSION]) + nonce + aead.encrypt(nonce, plaintext, associated_data)


def _open(aead: AESGCM, blob: bytes, associated_data: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != VERSION:
        raise RecordError("record has an unknown form")
    try:
        return aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], associated_data)
    except InvalidTag:
        raise RecordError("record failed authentication") from None


def _part_ad(upload_id: str, part_number: int) -> bytes:
    return PART_INFO + _with_length(upload_id.encode("utf-8")) + struct.pack(">H", part_number)


def seal_part(record: PartRecord, *, record_key: bytes, record_message_id: bytes, upload_id: str,
              part_number: int) -> bytes:
    if len(record.md5) != MD5_BYTES or record.plaintext_size < 0:
        raise ValueError("a part record is an MD5 and a size")
    aead = _aead(record_key, record_message_id, PART_INFO)
    return _seal(aead, record.md5 + struct.pack(">Q", record.plaintext_size), _part_ad(upload_id, part_number))


def open_part(blob: bytes, *, record_key: bytes, record_message_id: bytes, upload_id: str,
              part_number: int) -> PartRecord:
    plain = _open(_aead(record_key, record_message_id, PART_INFO), blob, _part_ad(upload_id, part_number))
    if len(plain) != MD5_BYTES + 8:
        raise RecordError("part record has the wrong length")
    (size,) = struct.unpack(">Q", plain[MD5_BYTES:])
    return PartRecord(plain[:MD5_BYTES], size)


def _object_ad(arn: str) -> bytes:
    return OBJECT_INFO + _with_length(arn.encode("utf-8"))


def encode_completion(upload_record: bytes, record: ObjectRecord, *, record_key: bytes, record_message_id: bytes,
                      arn: str) -> bytes:
    """The completion record for the object ``arn`` (see the module docstring)."""
    upload_id, etag = record.upload_id.encode("utf-8"), record.etag.encode("ascii")
    numbers = record.part_numbers
    if (len(upload_id) > MAX_UPLOAD_ID_BYTES or len(etag) > MAX_ETAG_BYTES or not 1 <= len(numbers) <= MAX_PART_NUMBER
            or not all(1 <= n <= MAX_PART_NUMBER for n in numbers)):
        raise ValueError("completion record over its caps")
    body = (_with_length(upload_id) + _with_length(etag) + struct.pack(">H", len(numbers))
            + struct.pack(f">{len(numbers)}H", *numbers))
    sealed = _seal(_aead(record_key, record_message_id, OBJECT_INFO), body, _object_ad(arn))
    return struct.pack(">I", len(upload_record)) + upload_record + sealed


def upload_record_of(completion: bytes) -> bytes:
    """The upload record a completion record carries (its SDK message, still to be authenticated)."""
    if len(completion) < 4:
        raise RecordError("completion record too short")
    (n,) = struct.unpack_from(">I", completion)
    if len(completion) < 4 + n:
        raise RecordError("completion record too short")
    return completion[4 : 4 + n]


def _take(data: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if len(data) < pos + n:
        raise RecordError("completion record too short")
    return data[pos : pos + n], pos + n


def _take_u16(data: bytes, pos: int) -> tuple[int, int]:
    raw, pos = _take(data, pos, 2)
    return int.from_bytes(raw, "big"), pos


def open_completion(completion: bytes, *, record_key: bytes, record_message_id: bytes, arn: str) -> ObjectRecord:
    """The sealed half of a completion record, opened for the object ``arn``."""
    upload_record = upload_record_of(completion)
    body = _open(_aead(record_key, record_message_id, OBJECT_INFO), completion[4 + len(upload_record) :],
                 _object_ad(arn))
    n, pos = _take_u16(body, 0)
    upload_id, pos = _take(body, pos, n)
    n, pos = _take_u16(body, pos)
    etag, pos = _take(body, pos, n)
    count, pos = _take_u16(body, pos)
    raw, pos = _take(body, pos, 2 * count)
    if pos != len(body) or count == 0:
        raise RecordError("completion record has the wrong length")
    try:
        return ObjectRecord(upload_id.decode("utf-8"), etag.decode("ascii"), struct.unpack(f">{count}H", raw))
    except UnicodeDecodeError:
        raise RecordError("completion record is malformed") from None


def completion_fits(upload_record: bytes, part_count: int, limit: int) -> bool:
    """Whether a completion record of ``part_count`` parts stays within ``limit`` bytes."""
    return 4 + len(upload_record) + 1 + NONCE_BYTES + TAG_BYTES + 6 + MAX_UPLOAD_ID_BYTES + MAX_ETAG_BYTES \
        + 2 * part_count <= limit

