"""The catalog key service: one KMS call to get it, as the gateway, under its purpose; bounded waits when the KMS fails."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from kmsgate.core.errors import KmsInternalError
from kmsgate.envelope.kms_client import GeneratedDataKey, UnwrappedKey, WrappedKey
from kmsgate.gateway.catalog_key import PURPOSE_CONTEXT, RETRY_SECONDS, CatalogKey
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.storage.file import FileStorage

KEY_ID = "alias/kmsgate-default"


class FakeKms:
    """A KMS whose data keys are wrapped by prefixing them; it records every call and can fail or hang."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, str] | None]] = []
        self.failing = False
        self.hanging = False

    async def _enter(self, operation: str, encryption_context: Mapping[str, str] | None) -> None:
        self.calls.append((operation, encryption_context))
        if self.hanging:
            await asyncio.Event().wait()
        if self.failing:
            raise KmsInternalError("KMS endpoint unavailable")

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        await self._enter("GenerateDataKey", encryption_context)
        plaintext = os.urandom(number_of_bytes)
        return GeneratedDataKey(key_id=key_id, plaintext=plaintext, ciphertext_blob=b"wrapped:" + plaintext)

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        await self._enter("Decrypt", encryption_context)
        return UnwrappedKey(key_id=KEY_ID, plaintext=ciphertext_blob.removeprefix(b"wrapped:"))

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        raise AssertionError("the catalog key never calls Encrypt")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[FileStorage]:
    storage = await FileStorage.open(tmp_path / "store")
    yield storage
    await storage.close()


def catalog_key(storage: FileStorage, kms: FakeKms, metrics: GatewayMetrics | None = None,
                clock: FakeClock | None = None) -> CatalogKey:
    return CatalogKey(storage=storage, kms=kms, key_id=KEY_ID, metrics=metrics or GatewayMetrics(),
                      write_wait_seconds=5.0, clock=clock or FakeClock())


async def test_the_catalog_key_is_generated_once_kept_wrapped_and_unwrapped_by_a_later_gateway(
        storage: FileStorage) -> None:
    kms = FakeKms()
    first = catalog_key(storage, kms)
    key = await first.get()
    assert key is not None and len(key) == 32
    assert await first.get() == key and await first.get() == key
    assert kms.calls == [("GenerateDataKey", PURPOSE_CONTEXT)]
    assert await storage.read_catalog_key() == b"wrapped:" + key
    assert (storage.root / "catalog-key.bin").stat().st_mode & 0o777 == 0o600

    later = catalog_key(storage, kms)
    assert await later.get() == key
    assert kms.calls == [("GenerateDataKey", PURPOSE_CONTEXT), ("Decrypt", PURPOSE_CONTEXT)]


async def test_a_kms_that_does_not_answer_does_not_hold_the_caller_past_its_wait(storage: FileStorage) -> None:
    kms = FakeKms()
    kms.hanging = True
    key = catalog_key(storage, kms)
    assert await key.get(wait_seconds=0.05) is None  # returns while the KMS call is still pending
    assert await key.get(wait_seconds=0.05) is None
    assert kms.calls == [("GenerateDataKey", PURPOSE_CONTEXT)]  # one load, waited for by both
    await key.aclose()


async def test_a_failed_load_is_counted_logged_once_and_retried_only_after_a_while(
        storage: FileStorage, caplog: pytest.LogCaptureFixture) -> None:
    kms, metrics, clock = FakeKms(), GatewayMetrics(), FakeClock()
    kms.failing = True
    key = catalog_key(storage, kms, metrics, clock)
    with caplog.at_level(logging.WARNING, logger="kmsgate.gateway.catalog_key"):
        assert await key.get() is None
        assert await key.get() is None  # within the retry delay: no new attempt
        assert len(kms.calls) == 1
        clock.now += RETRY_SECONDS
        assert await key.get() is None
        assert len(kms.calls) == 2
    assert "\nkmsgate_catalog_key_failures_total 2.0\n" in metrics.render()[0].decode()
    assert len(caplog.records) == 1
    assert "catalog key unavailable" in caplog.records[0].getMessage()

    kms.failing = False
    clock.now += RETRY_SECONDS
    assert await key.get() is not None
