"""Slow private-key operations run off the event loop, in helper processes; fast ones stay on it.

An RSA private-key operation costs 0.3 ms (RSA_2048) to several ms (RSA_4096) of CPU; run on the
event loop, a burst of RSA Sign requests holds every other request behind it, and run on a
thread of the worker it still delays the loop (``kmsgate.kms.slow_operations``). The service
hands RSA Sign and RSA Decrypt to its ``SlowOperations``: by default helper processes, in some
tests here a recording or gated thread pool of the test's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kmsgate.core.errors import InvalidCiphertextError, ThrottlingError
from kmsgate.core.principal import Caller
from kmsgate.kms import asymmetric, kem
from kmsgate.kms.clock import FakeClock
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service
from kmsgate.kms.slow_operations import HELPER_NICENESS, SlowOperations

from .helpers import ACCOUNT_ID, REGION

PSS = "RSASSA_PSS_SHA_256"
OAEP = "RSAES_OAEP_SHA_256"


class RecordingExecutor(ThreadPoolExecutor):
    """A thread pool that remembers which functions were run in it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.functions: list[Callable[..., Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.functions.append(fn)
        return super().submit(fn, *args, **kwargs)


class GatedExecutor(ThreadPoolExecutor):
    """A thread pool whose operations start only once ``gate`` is set; ``started`` counts those submitted."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.gate = threading.Event()
        self.started = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.started += 1

        def gated() -> Any:
            self.gate.wait()
            return fn(*args, **kwargs)

        return super().submit(gated)


def _open(tmp_path: Path, slow_operations: SlowOperations | None = None) -> KmsService:
    return open_service(tmp_path / "data", RootKey(os.urandom(32)), region=REGION, account_id=ACCOUNT_ID,
                        clock=FakeClock(), slow_operations=slow_operations)


@pytest.fixture
def executor() -> Iterator[RecordingExecutor]:
    recording = RecordingExecutor()
    yield recording
    recording.shutdown(wait=True)


@pytest.fixture
def recorded_service(tmp_path: Path, executor: RecordingExecutor) -> Iterator[KmsService]:
    service = _open(tmp_path, SlowOperations(lambda: executor))
    yield service
    service.close()


@pytest.fixture
def default_service(tmp_path: Path) -> Iterator[KmsService]:
    service = _open(tmp_path)
    yield service
    service.close()


async def _key(service: KmsService, caller: Caller, spec: str, usage: str) -> str:
    return str((await service.create_key(caller=caller, key_spec=spec, key_usage=usage))["key_metadata"]["key_id"])


def _private_key_loads() -> int:
    """How many times this process has asked for a loaded private key (cache hits and misses)."""
    info = asymmetric.load_private_key.cache_info()
    return info.hits + info.misses


async def test_rsa_sign_and_decrypt_run_off_the_event_loop(recorded_service: KmsService, caller: Caller,
                                                           executor: RecordingExecutor) -> None:
    service = recorded_service
    signing = await _key(service, caller, "RSA_2048", "SIGN_VERIFY")
    encryption = await _key(service, caller, "RSA_2048", "ENCRYPT_DECRYPT")
    ciphertext = (await service.encrypt(caller=caller, key_id=encryption, plaintext=b"m",
                                        encryption_algorithm=OAEP)).ciphertext_blob
    await service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm=PSS)
    decrypted = await service.decrypt(caller=caller, key_id=encryption, ciphertext_blob=ciphertext,
                                      encryption_algorithm=OAEP)
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


async def test_rsa_sign_and_decrypt_never_use_the_private_key_in_the_workers_own_process(
    default_service: KmsService, caller: Caller
) -> None:
    service = default_service
    signing = await _key(service, caller, "RSA_2048", "SIGN_VERIFY")
    encryption = await _key(service, caller, "RSA_2048", "ENCRYPT_DECRYPT")
    ciphertext = (await service.encrypt(caller=caller, key_id=encryption, plaintext=b"m",
                                        encryption_algorithm=OAEP)).ciphertext_blob
    loads_before = _private_key_loads()
    signature = (await service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm=PSS)).signature
    decrypted = await service.decrypt(caller=caller, key_id=encryption, ciphertext_blob=ciphertext,
                                      encryption_algorithm=OAEP)
    assert _private_key_loads() == loads_before  # the key objects were used in a helper process only
    assert decrypted.plaintext == b"m"
    verified = await service.verify(caller=caller, key_id=signing, message=b"m", signature=signature,
                                     signing_algorithm=PSS)
    assert verified.signature_valid


async def test_an_error_raised_in_a_helper_process_reaches_the_caller_as_itself(
    default_service: KmsService, caller: Caller
) -> None:
    encryption = await _key(default_service, caller, "RSA_2048", "ENCRYPT_DECRYPT")
    with pytest.raises(InvalidCiphertextError) as raised:
        await default_service.decrypt(caller=caller, key_id=encryption, ciphertext_blob=b"\x01" * 256,
                                      encryption_algorithm=OAEP)
    assert raised.value.message == asymmetric.INVALID_CIPHERTEXT_MESSAGE


async def test_rsa_signs_beyond_the_pending_limit_are_throttled_at_once(tmp_path: Path, caller: Caller) -> None:
    gated = GatedExecutor()
    service = _open(tmp_path, SlowOperations(lambda: gated, max_pending=2))
    try:
        signing = await _key(service, caller, "RSA_2048", "SIGN_VERIFY")

        def sign() -> asyncio.Task[Any]:
            return asyncio.ensure_future(service.sign(caller=caller, key_id=signing, message=b"m",
                                                      signing_algorithm=PSS))

        waiting = [sign(), sign()]
        while gated.started < 2:  # both handed to the pool, neither can finish before the gate opens
            await asyncio.sleep(0)
        with pytest.raises(ThrottlingError):
            await service.sign(caller=caller, key_id=signing, message=b"m", signing_algorithm=PSS)
        assert gated.started == 2  # the refused sign never reached the pool
        gated.gate.set()
        assert all(result.signature for result in await asyncio.gather(*waiting))
        assert (await sign()).signature  # places free again once they finish
    finally:
        gated.gate.set()
        service.close()
        gated.shutdown(wait=True)


async def test_a_helper_process_that_dies_is_replaced() -> None:
    slow = SlowOperations()
    try:
        helper = await slow.run(os.getpid)
        assert helper != os.getpid()
        os.kill(helper, signal.SIGKILL)
        replacement = await slow.run(os.getpid)
        assert replacement not in (helper, os.getpid())
    finally:
        slow.close()


async def test_helper_processes_run_at_a_lower_cpu_priority_than_the_worker() -> None:
    slow = SlowOperations()
    try:
        assert await slow.run(os.nice, 0) == min(os.nice(0) + HELPER_NICENESS, 19)
    finally:
        slow.close()


_WORKER_WITH_A_HELPER = """
import asyncio, os, sys
from kmsgate.kms.slow_operations import SlowOperations

async def main() -> None:
    slow = SlowOperations()
    print(await slow.run(os.getpid), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` names a live process (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_helper_process_does_not_outlive_a_killed_worker() -> None:
    worker = subprocess.Popen([sys.executable, "-c", _WORKER_WITH_A_HELPER], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        helper = int(worker.stdout.readline())
        assert _running(helper)
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 30
        while _running(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(helper)
    finally:
        worker.kill()
        worker.wait()
