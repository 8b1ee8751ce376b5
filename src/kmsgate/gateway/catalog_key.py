"""The gateway's catalog key: one 256-bit data key from the KMS, kept wrapped in storage, held unwrapped in memory.

It seals what listings report of each object without a KMS call per key (the object's S3 ETag,
``kmsgate.gateway.listing_etag``). Obtained on first need (the first write that seals an ETag,
or the first listing): storage's wrapped blob is unwrapped with one KMS ``Decrypt``; when
storage has none yet, a KMS ``GenerateDataKey`` (32 bytes) under the gateway's default key
makes one, and storage keeps the first blob any gateway stored (``Storage.create_catalog_key``;
a gateway that lost that race unwraps the winner's). Both calls carry the encryption context
``{"kmsgate:purpose": "object-catalog"}``, so the blob unwraps for nothing else and nothing
else unwraps as the catalog key. The plaintext key is never written anywhere, logged or counted.

Who the KMS sees: the gateway's own identity (``Gateway.kms``), never a request's caller, since
the key serves every caller's objects. With the embedded KMS that is the account root (as for
the readiness probe), and each call leaves an entry in the audit log as that principal, with the
purpose context (``Gateway`` wraps this client in ``AuditedKmsClient``); with a remote KMS
(``--kms-endpoint``) the gateway's own credentials, which must be allowed ``GenerateDataKey`` and ``Decrypt`` on the default key with that context.

When it cannot be had (the KMS or storage down, the default key disabled): writes store no
sealed ETag and listings report the message id for those entries, as for objects stored before
sealed ETags existed. Nothing waits long for it: a listing waits at most ``LISTING_WAIT_SECONDS``
for a load in progress (which goes on in the background), a write at most the KMS timeout; a
failed load is counted (``kmsgate_catalog_key_failures_total``) and logged once until a load
succeeds again, and is not retried for ``RETRY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from kmsgate.core.errors import KmsError
from kmsgate.envelope.kms_client import KmsClient
from kmsgate.gateway.errors import KmsUnavailableError
from kmsgate.gateway.listing_etag import CATALOG_KEY_BYTES, VersionKind, seal_etag
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

PURPOSE_CONTEXT = {"kmsgate:purpose": "object-catalog"}
"""The encryption context of the catalog key's KMS calls."""
LISTING_WAIT_SECONDS = 1.0
"""Longest a listing waits for the catalog key to load; past that its entries report message ids."""
RETRY_SECONDS = 5.0
"""After a failed load, the catalog key is not asked for again for this long."""


class CatalogKeyUnavailable(Exception):
    """The catalog key could not be obtained (the cause says why; never key material)."""


class CatalogKey:
    """The catalog key of one gateway process (see the module docstring)."""

    def __init__(self, *, storage: Storage, kms: KmsClient, key_id: str, metrics: GatewayMetrics,
                 write_wait_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._kms = kms
        self._key_id = key_id
        self._metrics = metrics
        self._write_wait_seconds = write_wait_seconds
        self._clock = clock
        self._key: bytes | None = None
        self._task: asyncio.Task[bytes] | None = None
        self._failed_at: float | None = None
        self._logged_failure = False

    async def _load(self) -> bytes:
        try:
            wrapped = await self._storage.read_catalog_key()
            if wrapped is None:
                generated = await self._kms.generate_data_key(key_id=self._key_id, encryption_context=PURPOSE_CONTEXT,
                                                              number_of_bytes=CATALOG_KEY_BYTES)
                wrapped = await self._storage.create_catalog_key(generated.ciphertext_blob)
                if wrapped == generated.ciphertext_blob:
                    return self._checked(generated.plaintext)
            unwrapped = await self._kms.decrypt(ciphertext_blob=wrapped, encryption_context=PURPOSE_CONTEXT,
                                                key_id=None)
            return self._checked(unwrapped.plaintext)
        except (KmsError, KmsUnavailableError, StorageError) as exc:
            raise CatalogKeyUnavailable(f"{type(exc).__name__}: {getattr(exc, 'code', '')}".rstrip(": ")) from exc

    @staticmethod
    def _checked(plaintext: bytes) -> bytes:
        if len(plaintext) != CATALOG_KEY_BYTES:
            raise CatalogKeyUnavailable("the KMS returned a catalog key of the wrong length")
        return bytes(plaintext)

    def _loaded(self, task: asyncio.Task[bytes]) -> None:
        self._task = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._key = task.result()
            self._failed_at = None
            if self._logged_failure:
                log.info("catalog key available again: listings report MD5 ETags")
            self._logged_failure = False
            return
        self._failed_at = self._clock()
        self._metrics.catalog_key_failures.inc()
        if not self._logged_failure:
            self._logged_failure = True
            log.warning("catalog key unavailable (%s): listings report message ids instead of MD5 ETags, and "
                        "objects written meanwhile keep no sealed ETag; retrying every %.0f s", exc, RETRY_SECONDS)

    def _loading(self) -> asyncio.Task[bytes] | None:
        """The load in progress, or a new one; ``None`` while a failed load is being waited out."""
        if self._task is None:
            if self._failed_at is not None and self._clock() - self._failed_at < RETRY_SECONDS:
                return None
            self._task = asyncio.create_task(self._load())
            self._task.add_done_callback(self._loaded)
        return self._task

    async def get(self, wait_seconds: float = LISTING_WAIT_SECONDS) -> bytes | None:
        """The catalog key, or ``None`` when it is not had within ``wait_seconds``."""
        if self._key is not None:
            return self._key
        task = self._loading()
        if task is None:
            return None
        try:
            async with asyncio.timeout(wait_seconds):
                return await asyncio.shield(task)
        except (TimeoutError, CatalogKeyUnavailable):
            return None

    async def seal(self, etag: str, *, bucket: str, key: str, kind: VersionKind, version: bytes) -> bytes:
        """``etag`` sealed for an object version being written; empty when the key cannot be had."""
        catalog_key = await self.get(self._write_wait_seconds)
        if catalog_key is None:
            return b""
        return seal_etag(etag, catalog_key=catalog_key, bucket=bucket, key=key, kind=kind, version=version)

    async def aclose(self) -> None:
        """Cancel a load in progress (at shutdown)."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, CatalogKeyUnavailable):
                await task
