"""The ``s3`` storage backend: buckets of objects in one S3-compatible upstream bucket, through aiobotocore.

Upstream layout (all under ``prefix`` in the upstream ``bucket``)::

    <bucket>/<key>                    the stored bytes of object ``key`` of bucket ``bucket``
    .kmsgate/buckets/<bucket>         the bucket's registry entry (empty; created = LastModified)
    .kmsgate/configs/<bucket>/<name>  a bucket configuration document
    .kmsgate/meta/<token>             a sidecar: metadata blob and part sizes of one object version
    .kmsgate/uploads/<sha256(id)>     an in-progress multipart upload's token and metadata blob
    .kmsgate/catalog-key              the wrapped catalog key (created once, ``If-None-Match: *``)

A bucket name cannot start with ``.``, so ``.kmsgate/`` never collides with objects. How the
metadata blob and part sizes are kept (inline in the upstream user metadata when small, else in
a sidecar) and the formats are in ``kmsgate.gateway.storage.s3meta``. Objects stored before
buckets existed (``<prefix><key>``) are not moved; one whose key happens to start with a
bucket's name and ``/`` shows up in that bucket, with an empty metadata blob.

Credentials and, when not given, the region come from the standard AWS chain (environment,
shared files, instance roles); nothing here reads or logs them.

Writes of a known length (``open_write(length=...)``; the gateway knows a message's length
from the plaintext's) above ``BUFFERED_PUT_BYTES`` stream: the bytes go upstream as they are
written (``kmsgate.gateway.storage.s3stream``), one ``PutObject`` up to ``part_size``, else an
upstream multipart upload of ``part_size`` parts, each streamed. The last chunk is kept back
until ``commit``, which writes the sidecar (always used: the metadata is known only then) and
then sends it, so a write that fails or is aborted midway leaves nothing visible. A writer holds
at most a few chunks (``PIPE_CHUNKS`` per request, and the last one), whatever the object size.

Smaller writes, and writes of unknown length, accumulate in a ``Spool`` (memory up to 256 KiB,
then a temporary file; ``kmsgate.gateway.storage.spool``) of at most ``part_size`` (+ one chunk)
bytes. An object that ends before the spool first fills is sent with a single ``PutObject`` at
``commit``. Otherwise the writer starts an upstream multipart upload, sends each full spool as
a part (read from the file as it is sent), and ``commit`` sends the rest as the last part and completes the upload; S3 makes the
object visible only at completion, whole. Since ``commit(metadata=...)`` may replace the
metadata blob after the upload started, such an object always names a sidecar: its token is
chosen when the upload starts and the sidecar written at ``commit``, before the completion. On any failure, and on ``abort``, the upload is
aborted so no parts remain billed or visible. Memory per spooling writer is therefore bounded by
the spool's memory (256 KiB and a chunk) whatever the object size.

Sidecars are written before the object that names them and deleted after the object stops
naming them (a replacement or a delete learns the previous version's token with a ``HEAD`` when
it opens). Failure cases, all on the safe side (never a visible object without its metadata):
a crash or a failed write between the sidecar and the object leaves an unreferenced sidecar; a
commit whose outcome is unknown (a transport error) keeps its sidecar; two writers replacing one
key at once can each delete only the version they saw, so the loser's sidecar stays behind. An
unreferenced sidecar is a small object that nothing reads. A reader that finds an object's
sidecar gone (the object was replaced meanwhile) reads again.

A bucket is checked when a write or an upload opens, not again at commit: a write racing
``delete_bucket`` can leave an object under a deleted bucket's name, visible again if the bucket
is re-created. ``create_bucket`` relies on conditional writes (``If-None-Match: *``); an
upstream without them lets two concurrent creates both succeed.

Reads are ranged ``GetObject`` calls streamed in chunks of ``READ_CHUNK_BYTES``. Listing is
the upstream ``ListObjectsV2`` with the mapped prefix and the same delimiter: the mapping adds
the same prefix to every key, so the upstream order and grouping are ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from kmsgate.gateway.storage.base import (
    MAX_BUCKET_CONFIG_BYTES,
    MAX_LIST_KEYS,
    MIN_PART_BYTES,
    READ_CHUNK_BYTES,
    BucketAlreadyExists,
    BucketInfo,
    BucketNotEmpty,
    InvalidArgument,
    NoSuchBucket,
    ObjectEntry,
    ObjectNotFound,
    ObjectPage,
    PartInfo,
    RangeReader,
    StorageError,
    StoredObject,
    UploadInfo,
    check_catalog_key,
    check_metadata,
    check_sealed_etag,
    resolve_range,
    validate_bucket_name,
    validate_config_name,
)
from kmsgate.gateway.storage.s3errors import CLIENT_ERRORS, TRANSPORT_ERRORS, clean_etag, error_code, translate
from kmsgate.gateway.storage.s3meta import (
    MetadataRef,
    Sidecar,
    decode_sidecar,
    encode_sidecar,
    inline_fields,
    new_token,
    read_fields,
    sidecar_fields,
)
from kmsgate.gateway.storage.s3stream import StreamedCall
from kmsgate.gateway.storage.s3uploads import S3PartWriter, S3Uploads
from kmsgate.gateway.storage.spool import Spool

log = logging.getLogger(__name__)

DEFAULT_PART_BYTES = 8 * 1024 * 1024
BUFFERED_PUT_BYTES = 256 * 1024
"""Largest write of known length sent whole at ``commit`` (one request, metadata inline)."""
MAX_PARTS = 10_000
UPSTREAM_ATTEMPTS = 4
"""Attempts of an upstream request whose body can be sent again (botocore's retries)."""
CONNECT_TIMEOUT_SECONDS = 5.0
"""The longest an upstream request waits for its connection (less if its whole timeout is less)."""
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_OPEN_ATTEMPTS = 3

__all__ = ["DEFAULT_PART_BYTES", "MAX_PARTS", "MIN_PART_BYTES", "S3Storage"]


def _stamp(value: Any) -> float:
    return value.timestamp() if value is not None else time.time()


class _SidecarGone(Exception):
    """An object's sidecar vanished: the object was replaced or deleted while it was read."""


class S3ObjectWriter:
    """Streams one object into S3; see the module docstring."""

    def __init__(self, storage: S3Storage, bucket: str, key: str, metadata: bytes, previous: str | None,
                 length: int | None = None) -> None:
        self._storage = storage
        self._length = length if length is not None and length > BUFFERED_PUT_BYTES else None
        self._call: StreamedCall | None = None
        self._held: bytes | None = None  # a streamed write's last chunk, sent at commit
        self.peak_held_bytes = 0
        """Most bytes this writer held at once (buffered, queued for the upstream, kept back)."""
        self._bucket_name = bucket
        self._key = key
        self._metadata = metadata
        self._sealed_etag = b""
        self._previous = previous  # the sidecar token of the version this write replaces
        self._s3_key = storage.object_key(bucket, key)
        self._bucket = storage.bucket
        self._spool = Spool()
        self._written = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._fields: dict[str, str] | None = None
        self._token: str | None = None
        self._done = False
        self._put_response: dict[str, Any] = {}

    @property
    def bytes_written(self) -> int:
        return self._written

    async def _user_metadata(self) -> dict[str, str]:
        """The upstream user metadata, writing the sidecar first when one is needed."""
        if self._fields is None:
            self._token, self._fields = await self._storage.metadata_fields(
                Sidecar(self._metadata, sealed_etag=self._sealed_etag))
        return self._fields

    async def _send_part(self) -> None:
        """The spooled bytes upstream as the next part (the upload starts with the first)."""
        s3 = self._storage.client
        if self._upload_id is None:
            if self._fields is None:  # the sidecar itself is written at commit, with the final blob
                self._token = new_token()
                self._fields = sidecar_fields(self._token)
            fields = self._fields
            resp = await s3.create_multipart_upload(Bucket=self._bucket, Key=self._s3_key, Metadata=fields)
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError("s3 upload exceeds the part limit")
        resp = await s3.upload_part(
            Bucket=self._bucket,
            Key=self._s3_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=await self._spool.body(),
            ContentLength=self._spool.size,
        )
        self._parts.append({"ETag": resp["ETag"], "PartNumber": number})
        await self._spool.clear()

    def _note_held(self) -> None:
        held = self._spool.memory_bytes + len(self._held or b"") + (self._call.held_bytes if self._call else 0)
        self.peak_held_bytes = max(self.peak_held_bytes, held)

    async def _start_call(self) -> StreamedCall:
        """The upstream request for the next bytes of a streamed write."""
        s3, length, sent = self._storage.client, self._length or 0, len(self._parts) * self._storage.part_size
        streaming = self._storage.streaming_client
        if self._token is None:
            self._token = new_token()
            self._fields = sidecar_fields(self._token)
        fields = self._fields
        if length <= self._storage.part_size:
            return StreamedCall(length, lambda body: streaming.put_object(
                Bucket=self._bucket, Key=self._s3_key, Body=body, ContentLength=length, Metadata=fields))
        if self._upload_id is None:
            resp = await s3.create_multipart_upload(Bucket=self._bucket, Key=self._s3_key, Metadata=fields)
            self._upload_id = str(resp["UploadId"])
        upload_id, number = self._upload_id, len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError("s3 upload exceeds the part limit")
        part_length = min(self._storage.part_size, length - sent)
        return StreamedCall(part_length, lambda body: streaming.upload_part(
            Bucket=self._bucket, Key=self._s3_key, UploadId=upload_id, PartNumber=number, Body=body,
            ContentLength=part_length))

    async def _stream(self, data: bytes) -> None:
        """Send ``data`` upstream, across as many requests (parts) as it spans."""
        view = memoryview(data)
        while view:
            if self._call is None:
                self._call = await self._start_call()
            take = min(len(view), self._call.remaining)
            await self._call.feed(bytes(view[:take]))
            self._note_held()
            view = view[take:]
            if self._call.remaining == 0:
                call, self._call = self._call, None
                resp = await call.result()
                if self._upload_id is not None:
                    self._parts.append({"ETag": resp["ETag"], "PartNumber": len(self._parts) + 1})
                else:
                    self._put_response = resp

    async def _write_streamed(self, chunk: bytes) -> None:
        length = self._length or 0
        if not chunk:  # nothing to send, and never the kept-back last chunk
            return
        if self._written + len(chunk) > length:
            await self._abort(keep_sidecar=False)
            raise StorageError("write longer than its declared length")
        self._written += len(chunk)
        if self._written == length:  # the last chunk: sent at commit, after the sidecar
            self._held = chunk
            self._note_held()
            return
        try:
            await self._stream(chunk)
        except CLIENT_ERRORS as exc:
            await self._abort(keep_sidecar=False)
            raise translate(exc, "upload") from exc
        except BaseException:
            await self._abort(keep_sidecar=False)
            raise

    async def _commit_streamed(self) -> dict[str, Any]:
        """Write the sidecar, then send the last chunk; the upstream's answer to the last request."""
        if self._held is None:
            raise StorageError("write shorter than its declared length")
        held, self._held = self._held, None
        if self._token is None:  # everything was kept back: no request started yet
            self._token = new_token()
            self._fields = sidecar_fields(self._token)
        await self._storage.write_sidecar(self._token, Sidecar(self._metadata, sealed_etag=self._sealed_etag))
        await self._stream(held)
        if self._call is not None:  # every request must have had all its bytes before the completion
            raise StorageError("s3 streamed write incomplete")
        if self._upload_id is None:
            return self._put_response
        return dict(await self._storage.client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._s3_key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}))

    async def write(self, chunk: bytes | bytearray) -> None:
        if self._done:
            raise StorageError("write after commit or abort")
        if self._length is not None:
            await self._write_streamed(bytes(chunk))
            return
        self._written += len(chunk)
        try:
            await self._spool.write(chunk)
            self._note_held()
            if self._spool.size >= self._storage.part_size:
                await self._send_part()
        except CLIENT_ERRORS as exc:
            await self._abort(keep_sidecar=not isinstance(exc, ClientError))
            raise translate(exc, "upload part") from exc
        except BaseException:
            await self._abort(keep_sidecar=True)
            raise

    async def commit(self, metadata: bytes | None = None, sealed_etag: bytes = b"") -> StoredObject:
        if self._done:
            raise StorageError("commit after commit or abort")
        s3 = self._storage.client
        try:
            if metadata is not None:
                self._metadata = check_metadata(metadata)
            self._sealed_etag = check_sealed_etag(sealed_etag)
            if self._length is not None:
                resp = await self._commit_streamed()
            elif self._upload_id is None:
                fields = await self._user_metadata()
                resp = await s3.put_object(Bucket=self._bucket, Key=self._s3_key, Body=await self._spool.body(),
                                           ContentLength=self._spool.size, Metadata=fields)
            else:
                if self._spool.size:
                    await self._send_part()
                if self._token is not None:
                    await self._storage.write_sidecar(self._token, Sidecar(self._metadata,
                                                                           sealed_etag=self._sealed_etag))
                resp = await s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._s3_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except CLIENT_ERRORS as exc:
            # A rejection (ClientError) made nothing visible; after a transport error the
            # object may be there, naming the sidecar, so the sidecar stays.
            await self._abort(keep_sidecar=not isinstance(exc, ClientError))
            raise translate(exc, "commit") from exc
        except BaseException:
            await self._abort(keep_sidecar=True)
            raise
        self._done = True
        self._spool.close()
        if self._previous is not None and self._previous != self._token:
            await self._storage.discard_sidecar(self._previous)
        return StoredObject(bucket=self._bucket_name, key=self._key, size=self._written,
                            etag=clean_etag(resp.get("ETag")), last_modified=time.time(), metadata=self._metadata,
                            sealed_etag=self._sealed_etag)

    async def abort(self) -> None:
        await self._abort(keep_sidecar=False)

    async def _abort(self, *, keep_sidecar: bool) -> None:
        self._done = True
        self._spool.close()
        self._held = None
        call, self._call = self._call, None
        if call is not None:
            await call.cancel()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                await self._storage.client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._s3_key, UploadId=upload_id
                )
            except CLIENT_ERRORS as exc:
                # Best effort: abort runs on error paths, where raising would hide the first
                # failure. A bucket lifecycle rule for incomplete uploads is the backstop.
                log.warning("s3 abort of multipart upload failed: %s", translate(exc, "abort"))
        token, self._token = self._token, None
        if token is not None and not keep_sidecar:
            await self._storage.discard_sidecar(token)


class S3ObjectReader(RangeReader):
    """Streams ``[start, end)`` of an S3 object from one ``GetObject`` response."""

    def __init__(self, body: Any, info: StoredObject, start: int, end: int) -> None:
        super().__init__(info, start, end)
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        remaining = self._end - self._start
        try:
            while remaining > 0 and self._body is not None:
                try:
                    chunk = await self._body.read(min(READ_CHUNK_BYTES, remaining))
                except TRANSPORT_ERRORS as exc:
                    raise translate(exc, "read") from exc
                if not chunk:
                    raise StorageError("s3 read ended early")
                remaining -= len(chunk)
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()


class S3Storage:
    """Buckets of objects in ``bucket`` under ``prefix``. Create with ``await S3Storage.open(...)``."""

    name = "s3"

    def __init__(self, client: Any, stack: contextlib.AsyncExitStack, *, bucket: str,
                 prefix: str, part_size: int, max_part_bytes: int, streaming_client: Any = None) -> None:
        self.client = client
        self.streaming_client = client if streaming_client is None else streaming_client
        """The client for requests with a streamed body (``s3stream``): it sends each once. botocore
        retries by rewinding the body, which a stream cannot do, so a retry would only replace
        the attempt's own failure (a timeout, the upstream's error) with ``UnseekableStreamError``."""
        self._stack = stack
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.uploads = S3Uploads(self, max_part_bytes=max_part_bytes)

    @classmethod
    async def open(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_BYTES,
        max_part_bytes: int = 64 * 1024 * 1024,
        timeout_seconds: float = 60.0,
        max_pool_connections: int = 64,
    ) -> S3Storage:
        """Build a client from the standard AWS credential chain; close with ``close()``.

        ``max_part_bytes``: the largest part ``open_part_write`` takes when its length is not
        given (such a part is spooled to a temporary file, then sent); a part of known length
        streams. ``timeout_seconds``: how long a request waits to connect (at most
        ``CONNECT_TIMEOUT_SECONDS``), then for each read of its answer."""
        if part_size < MIN_PART_BYTES:
            raise ValueError(f"part_size must be at least {MIN_PART_BYTES} bytes")
        config = AioConfig(
            connect_timeout=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds),
            read_timeout=timeout_seconds,
            max_pool_connections=max_pool_connections,
            # Streamed bodies (s3stream) cannot be read twice: no payload hash, no checksum
            # a request does not require. Every stored byte is authenticated by its message.
            s3={"addressing_style": "path", "payload_signing_enabled": False} if endpoint_url
            else {"payload_signing_enabled": False},
            request_checksum_calculation="when_required",
        )
        stack = contextlib.AsyncExitStack()
        session = get_session()
        client, streaming_client = [
            await stack.enter_async_context(
                session.create_client("s3", endpoint_url=endpoint_url, region_name=region, config=config.merge(
                    AioConfig(retries={"total_max_attempts": attempts, "mode": "standard"}))))
            for attempts in (UPSTREAM_ATTEMPTS, 1)
        ]
        return cls(client, stack, bucket=bucket, prefix=prefix, part_size=part_size, max_part_bytes=max_part_bytes,
                   streaming_client=streaming_client)

    # -- upstream names --

    def object_key(self, bucket: str, key: str) -> str:
        return f"{self.prefix}{bucket}/{key}"

    def _bucket_entry(self, bucket: str) -> str:
        return f"{self.prefix}.kmsgate/buckets/{bucket}"

    def _config_key(self, bucket: str, name: str) -> str:
        return f"{self.prefix}.kmsgate/configs/{bucket}/{name}"

    def _catalog_key_key(self) -> str:
        return f"{self.prefix}.kmsgate/catalog-key"

    def sidecar_key(self, token: str) -> str:
        return f"{self.prefix}.kmsgate/meta/{token}"

    # -- sidecars --

    async def metadata_fields(self, sidecar: Sidecar) -> tuple[str | None, dict[str, str]]:
        """The user metadata for an object version carrying ``sidecar``, and its sidecar token
        when the sidecar had to be written (it is, before this returns)."""
        fields = None if sidecar.part_sizes else inline_fields(sidecar.metadata, sidecar.sealed_etag)
        if fields is not None:
            return None, fields
        token = new_token()
        await self.write_sidecar(token, sidecar)
        return token, sidecar_fields(token)

    async def write_sidecar(self, token: str, sidecar: Sidecar) -> None:
        try:
            await self.client.put_object(Bucket=self.bucket, Key=self.sidecar_key(token), Body=encode_sidecar(sidecar))
        except CLIENT_ERRORS as exc:
            raise translate(exc, "sidecar write") from exc

    async def discard_sidecar(self, token: str) -> None:
        """Delete a sidecar nothing names any more. Best effort: the operation it follows has
        succeeded, and a sidecar left behind is never read."""
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=self.sidecar_key(token))
        except CLIENT_ERRORS as exc:
            log.warning("s3 sidecar delete failed: %s", translate(exc, "sidecar delete"))

    async def _sidecar(self, ref: MetadataRef) -> Sidecar:
        if ref.token is None:
            return Sidecar(ref.inline, sealed_etag=ref.sealed_etag)
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.sidecar_key(ref.token))
            async with resp["Body"] as body:
                data = await body.read()
        except CLIENT_ERRORS as exc:
            err = translate(exc, "sidecar read")
            if isinstance(err, ObjectNotFound):
                raise _SidecarGone() from exc
            raise err from exc
        try:
            return decode_sidecar(data)
        except ValueError as exc:
            raise StorageError("s3 sidecar is damaged") from exc

    @staticmethod
    def _ref(resp: dict[str, Any]) -> MetadataRef:
        try:
            return read_fields(resp.get("Metadata") or {})
        except ValueError as exc:
            raise StorageError("s3 object metadata is damaged") from exc

    async def _info(self, bucket: str, key: str, resp: dict[str, Any], size: int) -> StoredObject:
        sidecar = await self._sidecar(self._ref(resp))
        return StoredObject(bucket=bucket, key=key, size=size, etag=clean_etag(resp.get("ETag")),
                            last_modified=_stamp(resp.get("LastModified")), metadata=sidecar.metadata,
                            part_sizes=sidecar.part_sizes, sealed_etag=sidecar.sealed_etag)

    async def previous_token(self, bucket: str, key: str) -> str | None:
        """The sidecar token of the object now stored under ``key``, if it has one."""
        try:
            resp = await self.client.head_object(Bucket=self.bucket, Key=self.object_key(bucket, key))
        except CLIENT_ERRORS as exc:
            err = translate(exc, "head")
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc
        return self._ref(resp).token

    # -- buckets --

    async def create_bucket(self, bucket: str) -> BucketInfo:
        validate_bucket_name(bucket)
        try:
            await self.client.put_object(Bucket=self.bucket, Key=self._bucket_entry(bucket), Body=b"", IfNoneMatch="*")
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise BucketAlreadyExists(bucket) from exc
            raise translate(exc, "create bucket") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(exc, "create bucket") from exc
        return await self.head_bucket(bucket)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        try:
            resp = await self.client.head_object(Bucket=self.bucket, Key=self._bucket_entry(bucket))
        except CLIENT_ERRORS as exc:
            err = translate(exc, "head bucket")
            if isinstance(err, ObjectNotFound):
                raise NoSuchBucket(bucket) from exc
            raise err from exc
        return BucketInfo(bucket, _stamp(resp.get("LastModified")))

    async def keys(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        """Every upstream object under ``prefix`` (a full upstream key prefix)."""
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            try:
                resp = await self.client.list_objects_v2(**args)
            except CLIENT_ERRORS as exc:
                raise translate(exc, "list") from exc
            for item in resp.get("Contents", []):
                yield item
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return

    async def delete_bucket(self, bucket: str) -> None:
        await self.head_bucket(bucket)
        try:
            resp = await self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.object_key(bucket, ""), MaxKeys=1)
        except CLIENT_ERRORS as exc:
            raise translate(exc, "list") from exc
        if resp.get("Contents"):
            raise BucketNotEmpty(bucket)
        await self.uploads.abort_all(bucket)
        async for item in self.keys(self._config_key(bucket, "")):
            await self._delete_upstream(str(item["Key"]), "delete bucket config")
        await self._delete_upstream(self._bucket_entry(bucket), "delete bucket")

    async def _delete_upstream(self, s3_key: str, what: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=s3_key)
        except CLIENT_ERRORS as exc:
            err = translate(exc, what)
            if not isinstance(err, ObjectNotFound):
                raise err from exc

    async def list_buckets(self) -> list[BucketInfo]:
        base = self._bucket_entry("")
        found = [BucketInfo(str(item["Key"])[len(base):], _stamp(item.get("LastModified")))
                 async for item in self.keys(base)]
        return sorted(found, key=lambda b: b.name)

    async def put_bucket_config(self, bucket: str, name: str, document: bytes) -> None:
        validate_config_name(name)
        if len(document) > MAX_BUCKET_CONFIG_BYTES:
            raise InvalidArgument(f"bucket configuration exceeds {MAX_BUCKET_CONFIG_BYTES} bytes")
        await self.head_bucket(bucket)
        try:
            await self.client.put_object(Bucket=self.bucket, Key=self._config_key(bucket, name), Body=bytes(document))
        except CLIENT_ERRORS as exc:
            raise translate(exc, "put bucket config") from exc

    async def get_bucket_config(self, bucket: str, name: str) -> bytes | None:
        validate_config_name(name)
        await self.head_bucket(bucket)
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=self._config_key(bucket, name))
            async with resp["Body"] as body:
                return bytes(await body.read())
        except CLIENT_ERRORS as exc:
            err = translate(exc, "get bucket config")
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc

    async def delete_bucket_config(self, bucket: str, name: str) -> None:
        validate_config_name(name)
        await self.head_bucket(bucket)
        await self._delete_upstream(self._config_key(bucket, name), "delete bucket config")

    # -- objects --

    async def open_write(self, bucket: str, key: str, metadata: bytes = b"", *,
                         length: int | None = None) -> S3ObjectWriter:
        metadata = check_metadata(metadata)
        _, previous = await asyncio.gather(self.head_bucket(bucket), self.previous_token(bucket, key))
        return S3ObjectWriter(self, bucket, key, metadata, previous, length)

    async def _missing(self, bucket: str, key: str, exc: BaseException, what: str) -> StorageError:
        """The error for a failed object call: ``NoSuchBucket`` when the bucket is missing too."""
        err = translate(exc, what)
        if isinstance(err, ObjectNotFound):
            await self.head_bucket(bucket)
            return ObjectNotFound(key)
        return err

    async def open_read(
        self, bucket: str, key: str, start: int | None = None, end: int | None = None
    ) -> S3ObjectReader:
        for _ in range(_OPEN_ATTEMPTS):
            try:
                return await self._open_read(bucket, key, start, end)
            except _SidecarGone:
                continue  # replaced while we looked: read the new version
        raise StorageError("s3 object keeps changing")

    async def _open_read(self, bucket: str, key: str, start: int | None, end: int | None) -> S3ObjectReader:
        s3_key = self.object_key(bucket, key)
        lo = 0 if start is None else start
        if end is not None and end <= lo:
            info = await self.head(bucket, key)
            lo, hi = resolve_range(info.size, lo, end)
            return S3ObjectReader(None, info, lo, hi)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": s3_key}
        if start is not None or end is not None:
            args["Range"] = f"bytes={lo}-" if end is None else f"bytes={lo}-{end - 1}"
        try:
            resp = await self.client.get_object(**args)
        except ClientError as exc:
            if error_code(exc) == "InvalidRange":  # start at or past the end of the object
                info = await self.head(bucket, key)
                return S3ObjectReader(None, info, info.size, info.size)
            raise await self._missing(bucket, key, exc, "get") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(exc, "get") from exc
        try:
            if "Range" not in args:
                size = int(resp["ContentLength"])
                return S3ObjectReader(resp["Body"], await self._info(bucket, key, resp, size), 0, size)
            match = _CONTENT_RANGE.match(str(resp.get("ContentRange", "")))
            if match is None:  # a server that ignored Range sends the whole object
                raise StorageError("s3 server ignored the range request")
            first, last, size = (int(g) for g in match.groups())
            return S3ObjectReader(resp["Body"], await self._info(bucket, key, resp, size), first, last + 1)
        except BaseException:
            resp["Body"].close()
            raise

    async def head(self, bucket: str, key: str) -> StoredObject:
        for _ in range(_OPEN_ATTEMPTS):
            try:
                resp = await self.client.head_object(Bucket=self.bucket, Key=self.object_key(bucket, key))
            except CLIENT_ERRORS as exc:
                raise await self._missing(bucket, key, exc, "head") from exc
            try:
                return await self._info(bucket, key, resp, int(resp["ContentLength"]))
            except _SidecarGone:
                continue
        raise StorageError("s3 object keeps changing")

    async def delete(self, bucket: str, key: str) -> None:
        _, previous = await asyncio.gather(self.head_bucket(bucket), self.previous_token(bucket, key))
        await self._delete_upstream(self.object_key(bucket, key), "delete")
        if previous is not None:
            await self.discard_sidecar(previous)

    async def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = MAX_LIST_KEYS,
    ) -> ObjectPage:
        await self.head_bucket(bucket)
        max_keys = max(0, min(max_keys, MAX_LIST_KEYS))
        if max_keys == 0:
            return ObjectPage((), (), False, None)
        base = self.object_key(bucket, "")
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + prefix, "MaxKeys": max_keys}
        if delimiter:
            args["Delimiter"] = delimiter
        if start_after is not None:
            args["StartAfter"] = base + start_after
        try:
            resp = await self.client.list_objects_v2(**args)
        except CLIENT_ERRORS as exc:
            raise translate(exc, "list") from exc
        objects = tuple(
            ObjectEntry(str(item["Key"])[len(base):], int(item["Size"]), clean_etag(item.get("ETag")),
                        _stamp(item.get("LastModified")))
            for item in resp.get("Contents", [])
        )
        prefixes = tuple(str(p["Prefix"])[len(base):] for p in resp.get("CommonPrefixes", []))
        truncated = bool(resp.get("IsTruncated"))
        names = [o.key for o in objects] + list(prefixes)
        marker = max(names) if truncated and names else None
        return ObjectPage(objects, prefixes, truncated, marker)

    # -- multipart uploads (kmsgate.gateway.storage.s3uploads) --

    async def create_upload(self, bucket: str, key: str, metadata: bytes = b"") -> str:
        return await self.uploads.create_upload(bucket, key, metadata)

    async def open_part_write(self, bucket: str, key: str, upload_id: str, part_number: int, *,
                              length: int | None = None) -> S3PartWriter:
        return await self.uploads.open_part_write(bucket, key, upload_id, part_number, length=length)

    async def upload_metadata(self, bucket: str, key: str, upload_id: str) -> bytes:
        return await self.uploads.upload_metadata(bucket, key, upload_id)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        return await self.uploads.list_parts(bucket, key, upload_id)

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        return await self.uploads.list_uploads(bucket, prefix)

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, part_numbers: Sequence[int], metadata: bytes | None = None,
        sealed_etag: bytes = b"",
    ) -> StoredObject:
        return await self.uploads.complete_upload(bucket, key, upload_id, part_numbers, metadata, sealed_etag)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.uploads.abort_upload(bucket, key, upload_id)

    async def expire_uploads(self, older_than_seconds: float) -> int:
        return await self.uploads.expire_uploads(older_than_seconds)

    # -- the catalog key --

    async def read_catalog_key(self) -> bytes | None:
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=self._catalog_key_key())
            async with resp["Body"] as body:
                return bytes(await body.read())
        except CLIENT_ERRORS as exc:
            err = translate(exc, "catalog key read")
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc

    async def create_catalog_key(self, wrapped: bytes) -> bytes:
        try:
            await self.client.put_object(Bucket=self.bucket, Key=self._catalog_key_key(),
                                         Body=check_catalog_key(wrapped), IfNoneMatch="*")
        except ClientError as exc:
            if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise translate(exc, "catalog key write") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate(exc, "catalog key write") from exc
        kept = await self.read_catalog_key()
        if kept is None:
            raise StorageError("s3 catalog key vanished after it was written")
        return kept

    # -- the backend --

    async def check(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except CLIENT_ERRORS as exc:
            raise StorageError(f"s3 bucket not reachable: {translate(exc, 'head bucket')}") from exc

    async def close(self) -> None:
        await self._stack.aclose()

