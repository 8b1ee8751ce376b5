"""The materials manager over an in-process kmsgate KMS service: caching, single flight, refresh."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kmsgate.core.errors import NotFoundError
from kmsgate.core.principal import account_root
from kmsgate.envelope import AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, DataKeyUnavailableError, Decryptor
from kmsgate.envelope.cache import CacheLimits
from kmsgate.envelope.kms_client import GeneratedDataKey, InProcessKmsClient, UnwrappedKey, WrappedKey
from kmsgate.envelope.materials import MaterialsManager, decrypt_message, encrypt_message
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import open_service

from .conftest import FakeClock

ACCOUNT = "111122223333"


class CountingKms:
    """Wraps the real in-process client, counting calls; ``gate`` holds calls until set."""

    def __init__(self, inner: InProcessKmsClient) -> None:
        self.inner = inner
        self.generate_calls = 0
        self.decrypt_calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = 0

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        self.generate_calls += 1
        await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise NotFoundError("no such key")
        return await self.inner.generate_data_key(key_id=key_id, encryption_context=encryption_context,
                                                  number_of_bytes=number_of_bytes)

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        self.decrypt_calls += 1
        await self.gate.wait()
        return await self.inner.decrypt(ciphertext_blob=ciphertext_blob, encryption_context=encryption_context,
                                        key_id=key_id)

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        return await self.inner.encrypt(key_id=key_id, plaintext=plaintext, encryption_context=encryption_context)


@pytest.fixture
def kms_setup(tmp_path: Path) -> Any:
    service = open_service(tmp_path / "kms", RootKey(os.urandom(32)), region="us-east-1", account_id=ACCOUNT)
    yield service
    service.close()


async def new_key(service: Any) -> str:
    meta = await service.create_key(caller=account_root(ACCOUNT))
    return str(meta["key_metadata"]["arn"])


async def test_in_process_round_trip_and_edk_names_the_key_arn(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    manager = MaterialsManager(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    message = await encrypt_message(manager, b"hello", key_id=key_arn, encryption_context={"t": "1"})
    result = await decrypt_message(MaterialsManager(InProcessKmsClient(kms_setup, account_root(ACCOUNT))), message)
    assert result.plaintext == b"hello"
    (edk,) = result.header.encrypted_data_keys
    assert (edk.provider_id, edk.provider_info) == ("aws-kms", key_arn.encode())


async def test_hundred_concurrent_misses_make_one_kms_call(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    kms = CountingKms(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    manager = MaterialsManager(kms)
    kms.gate.clear()
    tasks = [asyncio.ensure_future(encrypt_message(manager, b"x" * i, key_id=key_arn)) for i in range(100)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    kms.gate.set()
    messages = await asyncio.gather(*tasks)
    assert kms.generate_calls == 1
    assert manager.stats.kms_calls == 1 and manager.stats.misses == 100
    reader = MaterialsManager(kms)
    plaintexts = await asyncio.gather(*(decrypt_message(reader, m) for m in messages))
    assert [p.plaintext for p in plaintexts] == [b"x" * i for i in range(100)]
    assert kms.decrypt_calls == 1  # one shared data key: one Decrypt, then the decryption cache


async def test_failed_call_reaches_every_waiter_and_is_not_cached(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    kms = CountingKms(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    manager = MaterialsManager(kms)
    kms.gate.clear()
    kms.fail_next = 1
    tasks = [asyncio.ensure_future(encrypt_message(manager, b"x", key_id=key_arn)) for _ in range(10)]
    await asyncio.sleep(0)
    kms.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, NotFoundError) for r in results)
    assert kms.generate_calls == 1
    await encrypt_message(manager, b"x", key_id=key_arn)
    assert kms.generate_calls == 2


async def test_message_limit_holds_for_concurrent_waiters(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    kms = CountingKms(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    manager = MaterialsManager(kms, limits=CacheLimits(max_messages=10))
    kms.gate.clear()
    tasks = [asyncio.ensure_future(manager.encryption_materials(key_id=key_arn)) for _ in range(30)]
    await asyncio.sleep(0)
    kms.gate.set()
    entries = await asyncio.gather(*tasks)
    per_key: dict[int, int] = {}
    for entry in entries:
        per_key[id(entry)] = per_key.get(id(entry), 0) + 1
    assert max(per_key.values()) <= 10
    assert kms.generate_calls == len(per_key) >= 3


async def test_entry_near_expiry_is_refreshed_in_background(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    clock = FakeClock()
    kms = CountingKms(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    manager = MaterialsManager(kms, limits=CacheLimits(max_age_seconds=100), clock=clock, refresh_before_seconds=10)
    first = await manager.encryption_materials(key_id=key_arn)
    clock.advance(95)
    again = await manager.encryption_materials(key_id=key_arn)  # served from cache, triggers refresh
    assert again is first
    await asyncio.gather(*manager._refreshes)
    assert kms.generate_calls == 2
    clock.advance(10)  # the first entry would have expired now; the refreshed one serves
    third = await manager.encryption_materials(key_id=key_arn)
    assert third is not first and kms.generate_calls == 2
    await manager.aclose()


async def test_signed_suite_materials_carry_the_public_key(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    manager = MaterialsManager(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    message = await encrypt_message(manager, b"signed", key_id=key_arn,
                                    suite=AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384)
    result = await decrypt_message(manager, message)
    assert result.plaintext == b"signed"
    assert "aws-crypto-public-key" in result.header.encryption_context


async def test_wrong_context_cannot_unwrap_data_key(kms_setup: Any) -> None:
    key_arn = await new_key(kms_setup)
    manager = MaterialsManager(InProcessKmsClient(kms_setup, account_root(ACCOUNT)), caching=False)
    message = bytearray(await encrypt_message(manager, b"data", key_id=key_arn, encryption_context={"t": "a"}))
    # Rewrite the context value in the header: KMS refuses to unwrap under the altered context.
    at = bytes(message).index(b"\x00\x01t\x00\x01a") + 5
    message[at] = ord("b")
    decryptor = Decryptor()
    decryptor.update(bytes(message))
    with pytest.raises(DataKeyUnavailableError):
        await manager.open_decryptor(decryptor)


async def test_data_keys_never_reach_the_log(kms_setup: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    key_arn = await new_key(kms_setup)
    manager = MaterialsManager(InProcessKmsClient(kms_setup, account_root(ACCOUNT)))
    entry = await manager.encryption_materials(key_id=key_arn)
    text = caplog.text + repr(entry) + repr(entry.materials)
    assert entry.materials.data_key.hex() not in text and repr(entry.materials.data_key) not in text
