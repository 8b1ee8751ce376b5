"""The gateway over the S3 backend (moto's S3 server on loopback), storage failures and load shedding."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gateway_harness import REGION, RunningGateway, gateway_over

from kmsgate.gateway.service import GatewaySettings
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.gateway.storage.s3 import MIN_PART_BYTES, S3Storage


@pytest.fixture
async def s3_gateway(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> AsyncIterator[RunningGateway]:
    storage = await S3Storage.open(bucket=s3_bucket, prefix="gw/", endpoint_url=s3_endpoint, region=REGION,
                                   part_size=MIN_PART_BYTES)
    async for gw in gateway_over(tmp_path, storage, GatewaySettings(frame_length=65536)):
        yield gw


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_s3_round_trip_multipart_and_range(s3_gateway: RunningGateway, s3_admin: Any, s3_bucket: str) -> None:
    data = os.urandom(12 * 1024 * 1024)  # more than two S3 parts
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{s3_gateway.url}/v1/objects/big/obj", data=chunked(data, 1 << 20)) as r:
            assert r.status == 201
            stored_size = (await r.json())["stored_size"]
        head = s3_admin.head_object(Bucket=s3_bucket, Key="gw/kmsgate/big/obj")
        assert head["ContentLength"] == stored_size
        assert "-" in head["ETag"]  # a multipart upload's ETag
        async with http.get(f"{s3_gateway.url}/v1/objects/big/obj") as r:
            assert r.headers["Content-Length"] == str(len(data))
            assert await r.read() == data
        rng = {"Range": "bytes=65530-65545"}
        async with http.get(f"{s3_gateway.url}/v1/objects/big/obj", headers=rng) as r:
            assert r.status == 206 and await r.read() == data[65530:65546]
        async with http.delete(f"{s3_gateway.url}/v1/objects/big/obj") as r:
            assert r.status == 204
        async with http.get(f"{s3_gateway.url}/v1/objects/big/obj") as r:
            assert r.status == 404


@pytest.mark.parametrize("drop", [100 + 40, 100 + 40 + 1000], ids=["at a frame boundary", "inside a frame"])
async def test_s3_truncated_object_states_no_size_and_serves_no_range(s3_gateway: RunningGateway, s3_admin: Any,
                                                                       s3_bucket: str, drop: int) -> None:
    data = os.urandom(5 * 65536 + 100)  # five regular frames, then a final frame of 100 + 40 bytes
    url = f"{s3_gateway.url}/v1/objects/cut"
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=data) as r:
            assert r.status == 201
        stored = s3_admin.get_object(Bucket=s3_bucket, Key="gw/kmsgate/cut")["Body"].read()
        s3_admin.put_object(Bucket=s3_bucket, Key="gw/kmsgate/cut", Body=stored[: len(stored) - drop])
        async with http.get(url, headers={"Range": "bytes=-100"}) as r:
            assert r.status == 502 and (await r.json())["error"] == "ObjectCorrupt"
        async with http.head(url) as r:
            assert r.status == 502
        async with http.get(url) as r:  # more than one read chunk: streamed, once the size is vouched for
            assert r.status == 502 and (await r.json())["error"] == "ObjectCorrupt"


async def test_storage_failure_is_502_and_leaves_nothing(tmp_path: Path, s3_endpoint: str, s3_bucket: str,
                                                         s3_admin: Any) -> None:
    # A bucket that does not exist: every write fails at the real S3 server.
    storage = await S3Storage.open(bucket="kmsgate-missing-bucket", endpoint_url=s3_endpoint, region=REGION,
                                   part_size=MIN_PART_BYTES)
    async for gw in gateway_over(tmp_path, storage, GatewaySettings()):
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{gw.url}/v1/objects/k", data=os.urandom(1000)) as r:
                assert r.status == 502
                assert (await r.json())["error"] == "StorageError"
            async with http.put(f"{gw.url}/v1/objects/k", data=chunked(os.urandom(7 * 1024 * 1024), 1 << 20)) as r:
                assert r.status == 502
            async with http.get(f"{gw.url}/v1/objects/k") as r:
                assert r.status == 502
    assert not s3_admin.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


async def test_file_storage_failure_mid_write_is_502(running_gateway: RunningGateway) -> None:
    storage = running_gateway.gateway.storage
    import shutil

    shutil.rmtree(storage.data_dir)  # type: ignore[attr-defined]
    storage.data_dir.write_bytes(b"")  # type: ignore[attr-defined]  # rename target cannot be created
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{running_gateway.url}/v1/objects/k", data=os.urandom(3 * 1024 * 1024)) as r:
            assert r.status == 502
    assert os.listdir(storage.tmp_dir) == []  # type: ignore[attr-defined]


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    return GatewaySettings(frame_length=4096, max_in_flight=1)


async def test_saturated_gateway_answers_503_at_once(running_gateway: RunningGateway) -> None:
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"x" * 100
        await release.wait()
        yield b"y" * 100

    async with aiohttp.ClientSession() as http:
        slow = asyncio.ensure_future(http.put(f"{running_gateway.url}/v1/objects/slow", data=slow_body()))
        for _ in range(200):  # until the slow request holds the only slot
            if running_gateway.gateway.in_flight == 1:
                break
            await asyncio.sleep(0.01)
        async with http.put(f"{running_gateway.url}/v1/objects/other", data=b"z") as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"] == "SlowDown"
        async with http.get(f"{running_gateway.url}/healthz") as r:
            assert r.status == 200  # health is never shed
        release.set()
        resp = await slow
        assert resp.status == 201
        resp.release()


async def test_a_gateway_started_while_storage_is_down_creates_its_bucket_once_ready(
        tmp_path: Path, s3_endpoint: str, s3_admin: Any) -> None:
    upstream = f"kmsgate-later-{uuid.uuid4().hex[:8]}"
    storage = await S3Storage.open(bucket=upstream, endpoint_url=s3_endpoint, region=REGION)
    async for gw in gateway_over(tmp_path, storage, GatewaySettings()):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{gw.url}/readyz") as r:
                assert r.status == 503 and (await r.json())["checks"]["storage"] == "failed"
            s3_admin.create_bucket(Bucket=upstream)  # storage comes back
            async with http.get(f"{gw.url}/readyz") as r:
                assert r.status == 200
            assert [b.name for b in await storage.list_buckets()] == ["kmsgate"]
            async with http.put(f"{gw.url}/v1/objects/k", data=b"now it works") as r:
                assert r.status == 201


async def test_gateways_sharing_file_storage_create_the_default_bucket_once(tmp_path: Path) -> None:
    first = await FileStorage.open(tmp_path / "objects")
    second = await FileStorage.open(tmp_path / "objects")  # as a second worker process would
    async for one in gateway_over(tmp_path / "one", first, GatewaySettings()):
        async for _ in gateway_over(tmp_path / "two", second, GatewaySettings()):
            [bucket] = await second.list_buckets()
            assert bucket.name == "kmsgate"
            async with aiohttp.ClientSession() as http:
                async with http.put(f"{one.url}/v1/objects/k", data=b"stored") as r:
                    assert r.status == 201
    again = await FileStorage.open(tmp_path / "objects")  # a restart finds bucket and object
    async for _ in gateway_over(tmp_path / "three", again, GatewaySettings()):
        assert await again.list_buckets() == [bucket]
        assert (await again.head("kmsgate", "k")).size > len(b"stored")  # a message holding it
