"""The ``s3`` storage backend: objects in any S3-compatible bucket, through aiobotocore.

An object key ``k`` is stored as ``<prefix><k>`` in ``bucket``. Credentials and, when not
given, the region come from the standard AWS chain (environment, shared files, instance
roles); nothing here reads or logs them.

Writes: bytes accumulate in one buffer of at most ``part_size`` (+ one chunk) bytes. An
object that ends before the buffer first fills is sent with a single ``PutObject`` at
``commit``. Otherwise the writer starts a multipart upload, sends each full buffer as a
part, and ``commit`` sends the rest as the last part and completes the upload; S3 makes the
object visible only at completion, whole. On any failure, and on ``abort``, the multipart
upload is aborted so no parts remain billed or visible. Memory per writer is therefore
bounded by ``part_size`` whatever the object size.

Reads are ranged ``GetObject`` calls streamed in chunks of ``READ_CHUNK_BYTES``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from kmsgate.gateway.storage.base import (
    READ_CHUNK_BYTES,
    ObjectNotFound,
    RangeReader,
    StorageError,
    StoredObject,
    resolve_range,
)

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024
"""S3's smallest allowed part (all but the last)."""
DEFAULT_PART_BYTES = 8 * 1024 * 1024
MAX_PARTS = 10_000
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: BaseException, what: str) -> StorageError:
    """One place that turns an S3 client failure into our storage errors."""
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in _NOT_FOUND_CODES:
            return ObjectNotFound(what)
        return StorageError(f"s3 {what} failed: {code or 'error'}")
    return StorageError(f"s3 {what} failed: {type(exc).__name__}")


def _etag(raw: object) -> str:
    return str(raw or "").strip('"')


class S3ObjectWriter:
    """Streams one object into S3; see the module docstring."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._s3_key = storage.s3_key(key)
        self._bucket = storage.bucket
        self._buffer = bytearray()
        self._written = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    @property
    def bytes_written(self) -> int:
        return self._written

    async def _send_part(self, data: bytes) -> None:
        s3 = self._storage.client
        if self._upload_id is None:
            resp = await s3.create_multipart_upload(Bucket=self._bucket, Key=self._s3_key)
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError("s3 upload exceeds the part limit")
        resp = await s3.upload_part(
            Bucket=self._bucket,
            Key=self._s3_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"ETag": resp["ETag"], "PartNumber": number})

    async def write(self, chunk: bytes | bytearray) -> None:
        if self._done:
            raise StorageError("write after commit or abort")
        self._buffer += chunk
        self._written += len(chunk)
        if len(self._buffer) >= self._storage.part_size:
            data = bytes(self._buffer)
            self._buffer.clear()
            try:
                await self._send_part(data)
            except _TRANSPORT_ERRORS + (ClientError,) as exc:
                await self.abort()
                raise _translate(exc, "upload part") from exc
            except BaseException:
                await self.abort()
                raise

    async def commit(self) -> StoredObject:
        if self._done:
            raise StorageError("commit after commit or abort")
        s3 = self._storage.client
        data = bytes(self._buffer)
        self._buffer.clear()
        try:
            if self._upload_id is None:
                resp = await s3.put_object(Bucket=self._bucket, Key=self._s3_key, Body=data)
            else:
                if data:
                    await self._send_part(data)
                resp = await s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._s3_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except _TRANSPORT_ERRORS + (ClientError,) as exc:
            await self.abort()
            raise _translate(exc, "commit") from exc
        except BaseException:
            await self.abort()
            raise
        self._done = True
        return StoredObject(
            key=self._key, size=self._written, etag=_etag(resp.get("ETag")), last_modified=time.time()
        )

    async def abort(self) -> None:
        self._done = True
        self._buffer.clear()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            await self._storage.client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._s3_key, UploadId=upload_id
            )
        except _TRANSPORT_ERRORS + (ClientError,) as exc:
            # Best effort: abort runs on error paths, where raising would hide the first
            # failure. A bucket lifecycle rule for incomplete uploads is the backstop.
            log.warning("s3 abort of multipart upload failed: %s", _translate(exc, "abort"))


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
                except _TRANSPORT_ERRORS as exc:
                    raise _translate(exc, "read") from exc
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
    """Objects in ``bucket`` under ``prefix``. Create with ``await S3Storage.open(...)``."""

    name = "s3"

    def __init__(self, client: Any, stack: contextlib.AsyncExitStack, *, bucket: str,
                 prefix: str, part_size: int) -> None:
        self.client = client
        self._stack = stack
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size

    @classmethod
    async def open(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_BYTES,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 64,
    ) -> S3Storage:
        """Build a client from the standard AWS credential chain; close with ``close()``."""
        if part_size < MIN_PART_BYTES:
            raise ValueError(f"part_size must be at least {MIN_PART_BYTES} bytes")
        config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        )
        return cls(client, stack, bucket=bucket, prefix=prefix, part_size=part_size)

    def s3_key(self, key: str) -> str:
        return self.prefix + key

    async def open_write(self, key: str) -> S3ObjectWriter:
        return S3ObjectWriter(self, key)

    async def open_read(
        self, key: str, start: int | None = None, end: int | None = None
    ) -> S3ObjectReader:
        if start is None and end is None:
            try:
                resp = await self.client.get_object(Bucket=self.bucket, Key=self.s3_key(key))
            except _TRANSPORT_ERRORS + (ClientError,) as exc:
                raise _translate(exc, "get") from exc
            size = int(resp["ContentLength"])
            return S3ObjectReader(resp["Body"], self._info(key, resp, size), 0, size)
        lo = 0 if start is None else start
        if end is not None and end <= lo:
            info = await self.head(key)
            lo, hi = resolve_range(info.size, lo, end)
            return S3ObjectReader(None, info, lo, hi)
        wanted = f"bytes={lo}-" if end is None else f"bytes={lo}-{end - 1}"
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.s3_key(key), Range=wanted)
        except ClientError as exc:
            if _code(exc) == "InvalidRange":  # start at or past the end of the object
                info = await self.head(key)
                return S3ObjectReader(None, info, info.size, info.size)
            raise _translate(exc, "get") from exc
        except _TRANSPORT_ERRORS as exc:
            raise _translate(exc, "get") from exc
        match = _CONTENT_RANGE.match(str(resp.get("ContentRange", "")))
        if match is None:  # a server that ignored Range sends the whole object
            resp["Body"].close()
            raise StorageError("s3 server ignored the range request")
        first, last, size = (int(g) for g in match.groups())
        return S3ObjectReader(resp["Body"], self._info(key, resp, size), first, last + 1)

    @staticmethod
    def _info(key: str, resp: dict[str, Any], size: int) -> StoredObject:
        modified = resp.get("LastModified")
        stamp = modified.timestamp() if modified is not None else time.time()
        return StoredObject(key=key, size=size, etag=_etag(resp.get("ETag")), last_modified=stamp)

    async def head(self, key: str) -> StoredObject:
        try:
            resp = await self.client.head_object(Bucket=self.bucket, Key=self.s3_key(key))
        except _TRANSPORT_ERRORS + (ClientError,) as exc:
            raise _translate(exc, "head") from exc
        return self._info(key, resp, int(resp["ContentLength"]))

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=self.s3_key(key))
        except _TRANSPORT_ERRORS + (ClientError,) as exc:
            err = _translate(exc, "delete")
            if not isinstance(err, ObjectNotFound):
                raise err from exc

    async def check(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except _TRANSPORT_ERRORS + (ClientError,) as exc:
            raise StorageError(f"s3 bucket not reachable: {_translate(exc, 'head bucket')}") from exc

    async def close(self) -> None:
        await self._stack.aclose()
