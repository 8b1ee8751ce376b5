"""Stored objects as a service with no HTTP in it: put, read (whole or one range), head, delete.

Every front (the ``/v1/objects`` routes, the S3 API) is a thin adapter over ``ObjectService``:
it turns its request into a call here and the result (or a ``GatewayError``) into its own
response. What happens here:

* **Access.** Each call is first an S3 action on the object's ARN, decided by the caller's
  identity policy (``kmsgate.gateway.object_access``). A missing object is ``NoSuchKey`` only
  for a caller who may list the bucket, ``AccessDenied`` for anyone else.
* **Put.** The body, an async iterable of blocks, is encrypted as it arrives into one AWS
  Encryption SDK message under the caller's data key for (CMK, context), where the context is
  the caller's plus ``aws:s3:arn`` = the object's ARN; the storage writer commits it
  (durable, atomic) or aborts it on any failure, the body's own included. A front that keeps
  metadata with the object (the S3 API) passes ``describe``: once the body ended, it is given
  the plaintext's MD5 and returns the metadata, which is sealed under the message's data key
  (``kmsgate.gateway.sealed_metadata``) and committed with the object; it may raise (a digest
  the client sent that does not match), and then nothing is stored. Such an object's S3 ETag
  (the MD5's hex) is also committed sealed under the catalog key, bound to the object and its
  message id, for listings (``kmsgate.gateway.listing_etag``); without the catalog key it is not,
  and listings report the message id.
* **Metadata back.** ``head`` and ``read`` open an object's sealed metadata with the data key
  they obtained anyway (``ObjectInfo.metadata``, empty for objects stored without any); sealed
  metadata that does not open for this message and name is ``ObjectCorrupt``.
* **Read.** The stored message's header gives the context: one naming another object is
  ``ObjectCorrupt`` before any KMS call (it was moved or copied there). The data key comes
  from the caller's cache or a KMS ``Decrypt`` as the caller, which authenticates the header.
  The plaintext size follows from the stored size, and is stated only after the final frame
  authenticated where that size puts it (``kmsgate.gateway.final_frame``): a truncated object
  is ``ObjectCorrupt`` before anything is returned. A range reads and decrypts only the
  regular frames that hold it, plus the verified final frame. An object read whole with its
  header (the file backend reads its first megabyte with the open) is decrypted and verified
  whole, and returned as bytes; otherwise ``ObjectRead.chunks`` yields plaintext only from
  frames that verified, and raises (so the front aborts its response) at the first that does not.
* **Multipart objects** (made by ``kmsgate.gateway.multipart_service``) are read by
  ``kmsgate.gateway.multipart_reader``, part by part; a single part's message is never
  accepted as a whole object.
* **Signed messages** (suite 0x0578, which kmsgate reads but does not write) end with a
  signature over the whole message, of a length the format does not fix: their size is known
  only once that signature verified. So reads ignore the range and stream the whole body,
  which ends only once the signature verified; ``head`` authenticates the header and states
  no size.
* **Parts.** ``read`` and ``head`` take a ``part_number``: the plaintext of that part of a
  multipart object, served as a range (``ObjectRead.served``; ``part_range`` for ``head``).
  A single-part object has one part, the whole object. Any other number is
  ``InvalidPartNumber`` (416).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmsgate.core.principal import Caller
from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.errors import DataKeyUnavailableError, DecryptionError, TruncatedMessageError
from kmsgate.envelope.header import MessageHeader, parse_header
from kmsgate.envelope.ranges import RangeDecryptor, RangeUnsupportedError, plaintext_length, plan_range
from kmsgate.gateway.encryption import (
    check_context,
    check_length,
    check_requested_context,
    encrypted,
    etag_of,
    key_arn,
)
from kmsgate.gateway.errors import GatewayError, corrupt
from kmsgate.gateway.final_frame import FinalFrame, open_same_object, verified_final_frame
from kmsgate.gateway.headers import RangeNotSatisfiable, parse_range
from kmsgate.gateway.listing_etag import VersionKind
from kmsgate.gateway.multipart_reader import MultipartReader
from kmsgate.gateway.multipart_records import PART_NUMBER_CONTEXT_KEY
from kmsgate.gateway.object_access import (
    DELETE_OBJECT,
    GET_OBJECT,
    LIST_BUCKET,
    PUT_OBJECT,
    bind_context,
    bucket_arn,
    is_bound_to,
    object_arn,
)
from kmsgate.gateway.sealed_metadata import MetadataError, open_sealed, seal
from kmsgate.gateway.storage.base import ObjectNotFound, ObjectReader, StoredObject
from kmsgate.s3.etags import md5_etag

if TYPE_CHECKING:
    from kmsgate.gateway.service import Gateway


@dataclass(frozen=True, slots=True)
class PutResult:
    """A committed object: its plaintext and stored sizes, the CMK's ARN and the (quoted) ETag."""

    bucket: str
    key: str
    size: int
    stored_size: int
    kms_key_arn: str
    etag: str
    md5: bytes | None = None
    """The plaintext's MD5, when ``describe`` was given."""
    last_modified: float = 0.0
    """When storage committed it (seconds since the epoch)."""


Describe = Callable[[bytes], bytes]
"""Given the plaintext's MD5 once the body ended, the metadata to keep (sealed) with the object."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a reader may be told of an object before its body: ``size`` is ``None`` when the
    stored message is signed (no size can be vouched for short of reading it whole)."""

    etag: str
    last_modified: float
    size: int | None
    kms_key_arn: str = ""
    """The CMK the object's data key is encrypted under."""
    metadata: bytes = b""
    """The metadata a front kept with the object (opened), empty when it kept none."""
    part_sizes: tuple[int, ...] = ()
    """The plaintext size of each part of a multipart object; empty for a single-part one."""

    @property
    def accepts_ranges(self) -> bool:
        return self.size is not None


class ObjectRead:
    """An object opened for reading: ``body`` (verified whole) or ``chunks()``; close it when done.

    ``served`` is the half-open plaintext range returned when a range was asked for and
    served (a 206), else ``None``.
    """

    __slots__ = ("info", "served", "body", "_chunks", "_close")

    def __init__(self, info: ObjectInfo, *, served: tuple[int, int] | None = None, body: bytes | None = None,
                 chunks: AsyncIterator[bytes | bytearray] | None = None,
                 close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.info = info
        self.served = served
        self.body = body
        self._chunks = chunks
        self._close = close

    @property
    def length(self) -> int | None:
        """Bytes the reader will get, when known before they flow."""
        if self.body is not None:
            return len(self.body)
        if self.served is not None:
            return self.served[1] - self.served[0]
        return self.info.size

    async def chunks(self) -> AsyncIterator[bytes | bytearray]:
        """The plaintext in verified pieces (nothing when ``body`` holds it)."""
        if self._chunks is not None:
            async for chunk in self._chunks:
                if chunk:
                    yield chunk

    async def aclose(self) -> None:
        if self._chunks is not None and hasattr(self._chunks, "aclose"):
            await self._chunks.aclose()
        if self._close is not None:
            close, self._close = self._close, None
            await close()


def invalid_part_number() -> GatewayError:
    return GatewayError(416, "InvalidPartNumber", "The requested partnumber is not satisfiable")


def part_range(info: ObjectInfo, part_number: int) -> tuple[int, int] | None:
    """The half-open plaintext range of part ``part_number`` of the object ``info`` describes
    (``None``: the whole object, when its size is not known or it is empty)."""
    if not info.part_sizes:
        if part_number != 1:
            raise invalid_part_number()
        return (0, info.size) if info.size else None
    if not 1 <= part_number <= len(info.part_sizes):
        raise invalid_part_number()
    start = sum(info.part_sizes[: part_number - 1])
    return start, start + info.part_sizes[part_number - 1]


def _plaintext_length(header: MessageHeader, stored_size: int) -> int | None:
    """The plaintext size, or ``None`` for signed messages (their footer length varies)."""
    try:
        return plaintext_length(header, stored_size)
    except RangeUnsupportedError:
        return None


def _info(stored: StoredObject, header: MessageHeader, size: int | None, data_key: bytes, arn: str) -> ObjectInfo:
    try:
        metadata = open_sealed(stored.metadata, data_key=data_key, message_id=header.message_id, arn=arn)
    except MetadataError:
        raise corrupt() from None
    edks = header.encrypted_data_keys
    return ObjectInfo(etag=etag_of(header), last_modified=stored.last_modified, size=size,
                      kms_key_arn=edks[0].provider_info.decode("utf-8", "replace") if edks else "",
                      metadata=metadata)


class ObjectService:
    """Objects in buckets, as one gateway process serves them (see the module docstring)."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def put(self, caller: Caller, bucket: str, key: str, body: AsyncIterable[bytes], *,
                  key_id: str | None, encryption_context: Mapping[str, str], length: int | None,
                  describe: Describe | None = None) -> PutResult:
        """Encrypt ``body`` (``length`` bytes, when declared) into the object ``bucket/key``;
        with ``describe``, keep its metadata with it (see the module docstring)."""
        gateway = self._gateway
        arn = object_arn(bucket, key)
        gateway.object_access.check(caller, PUT_OBJECT, arn)
        check_requested_context(encryption_context)
        context = bind_context(encryption_context, arn)
        check_length(length, gateway.settings.max_object_bytes)
        materials = gateway.materials_for(caller)
        entry = await materials.encryption_materials(
            key_id=key_id or gateway.settings.default_key_id, encryption_context=context, plaintext_length=length)
        encryptor = Encryptor(entry.materials, frame_length=gateway.settings.frame_length)
        digest = hashlib.md5(usedforsecurity=False) if describe is not None else None
        stored_length = encryptor.output_length(length, final=True) if length is not None else None
        writer = await gateway.storage.open_write(bucket, key, length=stored_length)
        try:
            async for data in encrypted(gateway, materials, entry, encryptor, body, digest=digest):
                await writer.write(data)
            if length is not None and encryptor.plaintext_length != length:
                raise GatewayError(400, "IncompleteBody", "The body is not as long as its declared length.")
            if describe is None or digest is None:
                stored = await writer.commit()
            else:
                message_id = encryptor.header.message_id
                metadata = seal(describe(digest.digest()), data_key=entry.materials.data_key,
                                message_id=message_id, arn=arn)
                sealed_etag = await gateway.catalog_key.seal(md5_etag(digest.digest()), bucket=bucket, key=key,
                                                             kind=VersionKind.MESSAGE_ID, version=message_id)
                stored = await writer.commit(metadata=metadata, sealed_etag=sealed_etag)
        except BaseException:
            await writer.abort()
            raise
        return PutResult(bucket=bucket, key=key, size=encryptor.plaintext_length, stored_size=stored.size,
                         kms_key_arn=key_arn(entry), etag=etag_of(encryptor.header),
                         md5=digest.digest() if digest is not None else None, last_modified=stored.last_modified)

    async def delete(self, caller: Caller, bucket: str, key: str) -> None:
        """Remove ``bucket/key``; removing a missing object succeeds."""
        self._gateway.object_access.check(caller, DELETE_OBJECT, object_arn(bucket, key))
        await self._gateway.storage.delete(bucket, key)

    async def head(self, caller: Caller, bucket: str, key: str, *, part_number: int | None = None) -> ObjectInfo:
        """What a read would say of ``bucket/key`` before its body, vouched for as a read's is;
        ``part_number``, when given, must name one of its parts (``part_range``)."""
        gateway = self._gateway
        arn = object_arn(bucket, key)
        gateway.object_access.check(caller, GET_OBJECT, arn)
        reader = await self._open(caller, bucket, key)
        stored = reader.info
        if stored.part_sizes:
            await reader.aclose()
            info = await MultipartReader(gateway).head(caller, stored)
            if part_number is not None:
                part_range(info, part_number)
            return info
        if part_number not in (None, 1):
            await reader.aclose()
            raise invalid_part_number()
        try:
            header, buffered, _ = await self._header(reader, aiter(reader), arn)
        finally:
            await reader.aclose()
        size = _plaintext_length(header, stored.size)
        data_key = await self._data_key(caller, header)
        try:
            if size is None:  # signed: no size to vouch for; the header authenticates under the data key
                Decryptor.for_header(header, gateway.settings.decrypt_policy).set_data_key(data_key)
            else:
                await verified_final_frame(gateway, key, stored, header, data_key, buffered)
        except DecryptionError:
            raise corrupt() from None
        return _info(stored, header, size, data_key, arn)

    async def read(self, caller: Caller, bucket: str, key: str, *, byte_range: str | None = None,
                   part_number: int | None = None,
                   expected_context: Mapping[str, str] | None = None) -> ObjectRead:
        """Open ``bucket/key`` for reading, the whole object, or ``byte_range`` (``bytes=a-b``,
        ``bytes=a-``, ``bytes=-n``), or part ``part_number`` (not both). ``expected_context``,
        when given, must be the object's own context (the binding pair aside)."""
        gateway = self._gateway
        arn = object_arn(bucket, key)
        gateway.object_access.check(caller, GET_OBJECT, arn)
        reader = await self._open(caller, bucket, key)
        if reader.info.part_sizes:
            await reader.aclose()
            return await MultipartReader(gateway).read(caller, reader.info, byte_range=byte_range,
                                                       part_number=part_number, expected_context=expected_context)
        if part_number not in (None, 1):
            await reader.aclose()
            raise invalid_part_number()
        try:
            stored = reader.info
            chunks = aiter(reader)
            header, buffered, header_length = await self._header(reader, chunks, arn)
            size = _plaintext_length(header, stored.size)
            data_key = await self._data_key(caller, header)
            final: FinalFrame | None = None
            ranged = byte_range is not None or part_number is not None
            if size is not None and (len(buffered) < stored.size or ranged):
                # The size is about to be stated, or a range served: the final frame vouches for both.
                # (An object read whole with its header is verified whole before anything is returned.)
                try:
                    final = await verified_final_frame(gateway, key, stored, header, data_key, buffered)
                except DecryptionError:
                    raise corrupt() from None
            wanted = None
            if size is not None:
                try:
                    wanted = parse_range(byte_range, size) if part_number is None else (0, size) if size else None
                except RangeNotSatisfiable:
                    raise GatewayError(416, "InvalidRange", "The requested range is not satisfiable.") from None
            info = _info(stored, header, size, data_key, arn)
            if wanted is not None and final is not None:
                await reader.aclose()
                return await self._read_range(key, stored, header, data_key, info, wanted,
                                              expected_context or {}, final)
            opened = self._read_whole(reader, chunks, header, buffered, header_length, data_key, info,
                                      expected_context or {})
        except BaseException:
            await reader.aclose()
            raise
        return opened

    async def _open(self, caller: Caller, bucket: str, key: str) -> ObjectReader:
        """Open ``key`` for a caller allowed ``s3:GetObject`` on it; as S3 does, a missing object is
        404 only for a caller who may also list the bucket, 403 for anyone else."""
        try:
            return await self._gateway.storage.open_read(bucket, key)
        except ObjectNotFound:
            self._gateway.object_access.check(caller, LIST_BUCKET, bucket_arn(bucket))
            raise

    async def _header(self, reader: ObjectReader, chunks: AsyncIterator[bytes],
                      arn: str) -> tuple[MessageHeader, bytearray, int]:
        """The stored message's header, from the first chunks, every byte read so far, and the
        header's length in them; a message naming another object is corrupt here (checked before
        any KMS call; the header is authenticated with the data key afterwards)."""
        buf = bytearray()
        policy = self._gateway.settings.decrypt_policy
        try:
            while True:
                chunk = await anext(chunks, None)
                if chunk is None:
                    raise TruncatedMessageError("stored object ends inside its header")
                buf += chunk
                header, consumed = parse_header(buf, policy)
                if header is not None:
                    break
        except DecryptionError:
            raise corrupt() from None
        if not is_bound_to(header.encryption_context, arn) or PART_NUMBER_CONTEXT_KEY in header.encryption_context:
            raise corrupt()  # another object's, or one part of a multipart upload
        return header, buf, consumed

    async def _data_key(self, caller: Caller, header: MessageHeader) -> bytes:
        """The data key of a stored message, unwrapped as the caller (cache or KMS ``Decrypt``)."""
        try:
            return await self._gateway.materials_for(caller).data_key(header)
        except DataKeyUnavailableError:
            raise
        except DecryptionError:
            raise corrupt() from None

    def _read_whole(self, reader: ObjectReader, chunks: AsyncIterator[bytes], header: MessageHeader,
                    buffered: bytearray, header_length: int, data_key: bytes, info: ObjectInfo,
                    expected: Mapping[str, str]) -> ObjectRead:
        decryptor = Decryptor.for_header(header, self._gateway.settings.decrypt_policy)
        try:
            decryptor.set_data_key(data_key)
        except DecryptionError:
            raise corrupt() from None
        check_context(header, expected)
        body_bytes = memoryview(buffered)[header_length:]
        if len(buffered) == reader.info.size:  # read whole with its header: verified whole, returned as bytes
            try:
                body = decryptor.update(body_bytes)
                rest = decryptor.finalize()
            except DecryptionError:
                raise corrupt() from None
            if rest:
                body += rest
            return ObjectRead(info, body=bytes(body), close=reader.aclose)
        pool = self._gateway.pool

        async def plaintext() -> AsyncIterator[bytes | bytearray]:
            yield await pool.run(decryptor.update, body_bytes)
            async for chunk in chunks:
                yield await pool.run(decryptor.update, chunk)
            yield decryptor.finalize()

        return ObjectRead(info, chunks=plaintext(), close=reader.aclose)

    async def _read_range(self, key: str, stored: StoredObject, header: MessageHeader, data_key: bytes,
                          info: ObjectInfo, wanted: tuple[int, int], expected: Mapping[str, str],
                          final: FinalFrame) -> ObjectRead:
        """Regular frames holding the range, streamed from storage; then the part of the range in
        the final frame, whose plaintext was verified before anything is returned."""
        gateway = self._gateway
        start, end = wanted
        plan = plan_range(final.span, header, stored.size, start, end - 1)
        check_context(header, expected)
        decryptor: RangeDecryptor | None = None
        reader: ObjectReader | None = None
        if plan.frames is not None:  # the header already authenticated, with the final frame
            decryptor = RangeDecryptor(header, data_key, plan.frames, gateway.settings.decrypt_policy)
            reader = await open_same_object(gateway, key, stored, plan.frames.start, plan.frames.end)

        async def plaintext() -> AsyncIterator[bytes | bytearray]:
            if reader is not None and decryptor is not None:
                async for chunk in reader:
                    yield await gateway.pool.run(decryptor.update, chunk)
                yield decryptor.finalize()
            yield final.plaintext[plan.tail_start : plan.tail_end]

        return ObjectRead(info, served=wanted, chunks=plaintext(), close=reader.aclose if reader else None)
