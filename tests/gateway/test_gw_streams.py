"""End to end: /v1/encrypt and /v1/decrypt streams, aborts, health, metrics and logs."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
from gateway_harness import ROOT, RunningGateway
from served import slow_body
from prometheus_client.parser import text_string_to_metric_families

from kmsgate.gateway.headers import CONTEXT_HEADER, KEY_ID_HEADER, encode_context
from kmsgate.gateway.service import METRICS_SYNC_SECONDS

FRAME = 4096


async def chunked(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def encrypt(http: aiohttp.ClientSession, gw: RunningGateway, data: bytes | AsyncIterator[bytes],
                  headers: dict[str, str] | None = None) -> bytes:
    async with http.post(f"{gw.url}/v1/encrypt", data=data, headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 300_000])
async def test_encrypt_then_decrypt_round_trip(running_gateway: RunningGateway, http: aiohttp.ClientSession,
                                               size: int) -> None:
    data = os.urandom(size)
    ctx = {"purpose": "test"}
    async with http.post(f"{running_gateway.url}/v1/encrypt", data=data,
                         headers={CONTEXT_HEADER: encode_context(ctx)}) as resp:
        assert resp.status == 200
        assert resp.headers[KEY_ID_HEADER] == running_gateway.key_arn
        message = await resp.read()
        assert resp.headers["Content-Length"] == str(len(message))  # exact length declared up front
    async with http.post(f"{running_gateway.url}/v1/decrypt", data=chunked(message, 7000),
                         headers={CONTEXT_HEADER: encode_context(ctx)}) as resp:
        assert resp.status == 200
        assert await resp.read() == data


async def test_chunked_encrypt_streams_back_chunked(running_gateway: RunningGateway,
                                                    http: aiohttp.ClientSession) -> None:
    data = os.urandom(2 * 1024 * 1024)
    async with http.post(f"{running_gateway.url}/v1/encrypt", data=chunked(data, 65536)) as resp:
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        message = await resp.read()
    async with http.post(f"{running_gateway.url}/v1/decrypt", data=message) as resp:
        assert await resp.read() == data


async def test_a_small_body_of_known_length_and_the_same_body_chunked_decrypt_alike(
        running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    # Content-Length within one I/O block takes the one-read, one-call path; chunked streams.
    data = os.urandom(1024)
    headers = {CONTEXT_HEADER: encode_context({"purpose": "test"})}
    async with http.post(f"{running_gateway.url}/v1/encrypt", data=data, headers=headers) as resp:
        assert resp.headers["Content-Length"] == str(resp.content_length)
        whole = await resp.read()
    async with http.post(f"{running_gateway.url}/v1/encrypt", data=chunked(data, 100), headers=headers) as resp:
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        streamed = await resp.read()
    assert whole != streamed  # each message has its own id and nonces
    for message in (whole, streamed):
        for body in (message, chunked(message, 100)):  # decrypted whole and streamed
            async with http.post(f"{running_gateway.url}/v1/decrypt", data=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                assert await resp.read() == data


async def test_decrypt_context_mismatch_is_refused(running_gateway: RunningGateway,
                                                   http: aiohttp.ClientSession) -> None:
    message = await encrypt(http, running_gateway, b"abc", {CONTEXT_HEADER: encode_context({"a": "1"})})
    async with http.post(f"{running_gateway.url}/v1/decrypt", data=message,
                         headers={CONTEXT_HEADER: encode_context({"a": "2"})}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "EncryptionContextMismatch"


async def test_garbage_and_early_tampering_are_plain_400(running_gateway: RunningGateway,
                                                         http: aiohttp.ClientSession) -> None:
    async with http.post(f"{running_gateway.url}/v1/decrypt", data=b"not a message at all") as resp:
        assert resp.status == 400
        assert (await resp.json()) == {"error": "DecryptionFailed", "message": "The message could not be decrypted."}
    message = bytearray(await encrypt(http, running_gateway, os.urandom(100)))
    message[-20] ^= 1
    async with http.post(f"{running_gateway.url}/v1/decrypt", data=bytes(message)) as resp:
        assert resp.status == 400


async def test_late_tampering_aborts_the_response(running_gateway: RunningGateway,
                                                  http: aiohttp.ClientSession) -> None:
    data = os.urandom(200 * FRAME)  # several request blocks: the response starts before the end
    message = bytearray(await encrypt(http, running_gateway, data))
    message[-100] ^= 1  # the last frames: earlier frames' plaintext is already on its way
    got = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{running_gateway.url}/v1/decrypt", data=chunked(bytes(message), 4096)) as resp:
            assert resp.status == 200
            async for piece in resp.content.iter_any():
                got += piece
    assert len(got) < len(data)


async def test_truncated_message_aborts_without_final_chunk(running_gateway: RunningGateway,
                                                            http: aiohttp.ClientSession) -> None:
    data = os.urandom(200 * FRAME)
    message = await encrypt(http, running_gateway, data)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{running_gateway.url}/v1/decrypt", data=chunked(message[:-50], 4096)) as resp:
            await resp.read()


async def test_health_and_readiness(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{running_gateway.url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{running_gateway.url}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["checks"] == {"storage": "ok", "kms": "ok"}
    storage = running_gateway.gateway.storage
    os.rmdir(storage.tmp_dir)  # type: ignore[attr-defined]
    async with http.get(f"{running_gateway.url}/readyz") as resp:
        assert resp.status == 503
        assert "Retry-After" in resp.headers
        body = await resp.json()
        assert body["error"] == "NotReady" and body["checks"]["storage"] == "failed"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def test_metrics_after_a_known_workload(running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    for _ in range(3):
        async with http.put(f"{running_gateway.url}/v1/objects/m", data=b"x" * 1000) as r:
            assert r.status == 201
    for _ in range(3):
        async with http.get(f"{running_gateway.url}/v1/objects/m") as r:
            assert await r.read() == b"x" * 1000
    async with http.get(f"{running_gateway.url}/v1/objects/missing") as r:
        assert r.status == 404
    async with http.get(f"{running_gateway.url}/metrics") as r:
        got = samples(await r.text())

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    assert value("kmsgate_gateway_requests_total", route="object", method="PUT", status="201") == 3
    assert value("kmsgate_gateway_requests_total", route="object", method="GET", status="200") == 3
    assert value("kmsgate_gateway_requests_total", route="object", method="GET", status="404") == 1
    assert value("kmsgate_gateway_received_bytes_total", route="object") == 3000
    assert value("kmsgate_gateway_sent_bytes_total", route="object") >= 3000
    assert value("kmsgate_gateway_request_duration_seconds_count", route="object", method="PUT") == 3
    assert value("kmsgate_gateway_request_duration_seconds_count", route="object", method="GET") == 4
    # One GenerateDataKey for the three writes of one object; one Decrypt for the three reads.
    assert value("kmsgate_kms_calls_total", operation="GenerateDataKey", outcome="ok") == 1
    assert value("kmsgate_kms_calls_total", operation="Decrypt", outcome="ok") == 1
    assert value("kmsgate_datakey_cache_hits_total") == 4  # 2 encrypt hits + 2 decrypt hits
    assert value("kmsgate_datakey_cache_misses_total") == 2
    assert value("kmsgate_gateway_in_flight_requests") == 1  # this /metrics request itself
    assert ("kmsgate_gateway_crypto_pool_queue_depth", frozenset()) in got


async def test_secrets_never_reach_logs_or_metrics(running_gateway: RunningGateway, http: aiohttp.ClientSession,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    async with http.put(f"{running_gateway.url}/v1/objects/s", data=marker * 100) as r:
        assert r.status == 201
    async with http.get(f"{running_gateway.url}/v1/objects/s") as r:
        assert await r.read() == marker * 100
    async with http.post(f"{running_gateway.url}/v1/encrypt", data=marker) as r:
        await r.read()
    async with http.get(f"{running_gateway.url}/metrics") as r:
        metrics_text = await r.text()
    data_keys = [e.materials.data_key for e in running_gateway.gateway.materials_for(ROOT).cache._entries.values()]
    assert data_keys
    secrets = [marker, running_gateway.root_secret, *data_keys]
    log_text = caplog.text + "\n".join(str(rec.__dict__) for rec in caplog.records)
    assert any(rec.name == "kmsgate.gateway.access" for rec in caplog.records)
    for secret in secrets:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form.decode("latin-1") not in log_text
            assert form.decode("latin-1") not in metrics_text


class CountingExecutor(ThreadPoolExecutor):
    """A real thread pool that counts the jobs handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_small_requests_with_a_warm_cache_make_no_kms_call_and_no_thread_hop(
        running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    data = os.urandom(1024)
    message = await encrypt(http, running_gateway, data)  # warms the data-key caches
    async with http.post(f"{running_gateway.url}/v1/decrypt", data=message) as resp:
        assert await resp.read() == data
    gateway = running_gateway.gateway
    stats = gateway.materials_for(ROOT).stats
    kms_calls, pooled = stats.kms_calls, gateway.pool.pooled_calls
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    for _ in range(5):
        message = await encrypt(http, running_gateway, data)
        async with http.post(f"{running_gateway.url}/v1/decrypt", data=message) as resp:
            assert resp.status == 200 and resp.headers["Content-Length"] == str(len(data))
            assert await resp.read() == data
    assert stats.kms_calls == kms_calls
    assert gateway.pool.pooled_calls == pooled
    assert executor.submitted == 0


async def test_a_running_request_is_published_in_flight_without_a_scrape(
        running_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    # What another worker's /metrics would read: the published gauge, not this process's count.
    registry = running_gateway.gateway.metrics._own_registry
    sent, done = asyncio.Event(), asyncio.Event()

    await asyncio.sleep(METRICS_SYNC_SECONDS + 0.3)  # any sync due from set-up has run
    upload = asyncio.ensure_future(http.put(f"{running_gateway.url}/v1/objects/slow", data=slow_body(sent, done)))
    await sent.wait()
    await asyncio.sleep(METRICS_SYNC_SECONDS + 0.3)
    published = registry.get_sample_value("kmsgate_gateway_in_flight_requests")
    done.set()
    resp = await upload
    assert resp.status == 201
    assert published == 1.0
