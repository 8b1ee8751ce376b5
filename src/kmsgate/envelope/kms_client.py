"""The small async KMS interface the envelope layer needs, with in-process and remote implementations.

``InProcessKmsClient`` calls a ``KmsService`` object directly (no HTTP), acting as a
fixed ``Caller``. ``RemoteKmsClient`` talks to any AWS-KMS-compatible endpoint (another
kmsgate, or AWS KMS) through aiobotocore, which supplies SigV4 signing, retries and the
standard credential chain (environment, profile, role). Its errors are translated once,
here, into the ``kmsgate.core.errors.KmsError`` tree by AWS error code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kmsgate.core.errors import ClientError, DependencyTimeoutError, KmsError, KmsInternalError
from kmsgate.core.principal import Caller


@dataclass(frozen=True, slots=True)
class GeneratedDataKey:
    key_id: str  # the CMK's key ARN
    plaintext: bytes = field(repr=False)
    ciphertext_blob: bytes


@dataclass(frozen=True, slots=True)
class UnwrappedKey:
    key_id: str
    plaintext: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    key_id: str
    ciphertext_blob: bytes


class KmsClient(Protocol):
    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey: ...

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey: ...

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey: ...


class KmsService(Protocol):
    """The subset of ``kmsgate.kms.service.KmsService`` used here."""

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None = None,
                                number_of_bytes: int | None = None, caller: Caller) -> Any: ...

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None = None,
                      key_id: str | None = None, caller: Caller) -> Any: ...

    async def encrypt(self, *, key_id: str, plaintext: bytes, encryption_context: Mapping[str, str] | None = None,
                      caller: Caller) -> Any: ...


class InProcessKmsClient:
    """Calls the KMS service object in the same process, as ``caller``."""

    def __init__(self, service: KmsService, caller: Caller) -> None:
        self._service = service
        self._caller = caller

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        r = await self._service.generate_data_key(key_id=key_id, encryption_context=encryption_context,
                                                  number_of_bytes=number_of_bytes, caller=self._caller)
        return GeneratedDataKey(r.key_id, r.plaintext, r.ciphertext_blob)

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        r = await self._service.decrypt(ciphertext_blob=ciphertext_blob, encryption_context=encryption_context,
                                        key_id=key_id, caller=self._caller)
        return UnwrappedKey(r.key_id, r.plaintext)

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        r = await self._service.encrypt(key_id=key_id, plaintext=plaintext, encryption_context=encryption_context,
                                        caller=self._caller)
        return WrappedKey(r.key_id, r.ciphertext_blob)


def _error_classes() -> dict[str, type[KmsError]]:
    found: dict[str, type[KmsError]] = {}
    pending: list[type[KmsError]] = [KmsError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


@dataclass(frozen=True, slots=True)
class RemoteKmsSettings:
    """Where and how to reach a remote KMS. ``None`` fields fall back to the botocore
    defaults (``AWS_ENDPOINT_URL_KMS``, ``AWS_REGION``, the credential chain)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    connect_timeout_seconds: float = 2.0
    read_timeout_seconds: float = 5.0
    max_attempts: int = 3
    max_pool_connections: int = 50


class RemoteKmsClient:
    """A ``KmsClient`` over the AWS KMS JSON API via aiobotocore. Use as an async context
    manager (or ``await start()`` / ``await close()``)."""

    def __init__(self, settings: RemoteKmsSettings | None = None) -> None:
        self.settings = settings or RemoteKmsSettings()
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._errors = _error_classes()

    async def start(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        s = self.settings
        session = get_session()
        if s.profile:
            session.set_config_variable("profile", s.profile)
        config = AioConfig(
            connect_timeout=s.connect_timeout_seconds, read_timeout=s.read_timeout_seconds,
            retries={"max_attempts": s.max_attempts, "mode": "standard"},
            max_pool_connections=s.max_pool_connections,
        )
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(
            session.create_client("kms", endpoint_url=s.endpoint_url, region_name=s.region, config=config)
        )
        self._stack = stack

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def __aenter__(self) -> RemoteKmsClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def generate_data_key(self, *, key_id: str, encryption_context: Mapping[str, str] | None,
                                number_of_bytes: int) -> GeneratedDataKey:
        params: dict[str, Any] = {"KeyId": key_id, "NumberOfBytes": number_of_bytes}
        if encryption_context:
            params["EncryptionContext"] = dict(encryption_context)
        r = await self._call("generate_data_key", params)
        return GeneratedDataKey(r["KeyId"], r["Plaintext"], r["CiphertextBlob"])

    async def decrypt(self, *, ciphertext_blob: bytes, encryption_context: Mapping[str, str] | None,
                      key_id: str | None) -> UnwrappedKey:
        params: dict[str, Any] = {"CiphertextBlob": ciphertext_blob}
        if encryption_context:
            params["EncryptionContext"] = dict(encryption_context)
        if key_id:
            params["KeyId"] = key_id
        r = await self._call("decrypt", params)
        return UnwrappedKey(r["KeyId"], r["Plaintext"])

    async def encrypt(self, *, key_id: str, plaintext: bytes,
                      encryption_context: Mapping[str, str] | None) -> WrappedKey:
        params: dict[str, Any] = {"KeyId": key_id, "Plaintext": plaintext}
        if encryption_context:
            params["EncryptionContext"] = dict(encryption_context)
        r = await self._call("encrypt", params)
        return WrappedKey(r["KeyId"], r["CiphertextBlob"])

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ConnectTimeoutError, ReadTimeoutError
        from botocore.exceptions import ClientError as BotoClientError

        if self._client is None:
            raise RuntimeError("RemoteKmsClient is not started")
        try:
            result: dict[str, Any] = await getattr(self._client, operation)(**params)
            return result
        except BotoClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", ""))
            cls = self._errors.get(code)
            if cls is None:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
                cls = ClientError if 400 <= int(status) < 500 else KmsInternalError
            raise cls(message) from exc
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            raise DependencyTimeoutError("KMS endpoint timed out") from exc
        except BotoCoreError as exc:
            raise KmsInternalError("KMS endpoint unavailable") from exc
