"""The gateway's view of the KMS: ``KmsClient`` wrappers that add timeouts, metrics and audit.

Every call made through ``InstrumentedKmsClient`` is bounded by ``timeout_seconds``
(a timeout raises ``KmsUnavailableError``, which the gateway answers with 503) and is
recorded as ``kmsgate_kms_calls_total{operation, outcome}`` plus a latency histogram.
The outcome is ``ok``, ``timeout``, or the AWS error code of the failure; never a key id.

``AuditedKmsClient`` records each in-process KMS call a caller's request causes, allowed or
denied, through the same audit sink as the KMS API (``KmsAuditSink.record``): request id,
operation, caller, source address, key ARN, encryption context, error code and what authorized
the call. Plaintext and
data keys are never handed to the sink. Cache hits make no KMS call and so no audit entry,
as with AWS KMS behind a caching client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from kmsgate.core.errors import KmsError
from kmsgate.config import DEFAULTS
from kmsgate.core.principal import Caller
from kmsgate.envelope.kms_client import GeneratedDataKey, KmsClient, UnwrappedKey, WrappedKey
from kmsgate.gateway.errors import KmsUnavailableError
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.kms.audit_context import REQUEST_AUTHORIZATION, REQUEST_KEY_ARN

T = TypeVar("T")


class InstrumentedKmsClient:
    """Wraps any ``KmsClient`` (in-process or remote) with a timeout and metrics."""

    def __init__(self, inner: KmsClient, metrics: GatewayMetrics, *,
                 timeout_seconds: float = DEFAULTS.kms_timeout_seconds) -> None:
        self.inner = inner
        self.metrics = metrics
        self.timeout_seconds = timeout_seconds

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        outcome = "error"
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await call
            outcome = "ok"
            return result
        except TimeoutError:
            outcome = "timeout"
            raise KmsUnavailableError(f"KMS {operation} timed out") from None
        except KmsError as exc:
            outcome = exc.code
            raise
        except OSError as exc:
            outcome = "unavailable"
            raise KmsUnavailableError(f"KMS {operation} failed: {type(exc).__name__}") from exc
        finally:
            self.metrics.observe_kms_call(operation=operation, outcome=outcome,
                                          seconds=time.perf_counter() - started)

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        return await self._call("GenerateDataKey", self.inner.generate_data_key(
            key_id=key_id, encryption_context=encryption_context, number_of_bytes=number_of_bytes))

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        return await self._call("Decrypt", self.inner.decrypt(
            ciphertext_blob=ciphertext_blob, encryption_context=encryption_context, key_id=key_id))

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        return await self._call("Encrypt", self.inner.encrypt(
            key_id=key_id, plaintext=plaintext, encryption_context=encryption_context))


AuditRecorder = Callable[[Mapping[str, Any]], None]


class AuditedKmsClient:
    """Wraps the ``KmsClient`` acting as ``caller`` so that each call leaves one audit entry."""

    def __init__(self, inner: KmsClient, caller: Caller, record: AuditRecorder) -> None:
        self.inner = inner
        self.caller = caller
        self._record = record

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], key_id: str | None,
                    encryption_context: Mapping[str, str] | None) -> T:
        REQUEST_KEY_ARN.set(None)  # the service sets both as it resolves the key and authorizes
        REQUEST_AUTHORIZATION.set(None)
        code: str | None = None
        try:
            return await call()
        except KmsError as exc:
            code = exc.code
            raise
        except BaseException:  # also a timeout or disconnect cancelling the call: not a success
            code = "KMSInternalException"
            raise
        finally:
            authorization = REQUEST_AUTHORIZATION.get()
            self._record({
                "request_id": str(uuid.uuid4()), "operation": operation, "caller": self.caller,
                "source_ip": self.caller.source_ip, "key_arn": REQUEST_KEY_ARN.get(), "key_id": key_id,
                "encryption_context": encryption_context, "error_code": code,
                "authorized_by": authorization.basis if authorization is not None else None,
                "grant_id": authorization.grant_id if authorization is not None else None,
            })

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        return await self._call("GenerateDataKey", lambda: self.inner.generate_data_key(
            key_id=key_id, encryption_context=encryption_context, number_of_bytes=number_of_bytes),
            key_id, encryption_context)

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        return await self._call("Decrypt", lambda: self.inner.decrypt(
            ciphertext_blob=ciphertext_blob, encryption_context=encryption_context, key_id=key_id),
            key_id, encryption_context)

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        return await self._call("Encrypt", lambda: self.inner.encrypt(
            key_id=key_id, plaintext=plaintext, encryption_context=encryption_context),
            key_id, encryption_context)
