"""Slow private-key operations run off the event loop; fast ones stay on it.

An RSA private-key operation costs 0.3 ms (RSA_2048) to several ms (RSA_4096) of CPU; run on the
event loop, a burst of RSA Sign requests holds every other request behind it. The service hands
RSA Sign and RSA Decrypt to its slow-operation executor (fewer threads than cores), here a
recording executor of the test's own that notes each function handed to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kmsgate.core.principal import Caller
from kmsgate.kms import asymmetric, kem
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service

from .helpers import ACCOUNT_ID, REGION


class RecordingExecutor(ThreadPoolExecutor):
    """A thread pool that remembers which functions were run in it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.functions: list[Callable[..., Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.functions.append(fn)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def executor() -> Iterator[RecordingExecutor]:
    recording = RecordingExecutor()
    yield recording
    recording.shutdown(wait=True)


@pytest.fixture
def recorded_service(tmp_path: Path, executor: RecordingExecutor) -> Iterator[KmsService]:
    service = open_service(tmp_path / "data", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID,
                           clock=FakeClock(), slow_executor=executor)
    yield service
    service.close()


async def _key(service: KmsService, caller: Caller, spec: str, usage: str) -> str:
    return str((await service.create_key(caller=caller, key_spec=spec, key_usage=usage))["key_metadata"]["key_id"])


async def test_rsa_sign_and_decrypt_run_off_the_event_loop(recorded_service: KmsService, caller: Caller,
                                                           executor: RecordingExecutor) -> None:
    service = recorded_service
    signing = await _key(service, caller, "RSA_2048", "SIGN_VERIFY")
    encryption = await _key(service, caller, "RSA_2048", "ENCRYPT_DECRYPT")
    ciphertext = (await service.encrypt(caller=caller, key_id=encryption, plaintext=b"m",
                                        encryption_algorithm="RSAES_OAEP_SHA_256")).ciphertext_blob
    await service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm="RSASSA_PSS_SHA_256")
    decrypted = await service.decrypt(caller=caller, key_id=encryption, ciphertext_blob=ciphertext,
                                      encryption_algorithm="RSAES_OAEP_SHA_256")
    assert decrypted.plaintext == b"m"
    assert asymmetric.sign in executor.functions and asymmetric.decrypt in executor.functions


async def test_ecdsa_signing_stays_on_the_event_loop(recorded_service: KmsService, caller: Caller,
                                                     executor: RecordingExecutor) -> None:
    signing = await _key(recorded_service, caller, "ECC_NIST_P256", "SIGN_VERIFY")
    await recorded_service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm="ECDSA_SHA_256")
    assert asymmetric.sign not in executor.functions


async def test_ml_kem_512_runs_off_the_event_loop_and_768_stays_on_it(
    recorded_service: KmsService, caller: Caller, executor: RecordingExecutor
) -> None:
    """ML-KEM-512 is computed in pure Python (milliseconds); ML-KEM-768 and -1024 by OpenSSL."""
    service = recorded_service
    fast = await _key(service, caller, "ML_KEM_768", "ENCAPSULATE_DECAPSULATE")
    encapsulated = await service.encapsulate(caller=caller, key_id=fast, encapsulation_algorithm="ML_KEM")
    await service.decapsulate(caller=caller, key_id=fast, encapsulation_algorithm="ML_KEM",
                              shared_secret_ciphertext_blob=encapsulated.shared_secret_ciphertext_blob)
    assert kem.encapsulate not in executor.functions and kem.decapsulate not in executor.functions
    slow = await _key(service, caller, "ML_KEM_512", "ENCAPSULATE_DECAPSULATE")
    encapsulated = await service.encapsulate(caller=caller, key_id=slow, encapsulation_algorithm="ML_KEM")
    decapsulated = await service.decapsulate(caller=caller, key_id=slow, encapsulation_algorithm="ML_KEM",
                                             shared_secret_ciphertext_blob=encapsulated.shared_secret_ciphertext_blob)
    assert decapsulated.shared_secret == encapsulated.shared_secret
    assert kem.encapsulate in executor.functions and kem.decapsulate in executor.functions
