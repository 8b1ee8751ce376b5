"""End to end over a real loopback socket: object PUT/GET/HEAD/DELETE, ranges, errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yarl

from kmsgate.core.principal import account_root
from kmsgate.envelope import AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
from kmsgate.envelope.materials import encrypt_message
from kmsgate.gateway.headers import CONTEXT_HEADER, KEY_ID_HEADER, encode_context
from kmsgate.gateway.storage.file import READ_BLOCK_BYTES

from gateway_harness import ACCOUNT_ID, ROOT, RunningGateway, create_key, overwrite_stored, stored_bytes

FRAME = 4096  # the gateway_settings fixture's frame length


async def chunked(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def put(http: aiohttp.ClientSession, gw: RunningGateway, key: str, data: bytes | AsyncIterator[bytes],
              headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    async with http.put(f"{gw.url}/v1/objects/{key}", data=data, headers=headers or {}) as resp:
        await resp.read()
        return resp


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 17])
async def test_round_trip_at_sizes(running_gateway: RunningGateway, http: aiohttp.ClientSession, size: int) -> None:
    data = os.urandom(size)
    async with http.put(f"{running_gateway.url}/v1/objects/a/b", data=data) as resp:
        assert resp.status == 201
        body = await resp.json()
    assert body["key"] == "a/b" and body["size"] == size and body["kms_key_id"] == running_gateway.key_arn
    assert body["stored_size"] > size
    async with http.get(f"{running_gateway.url}/v1/objects/a/b") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(size)
        assert resp.headers["ETag"] == f'"{body["etag"]}"'
        assert await resp.read() == data


async def test_ten_mib_sent_chunked(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    data = os.urandom(10 * 1024 * 1024)
    async with http.put(f"{running_gateway.url}/v1/objects/big", data=chunked(data, 100_000)) as resp:
        assert resp.status == 201, await resp.text()
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    async with http.get(f"{running_gateway.url}/v1/objects/big") as resp:
        assert resp.headers["Content-Length"] == str(len(data))
        got = bytearray()
        async for piece in resp.content.iter_chunked(1 << 20):
            got += piece
    assert bytes(got) == data


async def test_head_matches_get_without_body(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    data = os.urandom(5000)
    await put(http, running_gateway, "h", data)
    async with http.head(f"{running_gateway.url}/v1/objects/h") as head:
        assert head.status == 200
        assert await head.read() == b""
    async with http.get(f"{running_gateway.url}/v1/objects/h") as get:
        await get.read()
    for name in ("Content-Length", "ETag", "Last-Modified", "Accept-Ranges"):
        assert head.headers[name] == get.headers[name]


async def test_delete_then_missing(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    await put(http, running_gateway, "d", b"x")
    for _ in range(2):  # deleting twice is fine, as in S3
        async with http.delete(f"{running_gateway.url}/v1/objects/d") as resp:
            assert resp.status == 204
    async with http.get(f"{running_gateway.url}/v1/objects/d") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "NoSuchKey"
    async with http.head(f"{running_gateway.url}/v1/objects/d") as resp:
        assert resp.status == 404


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-0", 0, 1),
    (f"bytes={FRAME - 1}-{FRAME}", FRAME - 1, FRAME + 1),
    (f"bytes={FRAME}-{2 * FRAME - 1}", FRAME, 2 * FRAME),
    (f"bytes={2 * FRAME}-", 2 * FRAME, 3 * FRAME + 100),
    ("bytes=-100", 3 * FRAME, 3 * FRAME + 100),
    ("bytes=-1", 3 * FRAME + 99, 3 * FRAME + 100),
    ("bytes=10-999999", 10, 3 * FRAME + 100),
])
async def test_range_reads(running_gateway: RunningGateway, http: aiohttp.ClientSession,
                           rng: str, start: int, end: int) -> None:
    data = os.urandom(3 * FRAME + 100)
    await put(http, running_gateway, "r", data)
    async with http.get(f"{running_gateway.url}/v1/objects/r", headers={"Range": rng}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}"
        assert await resp.read() == data[start:end]


async def test_unsatisfiable_range_is_416(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    await put(http, running_gateway, "r", b"0123456789")
    async with http.get(f"{running_gateway.url}/v1/objects/r", headers={"Range": "bytes=10-"}) as resp:
        assert resp.status == 416


async def test_context_must_match_on_read(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    ctx = {"tenant": "acme"}
    resp = await put(http, running_gateway, "c", b"secret", {CONTEXT_HEADER: encode_context(ctx)})
    assert resp.status == 201
    ok = {CONTEXT_HEADER: encode_context(ctx)}
    async with http.get(f"{running_gateway.url}/v1/objects/c", headers=ok) as r:
        assert r.status == 200 and await r.read() == b"secret"
    bad = {CONTEXT_HEADER: encode_context({"tenant": "evil"})}
    async with http.get(f"{running_gateway.url}/v1/objects/c", headers=bad) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "EncryptionContextMismatch"


async def test_the_expected_context_must_be_the_whole_context(running_gateway: RunningGateway,
                                                               http: aiohttp.ClientSession) -> None:
    ctx = {"tenant": "acme", "TENANT": "evil"}
    resp = await put(http, running_gateway, "whole", b"secret", {CONTEXT_HEADER: encode_context(ctx)})
    assert resp.status == 201
    for partial in ({"tenant": "acme"}, {"TENANT": "evil"}, {"Tenant": "acme", "TENANT": "evil"}):
        async with http.get(f"{running_gateway.url}/v1/objects/whole",
                            headers={CONTEXT_HEADER: encode_context(partial)}) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "EncryptionContextMismatch"
    async with http.get(f"{running_gateway.url}/v1/objects/whole",
                        headers={CONTEXT_HEADER: encode_context(ctx)}) as r:
        assert r.status == 200 and await r.read() == b"secret"


async def test_unknown_key_is_a_client_error(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    resp = await put(http, running_gateway, "u", b"x", {KEY_ID_HEADER: "alias/does-not-exist"})
    assert resp.status == 400
    async with http.put(f"{running_gateway.url}/v1/objects/u", data=b"x",
                        headers={KEY_ID_HEADER: "alias/does-not-exist"}) as r:
        assert (await r.json())["error"] == "NotFoundException"
    async with http.head(f"{running_gateway.url}/v1/objects/u") as r:
        assert r.status == 404  # nothing was stored


async def test_disabled_key_keeps_its_aws_code(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    assert running_gateway.service is not None
    arn = await create_key(running_gateway.service)
    await running_gateway.service.disable_key(caller=account_root(ACCOUNT_ID), key_id=arn)
    async with http.put(f"{running_gateway.url}/v1/objects/x", data=b"x", headers={KEY_ID_HEADER: arn}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "DisabledException"


async def test_bad_keys_and_headers_are_400(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    for path in ["a/../b", "./x", "a/%2E%2E/b", "x" * 1025, "nul%00byte"]:
        url = yarl.URL(f"{running_gateway.url}/v1/objects/{path}", encoded=True)  # sent as is
        async with http.put(url, data=b"x") as r:
            assert r.status == 400, path
            assert (await r.json())["error"] == "InvalidObjectKey"
    async with http.put(f"{running_gateway.url}/v1/objects/ok", data=b"x",
                        headers={CONTEXT_HEADER: "%%%"}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "InvalidArgument"


async def test_oversize_body_is_413_and_stores_nothing(running_gateway: RunningGateway,
                                                       http: aiohttp.ClientSession) -> None:
    limit = running_gateway.gateway.settings.max_object_bytes
    async with http.put(f"{running_gateway.url}/v1/objects/o", data=b"\0" * (limit + 1)) as r:
        assert r.status == 413
        assert (await r.json())["error"] == "EntityTooLarge"
    try:
        async with http.put(f"{running_gateway.url}/v1/objects/o", data=chunked(b"\0" * (limit + 1), 1 << 20)) as r:
            assert r.status == 413
    except aiohttp.ClientError:
        pass  # the server may close while the client is still sending; nothing stored either way
    async with http.head(f"{running_gateway.url}/v1/objects/o") as r:
        assert r.status == 404
    assert os.listdir(running_gateway.gateway.storage.tmp_dir) == []  # type: ignore[attr-defined]


async def test_tampered_stored_object_is_not_served(running_gateway: RunningGateway,
                                                    http: aiohttp.ClientSession) -> None:
    small, large = os.urandom(3 * FRAME), os.urandom(READ_BLOCK_BYTES + 3 * FRAME)
    for key, data, at in (("t", small, -30), ("big", large, -30), ("mid", large, len(large) // 2)):
        await put(http, running_gateway, key, data)
        raw = bytearray(stored_bytes(running_gateway, key))
        raw[at] ^= 1  # -30: inside the final frames
        overwrite_stored(running_gateway, key, bytes(raw))
    # Read whole with its header: verified before anything is sent, so a plain 502.
    async with http.get(f"{running_gateway.url}/v1/objects/t") as r:
        assert r.status == 502 and (await r.json())["error"] == "ObjectCorrupt"
    # Streamed: the final frame vouches for the Content-Length before the status line.
    async with http.get(f"{running_gateway.url}/v1/objects/big") as r:
        assert r.status == 502 and (await r.json())["error"] == "ObjectCorrupt"
    # Streamed, with a bad frame in the middle: the headers went out before it was reached,
    # so the connection is aborted.
    with pytest.raises(aiohttp.ClientError):
        async with http.get(f"{running_gateway.url}/v1/objects/mid") as r:
            assert r.status == 200
            await r.read()
    # A range is served only once the final frame verified: its size is not vouched for otherwise.
    async with http.get(f"{running_gateway.url}/v1/objects/t", headers={"Range": "bytes=0-10"}) as r:
        assert r.status == 502 and (await r.json())["error"] == "ObjectCorrupt"


async def test_a_range_outside_a_tampered_frame_still_verifies(running_gateway: RunningGateway,
                                                               http: aiohttp.ClientSession) -> None:
    data = os.urandom(3 * FRAME + 100)
    await put(http, running_gateway, "t", data)
    raw = bytearray(stored_bytes(running_gateway, "t"))
    raw[-140 - 100] ^= 1  # inside the third regular frame; the first and the final frame are untouched
    overwrite_stored(running_gateway, "t", bytes(raw))
    async with http.get(f"{running_gateway.url}/v1/objects/t", headers={"Range": "bytes=0-10"}) as r:
        assert r.status == 206 and await r.read() == data[:11]
    async with http.get(f"{running_gateway.url}/v1/objects/t", headers={"Range": "bytes=-100"}) as r:
        assert r.status == 206 and await r.read() == data[-100:]
    with pytest.raises(aiohttp.ClientError):  # the range reaches into the bad frame: aborted
        async with http.get(f"{running_gateway.url}/v1/objects/t", headers={"Range": "bytes=-200"}) as r:
            assert r.status == 206
            await r.read()


# Stored layout of 3 * FRAME + 100 plaintext bytes: header, three regular frames of FRAME + 32
# bytes, then the final frame of 100 + 40 bytes.
TRUNCATIONS = {
    "at the final frame's start": 140,
    "inside the final frame": 50,
    "inside the last regular frame": 140 + 1000,
    "at the last regular frame's start": 140 + FRAME + 32,
}


def truncate_stored(gw: RunningGateway, key: str, drop: int) -> None:
    raw = stored_bytes(gw, key)
    overwrite_stored(gw, key, raw[: len(raw) - drop])


@pytest.mark.parametrize("drop", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
@pytest.mark.parametrize("rng", ["bytes=-100", "bytes=-1", "bytes=0-10", f"bytes={FRAME}-"])
async def test_no_range_of_a_truncated_object_is_served(running_gateway: RunningGateway, http: aiohttp.ClientSession,
                                                        drop: int, rng: str) -> None:
    await put(http, running_gateway, "cut", os.urandom(3 * FRAME + 100))
    truncate_stored(running_gateway, "cut", drop)
    async with http.get(f"{running_gateway.url}/v1/objects/cut", headers={"Range": rng}) as r:
        assert r.status == 502
        assert (await r.json())["error"] == "ObjectCorrupt"


@pytest.mark.parametrize("drop", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
async def test_head_of_a_truncated_object_states_no_size(running_gateway: RunningGateway,
                                                         http: aiohttp.ClientSession, drop: int) -> None:
    await put(http, running_gateway, "cut", os.urandom(3 * FRAME + 100))
    truncate_stored(running_gateway, "cut", drop)
    async with http.head(f"{running_gateway.url}/v1/objects/cut") as r:
        assert r.status == 502


@pytest.mark.parametrize("drop", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
@pytest.mark.parametrize("size", [3 * FRAME + 100, READ_BLOCK_BYTES + 3 * FRAME + 100], ids=["whole", "streamed"])
async def test_get_of_a_truncated_object_fails_before_its_body(running_gateway: RunningGateway,
                                                                http: aiohttp.ClientSession, drop: int,
                                                                size: int) -> None:
    await put(http, running_gateway, "cut", os.urandom(size))
    truncate_stored(running_gateway, "cut", drop)
    async with http.get(f"{running_gateway.url}/v1/objects/cut") as r:
        assert r.status == 502
        assert (await r.json())["error"] == "ObjectCorrupt"


async def test_concurrent_writers_of_one_object_share_one_data_key(running_gateway: RunningGateway,
                                                                   http: aiohttp.ClientSession) -> None:
    await asyncio.gather(*(put(http, running_gateway, "w/shared", os.urandom(100)) for i in range(100)))
    stats = running_gateway.gateway.materials_for(ROOT).stats
    assert stats.kms_calls == 1
    async with http.get(f"{running_gateway.url}/metrics") as r:
        text = await r.text()
    assert 'kmsgate_kms_calls_total{operation="GenerateDataKey",outcome="ok"} 1.0' in text
    assert 'kmsgate_gateway_requests_total{method="PUT",route="object",status="201"} 100.0' in text


async def test_each_object_name_has_a_data_key_of_its_own(running_gateway: RunningGateway,
                                                          http: aiohttp.ClientSession) -> None:
    # The object's ARN is part of its encryption context, so the KMS binds each name's data key to it.
    for i in range(3):
        await put(http, running_gateway, f"named/{i}", os.urandom(100))
    assert running_gateway.gateway.materials_for(ROOT).stats.kms_calls == 3


async def store_signed(gw: RunningGateway, key: str, data: bytes) -> bytes:
    """Store ``data`` as a signed message (suite 0x0578), as another Encryption SDK writer would."""
    message = await encrypt_message(gw.gateway.materials_for(ROOT), data, key_id=gw.key_arn,
                                    encryption_context={"aws:s3:arn": f"arn:aws:s3:::kmsgate/{key}"},
                                    suite=AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, frame_length=FRAME)
    writer = await gw.gateway.storage.open_write(gw.gateway.settings.default_bucket, key)
    await writer.write(message)
    await writer.commit()
    return bytes(message)


async def test_signed_objects_state_no_size_and_refuse_ranges(running_gateway: RunningGateway,
                                                              http: aiohttp.ClientSession) -> None:
    data = os.urandom(READ_BLOCK_BYTES + 3 * FRAME + 100)
    await store_signed(running_gateway, "signed", data)
    async with http.head(f"{running_gateway.url}/v1/objects/signed") as r:
        assert r.status == 200
        assert r.headers["Accept-Ranges"] == "none" and "Content-Length" not in r.headers
    async with http.get(f"{running_gateway.url}/v1/objects/signed", headers={"Range": "bytes=-100"}) as r:
        assert r.status == 200  # the Range is ignored: only the whole message can be verified
        assert r.headers["Accept-Ranges"] == "none" and "Content-Range" not in r.headers
        assert await r.read() == data


@pytest.mark.parametrize("size", [3 * FRAME + 100, READ_BLOCK_BYTES + 3 * FRAME + 100], ids=["whole", "streamed"])
@pytest.mark.parametrize("drop", [1, 200, 300 + FRAME], ids=["signature", "final frame", "frames"])
async def test_a_truncated_signed_object_is_never_served_complete(running_gateway: RunningGateway,
                                                                  http: aiohttp.ClientSession,
                                                                  size: int, drop: int) -> None:
    await store_signed(running_gateway, "signed", os.urandom(size))
    truncate_stored(running_gateway, "signed", drop)
    url = f"{running_gateway.url}/v1/objects/signed"
    if size <= READ_BLOCK_BYTES:  # read whole with its header: verified before anything is sent
        async with http.get(url) as r:
            assert r.status == 502 and (await r.json())["error"] == "ObjectCorrupt"
        return
    with pytest.raises(aiohttp.ClientPayloadError):  # streamed as frames verify: no final chunk
        async with http.get(url) as r:
            assert r.status == 200 and "Content-Length" not in r.headers
            await r.read()
