"""Multipart uploads and copies as a service with no HTTP in it (S3's rules, our encryption).

Formats and bindings are in ``kmsgate.gateway.multipart_records``; reading the result in
``kmsgate.gateway.multipart_reader``. What happens here:

* **create** (``s3:PutObject`` on the object, as S3 authorizes it) encrypts the caller's object
  metadata into the upload record under the CMK and the caller's context, and makes a storage
  upload carrying it. Its header remembers the CMK and context for the parts.
* **upload_part** (``s3:PutObject``) encrypts the body as it arrives into one Encryption SDK
  message of its own, under the upload's CMK and context plus the part's binding (object,
  upload id, part number), hashing the plaintext on the way: the part's ETag is its MD5. The
  MD5 and plaintext size are sealed under the upload record's key beside the part. Memory is a
  block and a frame, whatever the part's size.
* **complete** (``s3:PutObject``) applies S3's rules -- part numbers ascending
  (``InvalidPartOrder``), every named part uploaded with that ETag (``InvalidPart``), all but
  the last at least 5 MiB of plaintext (``EntityTooSmall``) -- and stores the completion record
  as the object's metadata; the object's ETag is ``md5(part MD5s)-<count>``, also committed
  sealed under the catalog key, bound to the object and its upload id, for listings
  (``kmsgate.gateway.listing_etag``).
* **copy** and **upload_part_copy** read the source as the caller (``s3:GetObject``) and
  encrypt it again for the destination (``s3:PutObject``), streaming: a copy is a put of the
  source's plaintext (``ObjectService.put``), so its metadata is sealed the one way a put's is.

Every KMS call acts as the caller: one ``GenerateDataKey`` per part (its context is its own),
and a ``Decrypt`` of the upload record per upload and caller (then cached).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmsgate.core.principal import Caller
from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.errors import DataKeyUnavailableError, DecryptionError
from kmsgate.envelope.header import MessageHeader, parse_header
from kmsgate.gateway.encryption import check_length, check_requested_context, encrypted
from kmsgate.gateway.errors import GatewayError, corrupt
from kmsgate.gateway.listing_etag import VersionKind, upload_version
from kmsgate.gateway.multipart_records import (
    MAX_PART_NUMBER,
    RESERVED_CONTEXT_PREFIX,
    ObjectRecord,
    PartRecord,
    RecordError,
    callers_context,
    completion_fits,
    encode_completion,
    is_upload_record_of,
    open_part,
    part_context,
    record_context,
    seal_part,
)
from kmsgate.gateway.object_access import PUT_OBJECT, bucket_arn, object_arn
from kmsgate.gateway.object_service import Describe, ObjectInfo, ObjectService, PutResult
from kmsgate.gateway.storage.base import MAX_METADATA_BYTES, MIN_PART_BYTES
from kmsgate.s3.etags import multipart_etag, part_md5_of

if TYPE_CHECKING:
    from kmsgate.gateway.service import Gateway

LIST_PARTS = "s3:ListMultipartUploadParts"
LIST_UPLOADS = "s3:ListBucketMultipartUploads"
ABORT_UPLOAD = "s3:AbortMultipartUpload"
MAX_OBJECT_METADATA_BYTES = 32 * 1024
"""Largest object metadata record ``create`` and ``copy`` take (the completion record keeps
it with up to 10,000 part numbers within storage's 64 KiB)."""
MAX_PART_BYTES = 5 * 1024**3
"""S3's largest part (5 GiB)."""

DescribeCopy = Callable[[ObjectInfo], Describe]
"""Given the copy source's info once it is open (before anything is written), the destination's
``describe``; it may raise (a copy-source precondition that fails), and then nothing is written."""


def invalid_part(message: str) -> GatewayError:
    return GatewayError(400, "InvalidPart", message)


@dataclass(frozen=True, slots=True)
class PartResult:
    """A part as S3 reports it: number, quoted ETag (MD5 of its plaintext), plaintext size."""

    part_number: int
    etag: str
    size: int
    last_modified: float


@dataclass(frozen=True, slots=True)
class UploadSummary:
    key: str
    upload_id: str
    initiated: float


@dataclass(frozen=True, slots=True)
class CompleteResult:
    bucket: str
    key: str
    etag: str
    """Quoted, ``"<md5 of the part MD5s>-<count>"``."""
    size: int
    stored_size: int
    kms_key_arn: str


@dataclass(frozen=True, slots=True)
class _Upload:
    """An upload opened as one caller: its record (authenticated), CMK and the caller's context."""

    upload_id: str
    record: bytes
    header: MessageHeader
    record_key: bytes
    kms_key_arn: str
    encryption_context: Mapping[str, str]


def _check_metadata(metadata: bytes) -> None:
    if len(metadata) > MAX_OBJECT_METADATA_BYTES:
        raise GatewayError(400, "MetadataTooLarge",
                           f"The object metadata exceeds {MAX_OBJECT_METADATA_BYTES} bytes.")


def _check_context(encryption_context: Mapping[str, str]) -> None:
    check_requested_context(encryption_context)
    if any(k.startswith(RESERVED_CONTEXT_PREFIX) for k in encryption_context):
        raise GatewayError(400, "InvalidArgument",
                           f"Encryption context keys starting with {RESERVED_CONTEXT_PREFIX} are reserved.")


def _check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise GatewayError(400, "InvalidArgument", f"Part number must be an integer between 1 and {MAX_PART_NUMBER}.")


class MultipartService:
    """Multipart uploads and copies of objects, as one gateway process serves them."""

    __slots__ = ("_gateway", "_objects")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._objects = ObjectService(gateway)

    # -- uploads --

    async def create(self, caller: Caller, bucket: str, key: str, *, key_id: str | None,
                     encryption_context: Mapping[str, str], metadata: bytes) -> str:
        """Start an upload of ``bucket/key``; return its id."""
        gateway = self._gateway
        arn = object_arn(bucket, key)
        gateway.object_access.check(caller, PUT_OBJECT, arn)
        _check_context(encryption_context)
        _check_metadata(metadata)
        materials = gateway.materials_for(caller)
        entry = await materials.encryption_materials(key_id=key_id or gateway.settings.default_key_id,
                                                     encryption_context=record_context(encryption_context, arn),
                                                     plaintext_length=len(metadata))
        materials.cache.record_bytes(entry, len(metadata))
        record = Encryptor(entry.materials, frame_length=gateway.settings.frame_length).encrypt(metadata)
        return await gateway.storage.create_upload(bucket, key, bytes(record))

    async def _upload(self, caller: Caller, bucket: str, key: str, upload_id: str) -> _Upload:
        """The upload's record, authenticated with its data key unwrapped as the caller."""
        gateway = self._gateway
        record = await gateway.storage.upload_metadata(bucket, key, upload_id)
        try:
            header, consumed = parse_header(record, gateway.settings.decrypt_policy)
        except DecryptionError:
            raise corrupt() from None
        if header is None or not is_upload_record_of(header.encryption_context, object_arn(bucket, key)):
            raise corrupt()
        try:
            record_key = await gateway.materials_for(caller).data_key(header)
            decryptor = Decryptor.for_header(header, gateway.settings.decrypt_policy)
            decryptor.set_data_key(record_key)
            decryptor.update(record[consumed:])
            decryptor.finalize()
        except DataKeyUnavailableError:
            raise
        except DecryptionError:
            raise corrupt() from None
        cmk = header.encrypted_data_keys[0].provider_info.decode("utf-8", "replace")
        return _Upload(upload_id, record, header, record_key, cmk, callers_context(header.encryption_context))

    async def upload_part(self, caller: Caller, bucket: str, key: str, upload_id: str, part_number: int,
                          body: AsyncIterable[bytes], length: int | None) -> PartResult:
        """Encrypt ``body`` into part ``part_number`` (replacing an earlier one of that number)."""
        gateway = self._gateway
        arn = object_arn(bucket, key)
        gateway.object_access.check(caller, PUT_OBJECT, arn)
        _check_part_number(part_number)
        check_length(length, min(MAX_PART_BYTES, gateway.settings.max_object_bytes))
        upload = await self._upload(caller, bucket, key, upload_id)
        materials = gateway.materials_for(caller)
        entry = await materials.encryption_materials(
            key_id=upload.kms_key_arn, plaintext_length=length,
            encryption_context=part_context(upload.encryption_context, arn, upload_id, part_number))
        encryptor = Encryptor(entry.materials, frame_length=gateway.settings.frame_length)
        md5 = hashlib.md5(usedforsecurity=False)
        stored_length = encryptor.output_length(length, final=True) if length is not None else None
        writer = await gateway.storage.open_part_write(bucket, key, upload_id, part_number, length=stored_length)
        try:
            async for out in encrypted(gateway, materials, entry, encryptor, body, digest=md5):
                await writer.write(out)
            size = encryptor.plaintext_length
            if length is not None and size != length:
                raise GatewayError(400, "IncompleteBody", "The body is not as long as its declared length.")
            digest = md5.digest()
            sealed = seal_part(PartRecord(digest, size), record_key=upload.record_key,
                               record_message_id=upload.header.message_id, upload_id=upload_id,
                               part_number=part_number)
            stored = await writer.commit(sealed)
        except BaseException:
            await writer.abort()
            raise
        return PartResult(part_number, f'"{digest.hex()}"', size, stored.last_modified)

    async def upload_part_copy(self, caller: Caller, bucket: str, key: str, upload_id: str, part_number: int, *,
                               src_bucket: str, src_key: str, byte_range: str | None = None,
                               check_source: Callable[[ObjectInfo], None] | None = None) -> PartResult:
        """Part ``part_number`` made of ``src_bucket/src_key`` (or ``byte_range`` of it), read as the
        caller; ``check_source``, given the source's info before anything is written, may refuse it."""
        self._gateway.object_access.check(caller, PUT_OBJECT, object_arn(bucket, key))
        _check_part_number(part_number)
        await self._upload(caller, bucket, key, upload_id)  # fail before the source is opened
        source = await self._objects.read(caller, src_bucket, src_key, byte_range=byte_range)
        try:
            if check_source is not None:
                check_source(source.info)
            return await self.upload_part(caller, bucket, key, upload_id, part_number,
                                          _blocks(source.chunks(), source.body), source.length)
        finally:
            await source.aclose()

    async def _parts(self, caller: Caller, bucket: str, key: str,
                     upload: _Upload) -> dict[int, tuple[PartRecord, float]]:
        """The upload's parts that carry a record, opened: number -> (record, last modified)."""
        parts: dict[int, tuple[PartRecord, float]] = {}
        for part in await self._gateway.storage.list_parts(bucket, key, upload.upload_id):
            if not part.metadata:
                continue  # written without a record (a write that raced another): never completed
            try:
                opened = open_part(part.metadata, record_key=upload.record_key,
                                   record_message_id=upload.header.message_id, upload_id=upload.upload_id,
                                   part_number=part.part_number)
            except RecordError:
                raise corrupt() from None
            parts[part.part_number] = (opened, part.last_modified)
        return parts

    async def list_parts(self, caller: Caller, bucket: str, key: str, upload_id: str) -> list[PartResult]:
        self._gateway.object_access.check(caller, LIST_PARTS, object_arn(bucket, key))
        upload = await self._upload(caller, bucket, key, upload_id)
        parts = await self._parts(caller, bucket, key, upload)
        return [PartResult(n, f'"{record.md5.hex()}"', record.plaintext_size, modified)
                for n, (record, modified) in sorted(parts.items())]

    async def list_uploads(self, caller: Caller, bucket: str, prefix: str = "") -> list[UploadSummary]:
        self._gateway.object_access.check(caller, LIST_UPLOADS, bucket_arn(bucket))
        return [UploadSummary(u.key, u.upload_id, u.initiated)
                for u in await self._gateway.storage.list_uploads(bucket, prefix)]

    async def complete(self, caller: Caller, bucket: str, key: str, upload_id: str,
                       parts: Sequence[tuple[int, str]]) -> CompleteResult:
        """Make the object of ``parts`` ((part number, ETag), ascending) under S3's rules."""
        gateway = self._gateway
        arn = object_arn(bucket, key)
        gateway.object_access.check(caller, PUT_OBJECT, arn)
        if not parts:
            raise GatewayError(400, "MalformedXML", "A completion names at least one part.")
        numbers = [n for n, _ in parts]
        for n in numbers:
            _check_part_number(n)
        if any(a >= b for a, b in zip(numbers, numbers[1:])):
            raise GatewayError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        upload = await self._upload(caller, bucket, key, upload_id)
        uploaded = await self._parts(caller, bucket, key, upload)
        records: list[PartRecord] = []
        for n, etag in parts:
            found = uploaded.get(n)
            md5 = part_md5_of(etag)
            if found is None or md5 is None or not hmac.compare_digest(md5, found[0].md5):
                raise invalid_part(f"Part {n} was not uploaded, or its ETag does not match.")
            records.append(found[0])
        for n, record in zip(numbers[:-1], records[:-1]):
            if record.plaintext_size < MIN_PART_BYTES:
                raise GatewayError(400, "EntityTooSmall",
                                   f"Part {n} is smaller than the minimum allowed size of {MIN_PART_BYTES} bytes.")
        if not completion_fits(upload.record, len(numbers), MAX_METADATA_BYTES):
            raise GatewayError(400, "MetadataTooLarge", "The object metadata is too large for this many parts.")
        etag = multipart_etag([r.md5 for r in records])
        completion = encode_completion(upload.record, ObjectRecord(upload_id, etag, tuple(numbers)),
                                       record_key=upload.record_key, record_message_id=upload.header.message_id,
                                       arn=arn)
        sealed_etag = await gateway.catalog_key.seal(etag, bucket=bucket, key=key, kind=VersionKind.UPLOAD_ID,
                                                     version=upload_version(upload_id))
        stored = await gateway.storage.complete_upload(bucket, key, upload_id, numbers, metadata=completion,
                                                       sealed_etag=sealed_etag)
        return CompleteResult(bucket, key, f'"{etag}"', sum(r.plaintext_size for r in records), stored.size,
                              upload.kms_key_arn)

    async def abort(self, caller: Caller, bucket: str, key: str, upload_id: str) -> None:
        self._gateway.object_access.check(caller, ABORT_UPLOAD, object_arn(bucket, key))
        await self._gateway.storage.abort_upload(bucket, key, upload_id)

    async def expire(self, older_than_seconds: float) -> int:
        """Abort every upload started more than ``older_than_seconds`` ago (for a periodic task)."""
        return await self._gateway.storage.expire_uploads(older_than_seconds)

    # -- copies --

    async def copy(self, caller: Caller, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
                   key_id: str | None, encryption_context: Mapping[str, str],
                   describe: DescribeCopy | None = None) -> PutResult:
        """Decrypt ``src_bucket/src_key`` as the caller and encrypt it as ``dst_bucket/dst_key``
        under ``key_id`` and ``encryption_context``, streaming, through ``ObjectService.put``:
        with ``describe``, the destination's metadata is sealed beside it the one way a put seals it."""
        gateway = self._gateway
        gateway.object_access.check(caller, PUT_OBJECT, object_arn(dst_bucket, dst_key))
        _check_context(encryption_context)
        source = await self._objects.read(caller, src_bucket, src_key)
        try:
            describe_destination = _checked(describe(source.info)) if describe is not None else None
            return await self._objects.put(caller, dst_bucket, dst_key, _blocks(source.chunks(), source.body),
                                           key_id=key_id, encryption_context=encryption_context,
                                           length=source.length, describe=describe_destination)
        finally:
            await source.aclose()


def _checked(describe: Describe) -> Describe:
    """``describe`` with its metadata held to ``MAX_OBJECT_METADATA_BYTES``."""

    def checked(md5: bytes) -> bytes:
        metadata = describe(md5)
        _check_metadata(metadata)
        return metadata

    return checked


async def _blocks(chunks: AsyncIterator[bytes | bytearray], body: bytes | None) -> AsyncIterator[bytes]:
    """A read's plaintext as blocks: its verified body, or its chunks as they verify."""
    if body is not None:
        yield body
    async for chunk in chunks:
        yield bytes(chunk)
