"""Reading a multipart object: its parts' messages, each checked against the completion record.

A multipart object (``StoredObject.part_sizes`` not empty) is one AWS Encryption SDK message
per part, concatenated; its metadata blob is the completion record
(``kmsgate.gateway.multipart_records``). Opening one, as the caller:

1. The completion record's upload record must be bound to this object; its data key (cache
   or KMS ``Decrypt`` as the caller) authenticates it and opens the sealed list of the
   object's upload id, ETag and part numbers, which must be as many as the stored parts.
2. Every part's header is read (a small ranged read each, a few parts at a time): it must name
   this object, this upload and the part number at its position; its data key is unwrapped as
   the caller, and its final frame is authenticated where the part's stored size puts it. Only
   then is the part's plaintext size, and so the object's (their sum), stated.
3. A read (whole, or one range) decrypts only the frames of the parts the range touches, from
   ranged reads of the same object version; each part's run of frames is authenticated as it
   streams, and plaintext is yielded only from frames that verified.

Cost of opening: per part one header read, one data-key unwrap (cached per caller) and one
final-frame read of at most a frame; nothing is held but each part's header and offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmsgate.core.principal import Caller
from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.errors import DataKeyUnavailableError, DecryptionError
from kmsgate.envelope.header import MessageHeader, parse_header
from kmsgate.envelope.ranges import RangeDecryptor, final_frame_span, frame_span, plaintext_length
from kmsgate.gateway.errors import GatewayError, corrupt
from kmsgate.gateway.final_frame import open_same_object
from kmsgate.gateway.headers import RangeNotSatisfiable, parse_range
from kmsgate.gateway.multipart_records import (
    ObjectRecord,
    RecordError,
    callers_context,
    is_part_of,
    is_upload_record_of,
    open_completion,
    upload_record_of,
)
from kmsgate.gateway.object_access import object_arn
from kmsgate.gateway.storage.base import StoredObject

if TYPE_CHECKING:
    from kmsgate.gateway.object_service import ObjectInfo, ObjectRead
    from kmsgate.gateway.service import Gateway

HEADER_READ_BYTES = 8 * 1024
"""First read of a part's header; a larger header is read again, up to ``MAX_HEADER_BYTES``."""
MAX_HEADER_BYTES = 256 * 1024
PARTS_AT_ONCE = 8
"""Parts whose header and final frame are checked concurrently while an object opens."""


@dataclass(frozen=True, slots=True)
class VerifiedPart:
    """One part whose header and final frame authenticated: where it is, stored and in plaintext."""

    start: int
    stored_size: int
    header: MessageHeader
    data_key: bytes
    plaintext_start: int
    plaintext_size: int


@dataclass(frozen=True, slots=True)
class MultipartObject:
    """A multipart object opened as one caller: its record, caller's context and metadata, and parts."""

    stored: StoredObject
    record: ObjectRecord
    encryption_context: Mapping[str, str]
    metadata: bytes
    parts: tuple[VerifiedPart, ...]
    kms_key_arn: str
    """The CMK of the upload (every part's data key is encrypted under it)."""

    @property
    def size(self) -> int:
        return sum(p.plaintext_size for p in self.parts)

    @property
    def etag(self) -> str:
        return f'"{self.record.etag}"'


class MultipartReader:
    """Opens and reads multipart objects for one gateway (see the module docstring)."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def _data_key(self, caller: Caller, header: MessageHeader) -> bytes:
        try:
            return await self._gateway.materials_for(caller).data_key(header)
        except DataKeyUnavailableError:
            raise
        except DecryptionError:
            raise corrupt() from None

    async def open(self, caller: Caller, stored: StoredObject) -> MultipartObject:
        """Authenticate the completion record and every part's header and final frame."""
        gateway = self._gateway
        arn = object_arn(stored.bucket, stored.key)
        policy = gateway.settings.decrypt_policy
        try:
            upload_record = upload_record_of(stored.metadata)
            header, consumed = parse_header(upload_record, policy)
        except (RecordError, DecryptionError):
            raise corrupt() from None
        if header is None or not is_upload_record_of(header.encryption_context, arn):
            raise corrupt()
        record_key = await self._data_key(caller, header)
        try:
            decryptor = Decryptor.for_header(header, policy)
            decryptor.set_data_key(record_key)
            metadata = bytes(decryptor.update(upload_record[consumed:]) + decryptor.finalize())
            record = open_completion(stored.metadata, record_key=record_key, record_message_id=header.message_id,
                                     arn=arn)
        except (DecryptionError, RecordError):
            raise corrupt() from None
        if len(record.part_numbers) != len(stored.part_sizes):
            raise corrupt()
        starts = [sum(stored.part_sizes[:i]) for i in range(len(stored.part_sizes))]
        checked: list[tuple[MessageHeader, bytes, int]] = []
        for first in range(0, len(starts), PARTS_AT_ONCE):
            checked += await asyncio.gather(*(
                self._check_part(caller, stored, arn, record, i, starts[i])
                for i in range(first, min(first + PARTS_AT_ONCE, len(starts)))))
        parts, offset = [], 0
        for i, (part_header, data_key, size) in enumerate(checked):
            parts.append(VerifiedPart(starts[i], stored.part_sizes[i], part_header, data_key, offset, size))
            offset += size
        cmk = header.encrypted_data_keys[0].provider_info.decode("utf-8", "replace")
        return MultipartObject(stored, record, callers_context(header.encryption_context), metadata, tuple(parts),
                               cmk)

    async def _read_header(self, stored: StoredObject, start: int, size: int) -> tuple[MessageHeader, bytes]:
        policy = self._gateway.settings.decrypt_policy
        for limit in (HEADER_READ_BYTES, MAX_HEADER_BYTES):
            reader = await open_same_object(self._gateway, stored.key, stored, start, start + min(size, limit))
            try:
                data = b"".join([chunk async for chunk in reader])
            finally:
                await reader.aclose()
            try:
                header, _ = parse_header(data, policy)
            except DecryptionError:
                raise corrupt() from None
            if header is not None:
                return header, data
            if limit >= size:
                break
        raise corrupt()

    async def _check_part(self, caller: Caller, stored: StoredObject, arn: str, record: ObjectRecord, index: int,
                          start: int) -> tuple[MessageHeader, bytes, int]:
        """Part ``index``'s header, data key and plaintext size, once its binding and final frame checked."""
        gateway = self._gateway
        size = stored.part_sizes[index]
        header, buffered = await self._read_header(stored, start, size)
        if not is_part_of(header.encryption_context, arn, record.upload_id, record.part_numbers[index]):
            raise corrupt()
        data_key = await self._data_key(caller, header)
        try:
            span = final_frame_span(header, size)
            if len(buffered) >= span.end:
                final = buffered[span.start : span.end]
            else:
                reader = await open_same_object(gateway, stored.key, stored, start + span.start, start + span.end)
                try:
                    final = b"".join([chunk async for chunk in reader])
                finally:
                    await reader.aclose()
            decryptor = RangeDecryptor(header, data_key, span, gateway.settings.decrypt_policy)
            decryptor.update(final)
            decryptor.finalize()
            return header, data_key, plaintext_length(header, size)
        except (DecryptionError, ValueError):  # ValueError: a signed or malformed layout
            raise corrupt() from None

    def info(self, opened: MultipartObject) -> ObjectInfo:
        from kmsgate.gateway.object_service import ObjectInfo

        return ObjectInfo(etag=opened.etag, last_modified=opened.stored.last_modified, size=opened.size,
                          kms_key_arn=opened.kms_key_arn, metadata=opened.metadata,
                          part_sizes=tuple(p.plaintext_size for p in opened.parts))

    async def head(self, caller: Caller, stored: StoredObject) -> ObjectInfo:
        return self.info(await self.open(caller, stored))

    async def read(self, caller: Caller, stored: StoredObject, *, byte_range: str | None = None,
                   part_number: int | None = None, expected_context: Mapping[str, str] | None = None) -> ObjectRead:
        """The object, or one range or one part of it, streamed from the parts that hold it."""
        from kmsgate.gateway.object_service import ObjectRead, part_range

        opened = await self.open(caller, stored)
        if expected_context and dict(expected_context) != dict(opened.encryption_context):
            raise GatewayError(400, "EncryptionContextMismatch",
                               "The encryption context does not match the one the object was encrypted with.")
        info = self.info(opened)
        try:
            wanted = parse_range(byte_range, opened.size) if part_number is None else part_range(info, part_number)
        except RangeNotSatisfiable:
            raise GatewayError(416, "InvalidRange", "The requested range is not satisfiable.") from None
        start, end = wanted if wanted is not None else (0, opened.size)
        return ObjectRead(info, served=wanted, chunks=self._plaintext(opened, start, end))

    async def _plaintext(self, opened: MultipartObject, start: int, end: int) -> AsyncIterator[bytes | bytearray]:
        """Plaintext ``[start, end)``: for each part it overlaps, the frames holding its share."""
        gateway = self._gateway
        stored = opened.stored
        for part in opened.parts:
            lo = max(start, part.plaintext_start)
            hi = min(end, part.plaintext_start + part.plaintext_size)
            if lo >= hi:
                continue
            try:
                span = frame_span(part.header, part.stored_size, lo - part.plaintext_start,
                                  hi - part.plaintext_start - 1)
                decryptor = RangeDecryptor(part.header, part.data_key, span, gateway.settings.decrypt_policy)
            except (DecryptionError, ValueError):
                raise corrupt() from None
            reader = await open_same_object(gateway, stored.key, stored, part.start + span.start,
                                            part.start + span.end)
            try:
                async for chunk in reader:
                    try:
                        out = await gateway.pool.run(decryptor.update, chunk)
                    except DecryptionError:
                        raise corrupt() from None
                    if out:
                        yield out
                try:
                    out = decryptor.finalize()
                except DecryptionError:
                    raise corrupt() from None
                if out:
                    yield out
            finally:
                await reader.aclose()
