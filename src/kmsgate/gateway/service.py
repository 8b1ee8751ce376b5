"""The gateway's resources and settings, and the services over them; no HTTP here.

A ``Gateway`` owns the request authenticator, the object access checks
(``kmsgate.gateway.object_access``), the storage backend, the KMS client (wrapped
with timeouts and metrics), the data-key caches (``CallerMaterials``), the crypto thread pool
and the metrics. It is per process: each worker builds its own. Its services, ``objects``
(``kmsgate.gateway.object_service``), ``buckets`` (``kmsgate.gateway.bucket_service``),
``multipart`` (``kmsgate.gateway.multipart_service``: multipart uploads and copies) and
``streams`` (``kmsgate.gateway.stream_service``), are what every front (``/v1``, S3) calls; ``kmsgate.gateway.routes`` wires a ``Gateway``
into an aiohttp application.

Who the KMS sees:

* ``kms_for`` given (the embedded KMS): each authenticated caller's KMS calls act as that
  caller (``InProcessKmsClient(service, caller)``), so key policies and grants decide who may
  write or read under which key and context, and each caller has caches of its own
  (``kmsgate.gateway.principals``). With ``audit`` (``KmsAuditSink.record``) each of these
  calls leaves an audit entry, as a KMS API request does; ``audit_status`` (the same sink) puts
  the audit log's state in readiness and the metrics. ``kms`` is the gateway's own identity
  (``kms_caller``: the account root), used only by the readiness probe and for the catalog key
  (``kmsgate.gateway.catalog_key``). With ``audit`` and ``kms_caller`` the catalog key's calls
  are audited as that identity, as a caller's are; the readiness probe's are counted in the
  metrics only.
* ``kms_for`` absent (a remote KMS): every call uses ``kms`` and its credentials, so the remote
  KMS sees the gateway's identity, not the caller's; callers are still authenticated, and any
  of them may use what the gateway's identity may. Callers share one cache.

The data-key caches count hits and misses in plain integers (pure core), and the metrics
gather request counts per process; the gateway moves both into the shared Prometheus metrics,
with its in-flight count, at most ``METRICS_SYNC_SECONDS`` after a request, before ``/metrics``
renders, and at close, so a scrape of another worker lags by at most that.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from kmsgate.config import DEFAULTS
from kmsgate.envelope.cache import CacheLimits, DecryptCacheLimits
from kmsgate.envelope.encryptor import FRAME_LENGTH
from kmsgate.envelope.header import DecryptPolicy
from kmsgate.core.principal import Caller
from kmsgate.envelope.kms_client import KmsClient
from kmsgate.envelope.materials import MaterialsManager
from kmsgate.envelope.pool import THRESHOLD_BYTES, CryptoPool
from kmsgate.auth.adapters import GatewayAuthenticator
from kmsgate.gateway.auth import BearerCallers, RequestAuthenticator
from kmsgate.gateway.bucket_service import BucketService
from kmsgate.gateway.catalog_key import CatalogKey
from kmsgate.gateway.kms import AuditedKmsClient, AuditRecorder, InstrumentedKmsClient
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.multipart_service import MultipartService
from kmsgate.gateway.object_access import ObjectAccess
from kmsgate.gateway.object_service import ObjectService
from kmsgate.gateway.principals import DEFAULT_MAX_IDENTITIES, CallerMaterials, KmsClientFactory
from kmsgate.gateway.storage.base import BucketAlreadyExists, Storage, StorageError
from kmsgate.gateway.stream_service import StreamService
from kmsgate.web.exchange import Load

log = logging.getLogger(__name__)

DEFAULT_KEY_ALIAS = DEFAULTS.default_key_alias
METRICS_SYNC_SECONDS = 0.5
"""Longest delay before a request's counts (requests, bytes, in flight, data-key cache hits and
misses) reach the shared metrics (``/metrics`` of the same process syncs first, so it is always
current there)."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Tunables of the gateway (the CLI maps its options onto these)."""

    default_key_id: str = DEFAULT_KEY_ALIAS
    default_bucket: str = DEFAULTS.default_bucket
    """The bucket of the ``/v1/objects`` API: objects are ``arn:aws:s3:::<bucket>/<key>``."""
    max_object_bytes: int = DEFAULTS.max_object_size
    """Largest plaintext accepted by PUT and /v1/encrypt, and largest message by /v1/decrypt."""
    max_in_flight: int = DEFAULTS.max_in_flight
    """Authenticated requests served at once per process, of every front (the KMS API's too);
    one more is shed at once (``kmsgate.web.exchange``)."""
    frame_length: int = FRAME_LENGTH
    io_block_bytes: int = 256 * 1024
    """Bytes gathered from a request body before one encrypt/decrypt step."""
    crypto_workers: int | None = None
    """Threads for large crypto steps (default: the CPU count)."""
    crypto_inline_bytes: int = THRESHOLD_BYTES
    crypto_max_queued: int | None = None
    kms_timeout_seconds: float = DEFAULTS.kms_timeout_seconds
    readiness_timeout_seconds: float = 2.0
    retry_after_seconds: int = 1
    cache_limits: CacheLimits = field(default_factory=CacheLimits)
    decrypt_cache_limits: DecryptCacheLimits = field(default_factory=DecryptCacheLimits)
    decrypt_policy: DecryptPolicy = field(default_factory=DecryptPolicy)
    max_caller_caches: int = DEFAULT_MAX_IDENTITIES
    """Callers (principal and source address) whose data-key caches are kept at once (LRU)."""


KmsProbe = Callable[[], Awaitable[None]]


class AuditStatus(Protocol):
    """The state of the audit log the gateway's KMS calls are recorded in (``KmsAuditSink``)."""

    @property
    def writable(self) -> bool: ...

    @property
    def failed_writes(self) -> int: ...


def _instrumented(kms_for: KmsClientFactory, metrics: GatewayMetrics, timeout: float,
                  audit: AuditRecorder | None) -> KmsClientFactory:
    def client(caller: Caller) -> KmsClient:
        inner = kms_for(caller)
        if audit is not None:
            inner = AuditedKmsClient(inner, caller, audit)
        return InstrumentedKmsClient(inner, metrics, timeout_seconds=timeout)

    return client


class Gateway:
    """Per-process gateway resources."""

    def __init__(self, *, storage: Storage, kms: KmsClient, metrics: GatewayMetrics,
                 authenticator: RequestAuthenticator, object_access: ObjectAccess | None = None,
                 kms_for: KmsClientFactory | None = None, kms_caller: Caller | None = None,
                 audit: AuditRecorder | None = None, audit_status: AuditStatus | None = None,
                 settings: GatewaySettings | None = None, kms_probe: KmsProbe | None = None,
                 key_store_probe: KmsProbe | None = None,
                 on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self.storage = storage
        self.metrics = metrics
        self.authenticator = authenticator
        self.object_access = object_access or ObjectAccess(None)
        self.objects = ObjectService(self)
        self.buckets = BucketService(self)
        self.multipart = MultipartService(self)
        self.streams = StreamService(self)
        # Bearer callers are remembered only over an immutable identity directory.
        self.bearer_callers = BearerCallers() if isinstance(authenticator, GatewayAuthenticator) else None
        timeout = self.settings.kms_timeout_seconds
        self.kms = InstrumentedKmsClient(kms, metrics, timeout_seconds=timeout)
        catalog_kms: KmsClient = self.kms
        if audit is not None and kms_caller is not None:
            catalog_kms = InstrumentedKmsClient(AuditedKmsClient(kms, kms_caller, audit), metrics,
                                                timeout_seconds=timeout)
        self.catalog_key = CatalogKey(storage=storage, kms=catalog_kms, key_id=self.settings.default_key_id,
                                      metrics=metrics, write_wait_seconds=timeout)
        per_caller = None if kms_for is None else _instrumented(kms_for, metrics, timeout, audit)
        self.caller_materials = CallerMaterials(
            shared_kms=self.kms, kms_for=per_caller, limits=self.settings.cache_limits,
            decrypt_limits=self.settings.decrypt_cache_limits, max_identities=self.settings.max_caller_caches,
        )
        self.pool = CryptoPool(
            max_workers=self.settings.crypto_workers or os.cpu_count() or 1,
            threshold_bytes=self.settings.crypto_inline_bytes,
            max_queued=self.settings.crypto_max_queued,
            on_depth=metrics.pool_queue_depth.set,
        )
        self.kms_probe = kms_probe
        self.key_store_probe = key_store_probe  # the embedded KMS's key store; None with a remote KMS
        self.audit_status = audit_status
        self._audit_failures_synced = 0
        self._on_close = on_close
        self._sync_handle: asyncio.TimerHandle | None = None
        self.load = Load(self.settings.max_in_flight, metrics, self.schedule_metrics_sync)
        self._default_bucket_ready = False

    async def ensure_default_bucket(self) -> None:
        """Create the default bucket unless it exists. Idempotent, and safe when several worker
        processes start at once: whichever creates it, the others find it there."""
        if self._default_bucket_ready:
            return
        try:
            await self.storage.create_bucket(self.settings.default_bucket)
        except BucketAlreadyExists:
            pass
        self._default_bucket_ready = True

    async def start(self) -> None:
        """Called once the gateway is built. Storage that is down at start does not stop the
        process: ``/readyz`` reports it, and retries the default bucket, until it is back."""
        try:
            await self.ensure_default_bucket()
        except StorageError as exc:
            log.warning("default bucket not ready: %s", exc)

    def materials_for(self, caller: Caller) -> MaterialsManager:
        """The data-key caches whose KMS calls act as ``caller`` (see the module docstring)."""
        return self.caller_materials.for_caller(caller)

    @property
    def in_flight(self) -> int:
        """Authenticated requests being served now, over every front of this process."""
        return self.load.in_flight

    def schedule_metrics_sync(self) -> None:
        """Called as each request starts and ends: schedules one metrics sync at most
        ``METRICS_SYNC_SECONDS`` away, instead of updating the shared metrics per request
        (at the start too, so that a long request shows in flight while it runs)."""
        if self._sync_handle is None:
            self._sync_handle = asyncio.get_running_loop().call_later(METRICS_SYNC_SECONDS, self._scheduled_sync)

    def _scheduled_sync(self) -> None:
        self._sync_handle = None
        self.sync_metrics()

    def sync_metrics(self) -> None:
        """Move this process's counts (request totals, in-flight requests, the tasks on its event
        loop, the caches' counters from the pure core) into the Prometheus metrics. Runs on the
        event loop (counting its tasks walks them once: about a microsecond per task)."""
        self.metrics.flush()
        self.metrics.in_flight.set(self.in_flight)
        self.metrics.event_loop_tasks.set(len(asyncio.all_tasks()))
        if self.audit_status is not None:
            self.metrics.audit_writable.set(1 if self.audit_status.writable else 0)
            failures = self.audit_status.failed_writes
            if failures > self._audit_failures_synced:
                self.metrics.audit_write_failures.inc(failures - self._audit_failures_synced)
                self._audit_failures_synced = failures
        delta = self.caller_materials.take_stats()
        if delta.hits:
            self.metrics.cache_hit(delta.hits)
        if delta.misses:
            self.metrics.cache_miss(delta.misses)
        for reason, count in delta.evictions.items():
            if count:
                self.metrics.cache_eviction(reason, count)

    async def close(self) -> None:
        if self._sync_handle is not None:
            self._sync_handle.cancel()
            self._sync_handle = None
        self.sync_metrics()
        await self.catalog_key.aclose()
        await self.caller_materials.aclose()
        self.pool.close()
        await self.storage.close()
        if self._on_close is not None:
            await self._on_close()
