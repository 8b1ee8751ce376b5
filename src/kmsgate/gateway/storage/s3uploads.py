"""Multipart uploads of the s3 backend, mapped onto the upstream's own multipart uploads.

Our upload id is the upstream's. At ``create_upload`` a fresh version token goes into the
upstream upload's user metadata (the completed object carries it, see
``kmsgate.gateway.storage.s3meta``) and the upload record ``.kmsgate/uploads/<sha256(id)>``
keeps the token and the metadata blob until the upload ends. ``complete_upload`` reads the
parts' sizes from the upstream (``ListParts``), writes the sidecar with the blob and those
sizes, then completes upstream: the object appears with its sidecar already there. Abort,
expiry and the end of a completion delete the upload record (and an unused sidecar).

``list_uploads`` reports the upstream's initiation times. ``expire_uploads`` judges an
upload's age by the later of that time and its record's write time (some S3-compatible servers
report a fixed time); an upload whose record is missing (a crash inside ``create_upload``) is
judged by the upstream's time alone.

A part's metadata blob is a record of its own beside the upload record (see
``kmsgate.gateway.storage.s3meta``), written after the part; ``list_parts`` reads the records
(a few at a time) and keeps a blob only where its ETag is the upstream part's. The records go
when the upload ends.

Each part is sent as one upstream ``UploadPart``. A part of known length
(``open_part_write(length=...)``) streams to it as it is written
(``kmsgate.gateway.storage.s3stream``), its last chunk kept back until ``commit`` so that a
part abandoned midway never reaches the upstream; a writer holds a few chunks whatever the part
size. A part of unknown length, at most ``max_part_bytes``, is spooled (memory up to 256 KiB,
then a temporary file: ``kmsgate.gateway.storage.spool``) and sent from there at ``commit``. The upstream's own rules apply (S3 refuses parts but the last
below ``MIN_PART_BYTES`` at completion: ``EntityTooSmall``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kmsgate.gateway.storage.base import (
    InvalidArgument,
    InvalidPart,
    NoSuchUpload,
    ObjectNotFound,
    PartInfo,
    StorageError,
    StoredObject,
    UploadInfo,
    check_completion,
    check_metadata,
    check_part_metadata,
    check_part_number,
    check_sealed_etag,
)
from kmsgate.gateway.storage.s3errors import CLIENT_ERRORS, clean_etag, translate
from kmsgate.gateway.storage.s3stream import StreamedCall
from kmsgate.gateway.storage.spool import Spool
from kmsgate.gateway.storage.s3meta import (
    Sidecar,
    decode_part_record,
    decode_upload_record,
    encode_part_record,
    encode_upload_record,
    new_token,
    sidecar_fields,
)

if TYPE_CHECKING:
    from kmsgate.gateway.storage.s3 import S3Storage

log = logging.getLogger(__name__)

PART_RECORD_READS = 16
"""Part records ``list_parts`` reads at once."""


class S3PartWriter:
    """Streams one part of known ``length``, else spools it (at most ``max_part_bytes``) and
    sends it at ``commit``; see the module docstring."""

    def __init__(self, uploads: S3Uploads, s3_key: str, upload_id: str, part_number: int,
                 length: int | None = None) -> None:
        self._uploads = uploads
        self._s3_key = s3_key
        self._upload_id = upload_id
        self._part_number = part_number
        self._length = length
        self._call: StreamedCall | None = None
        self._held: bytes | None = None
        self._spool = Spool()
        self._written = 0
        self._done = False
        self.peak_held_bytes = 0
        """Most bytes this writer held at once (buffered, queued for the upstream, kept back)."""

    @property
    def bytes_written(self) -> int:
        return self._written

    def _note_held(self) -> None:
        held = self._spool.memory_bytes + len(self._held or b"") + (self._call.held_bytes if self._call else 0)
        self.peak_held_bytes = max(self.peak_held_bytes, held)

    def _start_call(self, length: int) -> StreamedCall:
        storage = self._uploads.storage
        return StreamedCall(length, lambda body: storage.streaming_client.upload_part(
            Bucket=storage.bucket, Key=self._s3_key, UploadId=self._upload_id, PartNumber=self._part_number,
            Body=body, ContentLength=length))

    async def _write_streamed(self, chunk: bytes, length: int) -> None:
        if not chunk:  # nothing to send, and never the kept-back last chunk
            return
        if self._written + len(chunk) > length:
            await self.abort()
            raise StorageError("part longer than its declared length")
        self._written += len(chunk)
        if self._written == length:  # the last chunk: sent at commit
            self._held = chunk
            self._note_held()
            return
        try:
            if self._call is None:
                self._call = self._start_call(length)
            await self._call.feed(chunk)
            self._note_held()
        except CLIENT_ERRORS as exc:
            await self.abort()
            raise translate(exc, "upload part") from exc
        except BaseException:
            await self.abort()
            raise

    async def write(self, chunk: bytes | bytearray) -> None:
        if self._done:
            raise StorageError("write after commit or abort")
        if self._length is not None:
            await self._write_streamed(bytes(chunk), self._length)
            return
        if self._written + len(chunk) > self._uploads.max_part_bytes:
            await self.abort()
            raise InvalidArgument(f"a part exceeds {self._uploads.max_part_bytes} bytes")
        self._written += len(chunk)
        try:
            await self._spool.write(chunk)
        except BaseException:
            await self.abort()
            raise
        self._note_held()

    async def _send(self) -> dict[str, Any]:
        """The whole part upstream: the spool, or the last chunk of a streamed part."""
        storage = self._uploads.storage
        if self._length is None:
            return dict(await storage.client.upload_part(Bucket=storage.bucket, Key=self._s3_key,
                                                         UploadId=self._upload_id, PartNumber=self._part_number,
                                                         Body=await self._spool.body(),
                                                         ContentLength=self._spool.size))
        if self._held is None:
            raise StorageError("part shorter than its declared length")
        held, self._held = self._held, None
        if self._call is None:
            self._call = self._start_call(self._length)
        await self._call.feed(held)
        call, self._call = self._call, None
        return await call.result()

    async def commit(self, metadata: bytes = b"") -> PartInfo:
        if self._done:
            raise StorageError("commit after commit or abort")
        metadata = check_part_metadata(metadata)
        try:
            resp = await self._send()
        except CLIENT_ERRORS as exc:
            await self.abort()
            raise translate(exc, "upload part") from exc
        except BaseException:
            await self.abort()
            raise
        self._done = True
        self._spool.close()
        etag = clean_etag(resp.get("ETag"))
        if metadata:
            await self._uploads.write_part_record(self._upload_id, self._part_number, etag, metadata)
        return PartInfo(self._part_number, self._written, etag, time.time(), metadata)

    async def abort(self) -> None:
        self._done = True
        self._spool.close()
        self._held = None
        call, self._call = self._call, None
        if call is not None:
            await call.cancel()


class S3Uploads:
    """The multipart half of ``S3Storage``."""

    def __init__(self, storage: S3Storage, *, max_part_bytes: int) -> None:
        self.storage = storage
        self.max_part_bytes = max_part_bytes

    def _record_key(self, upload_id: str) -> str:
        digest = hashlib.sha256(upload_id.encode("utf-8")).hexdigest()
        return f"{self.storage.prefix}.kmsgate/uploads/{digest}"

    def _part_records(self, upload_id: str) -> str:
        digest = hashlib.sha256(upload_id.encode("utf-8")).hexdigest()
        return f"{self.storage.prefix}.kmsgate/parts/{digest}/"

    async def write_part_record(self, upload_id: str, part_number: int, etag: str, metadata: bytes) -> None:
        storage = self.storage
        try:
            await storage.client.put_object(Bucket=storage.bucket, Key=f"{self._part_records(upload_id)}{part_number}",
                                            Body=encode_part_record(etag, metadata))
        except CLIENT_ERRORS as exc:
            raise translate(exc, "part record write") from exc

    async def _part_metadata(self, upload_id: str, part: PartInfo) -> bytes:
        """The blob kept with ``part``: its record's, when the record is of this very part."""
        storage = self.storage
        try:
            resp = await storage.client.get_object(Bucket=storage.bucket,
                                                   Key=f"{self._part_records(upload_id)}{part.part_number}")
            async with resp["Body"] as body:
                data = await body.read()
        except CLIENT_ERRORS as exc:
            err = translate(exc, "part record read")
            if isinstance(err, ObjectNotFound):
                return b""
            raise err from exc
        try:
            etag, metadata = decode_part_record(data)
        except ValueError as exc:
            raise StorageError("s3 part record is damaged") from exc
        return metadata if etag == part.etag else b""

    async def _drop_part_records(self, upload_id: str) -> None:
        """Delete an ended upload's part records. Best effort: a record left behind is never read
        (upload ids are not reused)."""
        storage = self.storage
        try:
            names = [str(entry["Key"]) async for entry in storage.keys(self._part_records(upload_id))]
            for name in names:
                await storage.client.delete_object(Bucket=storage.bucket, Key=name)
        except StorageError as exc:
            log.warning("s3 part record delete failed: %s", exc)
        except CLIENT_ERRORS as exc:
            log.warning("s3 part record delete failed: %s", translate(exc, "part record delete"))

    async def _read_record(self, upload_id: str) -> tuple[str, bytes]:
        storage = self.storage
        try:
            resp = await storage.client.get_object(Bucket=storage.bucket, Key=self._record_key(upload_id))
            async with resp["Body"] as body:
                data = await body.read()
        except CLIENT_ERRORS as exc:
            err = translate(exc, "upload record read")
            if isinstance(err, ObjectNotFound):
                raise NoSuchUpload(upload_id) from exc
            raise err from exc
        try:
            return decode_upload_record(data)
        except ValueError as exc:
            raise StorageError("s3 upload record is damaged") from exc

    async def create_upload(self, bucket: str, key: str, metadata: bytes = b"") -> str:
        metadata = check_metadata(metadata)
        storage = self.storage
        await storage.head_bucket(bucket)
        token = new_token()
        s3_key = storage.object_key(bucket, key)
        try:
            resp = await storage.client.create_multipart_upload(Bucket=storage.bucket, Key=s3_key,
                                                                Metadata=sidecar_fields(token))
        except CLIENT_ERRORS as exc:
            raise translate(exc, "create upload") from exc
        upload_id = str(resp["UploadId"])
        try:
            await storage.client.put_object(Bucket=storage.bucket, Key=self._record_key(upload_id),
                                            Body=encode_upload_record(token, metadata))
        except CLIENT_ERRORS as exc:
            await self._abort_upstream(s3_key, upload_id)
            raise translate(exc, "create upload") from exc
        return upload_id

    async def open_part_write(self, bucket: str, key: str, upload_id: str, part_number: int, *,
                              length: int | None = None) -> S3PartWriter:
        check_part_number(part_number)
        await self._read_record(upload_id)
        return S3PartWriter(self, self.storage.object_key(bucket, key), upload_id, part_number, length)

    async def upload_metadata(self, bucket: str, key: str, upload_id: str) -> bytes:
        await self.storage.head_bucket(bucket)
        _, metadata = await self._read_record(upload_id)
        return metadata

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        parts = await self._upstream_parts(bucket, key, upload_id)
        blobs: list[bytes] = []
        for i in range(0, len(parts), PART_RECORD_READS):
            blobs += await asyncio.gather(*(self._part_metadata(upload_id, p) for p in parts[i : i + PART_RECORD_READS]))
        return [PartInfo(p.part_number, p.size, p.etag, p.last_modified, blob) for p, blob in zip(parts, blobs)]

    async def _upstream_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        storage = self.storage
        await storage.head_bucket(bucket)
        parts: list[PartInfo] = []
        marker = 0
        while True:
            try:
                resp = await storage.client.list_parts(Bucket=storage.bucket, Key=storage.object_key(bucket, key),
                                                       UploadId=upload_id, PartNumberMarker=marker)
            except CLIENT_ERRORS as exc:
                raise translate(exc, "list parts") from exc
            for p in resp.get("Parts", []):
                modified = p.get("LastModified")
                parts.append(PartInfo(int(p["PartNumber"]), int(p["Size"]), clean_etag(p.get("ETag")),
                                      modified.timestamp() if modified is not None else time.time()))
            if not resp.get("IsTruncated"):
                return parts
            marker = int(resp["NextPartNumberMarker"])

    async def _upstream_uploads(self, s3_prefix: str) -> list[dict[str, Any]]:
        storage = self.storage
        found: list[dict[str, Any]] = []
        args: dict[str, Any] = {"Bucket": storage.bucket, "Prefix": s3_prefix}
        while True:
            try:
                resp = await storage.client.list_multipart_uploads(**args)
            except CLIENT_ERRORS as exc:
                raise translate(exc, "list uploads") from exc
            found.extend(resp.get("Uploads", []))
            if not resp.get("IsTruncated"):
                return found
            args["KeyMarker"] = resp.get("NextKeyMarker", "")
            args["UploadIdMarker"] = resp.get("NextUploadIdMarker", "")

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        storage = self.storage
        await storage.head_bucket(bucket)
        base = storage.object_key(bucket, "")
        uploads = [UploadInfo(str(u["Key"])[len(base):], str(u["UploadId"]), u["Initiated"].timestamp())
                   for u in await self._upstream_uploads(base + prefix)]
        return sorted(uploads, key=lambda u: (u.key, u.initiated, u.upload_id))

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, part_numbers: Sequence[int], metadata: bytes | None = None,
        sealed_etag: bytes = b"",
    ) -> StoredObject:
        numbers = check_completion(part_numbers)
        sealed_etag = check_sealed_etag(sealed_etag)
        if metadata is not None:
            metadata = check_metadata(metadata)
        storage = self.storage
        token, upload_metadata = await self._read_record(upload_id)
        if metadata is None:
            metadata = upload_metadata
        parts, previous = await asyncio.gather(self._upstream_parts(bucket, key, upload_id),
                                               storage.previous_token(bucket, key))
        by_number = {p.part_number: p for p in parts}
        missing = [n for n in numbers if n not in by_number]
        if missing:
            raise InvalidPart(f"part {missing[0]} was not uploaded")
        sizes = tuple(by_number[n].size for n in numbers)
        await storage.write_sidecar(token, Sidecar(metadata, sizes, sealed_etag))
        try:
            resp = await storage.client.complete_multipart_upload(
                Bucket=storage.bucket, Key=storage.object_key(bucket, key), UploadId=upload_id,
                MultipartUpload={"Parts": [{"ETag": f'"{by_number[n].etag}"', "PartNumber": n} for n in numbers]},
            )
        except CLIENT_ERRORS as exc:
            raise translate(exc, "complete upload") from exc
        if previous is not None and previous != token:
            await storage.discard_sidecar(previous)
        await self._drop_part_records(upload_id)
        await self._delete_record(upload_id)
        return StoredObject(bucket=bucket, key=key, size=sum(sizes), etag=clean_etag(resp.get("ETag")),
                            last_modified=time.time(), metadata=metadata, part_sizes=sizes, sealed_etag=sealed_etag)

    async def _delete_record(self, upload_id: str) -> None:
        storage = self.storage
        try:
            await storage.client.delete_object(Bucket=storage.bucket, Key=self._record_key(upload_id))
        except CLIENT_ERRORS as exc:
            log.warning("s3 upload record delete failed: %s", translate(exc, "upload record delete"))

    async def _abort_upstream(self, s3_key: str, upload_id: str) -> None:
        storage = self.storage
        try:
            await storage.client.abort_multipart_upload(Bucket=storage.bucket, Key=s3_key, UploadId=upload_id)
        except ClientError as exc:
            err = translate(exc, "abort upload")
            if not isinstance(err, (NoSuchUpload, ObjectNotFound)):
                raise err from exc

    async def _abort(self, s3_key: str, upload_id: str) -> None:
        """Abort upstream, then drop the sidecar (written by a completion that failed) and the record."""
        try:
            await self._abort_upstream(s3_key, upload_id)
        except CLIENT_ERRORS as exc:
            raise translate(exc, "abort upload") from exc
        try:
            token, _ = await self._read_record(upload_id)
        except NoSuchUpload:
            return
        await self.storage.discard_sidecar(token)
        await self._drop_part_records(upload_id)
        await self._delete_record(upload_id)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.storage.head_bucket(bucket)
        await self._read_record(upload_id)  # NoSuchUpload for an id that was never ours
        await self._abort(self.storage.object_key(bucket, key), upload_id)

    async def abort_all(self, bucket: str) -> None:
        """Abort every upload of ``bucket`` (a bucket being deleted)."""
        for u in await self._upstream_uploads(self.storage.object_key(bucket, "")):
            await self._abort(str(u["Key"]), str(u["UploadId"]))

    async def _initiated(self, upload: dict[str, Any]) -> float:
        """When an upload began: the later of the upstream's word and our record's write time
        (they agree on S3; some S3-compatible servers report a fixed or coarse time). Without a
        record (a crash right after the upstream create), the upstream's word."""
        storage = self.storage
        upstream = float(upload["Initiated"].timestamp())
        try:
            resp = await storage.client.head_object(Bucket=storage.bucket, Key=self._record_key(str(upload["UploadId"])))
        except CLIENT_ERRORS as exc:
            err = translate(exc, "upload record head")
            if isinstance(err, ObjectNotFound):
                return upstream
            raise err from exc
        return max(upstream, float(resp["LastModified"].timestamp()))

    async def expire_uploads(self, older_than_seconds: float) -> int:
        storage = self.storage
        cutoff = time.time() - older_than_seconds
        internal = f"{storage.prefix}.kmsgate/"
        aborted = 0
        for u in await self._upstream_uploads(storage.prefix):
            key = str(u["Key"])
            if key.startswith(internal) or u["Initiated"].timestamp() >= cutoff or await self._initiated(u) >= cutoff:
                continue
            await self._abort(key, str(u["UploadId"]))
            aborted += 1
        return aborted
