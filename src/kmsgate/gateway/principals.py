"""Data-key caches kept apart per caller, so no principal ever uses a data key another obtained.

A cached data key is a KMS decision taken once and reused: whoever obtained it may encrypt
under it (``GenerateDataKey``) or decrypt with it (``Decrypt``) until it leaves the cache. So
with an in-process KMS that authorizes each caller by key policy and grants, the gateway keeps
one ``MaterialsManager`` (encryption-materials cache, decryption-key cache, single-flight
calls) per *identity as the KMS sees it*: the principal ARN and the source address (the key
policy may test ``aws:SourceIp``). Each manager calls the KMS through its own client acting as
that identity. Managers are created on first use and kept in an LRU of at most
``max_identities``; an evicted one is closed (its background refreshes cancelled) and its
keys dropped with it.

With a fixed-identity KMS client (a remote KMS, which sees the gateway's own credentials) the
KMS cannot tell callers apart, so every caller shares one manager: separate caches would cost
KMS calls and protect nothing.

What caching means for authorization, as with any data-key cache: a denial is immediate for a
caller without cached keys, but a policy change, grant revocation or time condition reaches a
caller who already holds a cached key only when that entry expires (``CacheLimits``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kmsgate.core.principal import Caller
from kmsgate.envelope.cache import EVICTION_REASONS, CacheLimits, CacheStats, DecryptCacheLimits
from kmsgate.envelope.kms_client import KmsClient
from kmsgate.envelope.materials import MaterialsManager

DEFAULT_MAX_IDENTITIES = 256

KmsClientFactory = Callable[[Caller], KmsClient]
IdentityKey = tuple[str, str | None]


def identity_of(caller: Caller) -> Caller:
    """The caller as the KMS decides on it: ARN, account and source address (not the access key)."""
    return Caller(arn=caller.arn, account_id=caller.account_id, source_ip=caller.source_ip)


@dataclass(slots=True)
class _Synced:
    """How much of one manager's counters has been reported already."""

    hits: int = 0
    misses: int = 0
    evictions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVICTION_REASONS, 0))


@dataclass(frozen=True, slots=True)
class StatsDelta:
    hits: int
    misses: int
    evictions: dict[str, int]


class CallerMaterials:
    """``MaterialsManager`` per KMS identity (``kms_for`` given) or one shared manager."""

    def __init__(
        self,
        *,
        shared_kms: KmsClient,
        kms_for: KmsClientFactory | None = None,
        limits: CacheLimits | None = None,
        decrypt_limits: DecryptCacheLimits | None = None,
        max_identities: int = DEFAULT_MAX_IDENTITIES,
    ) -> None:
        if max_identities < 1:
            raise ValueError("max_identities must be at least 1")
        self._kms_for = kms_for
        self._limits = limits
        self._decrypt_limits = decrypt_limits
        self.max_identities = max_identities
        self._shared = MaterialsManager(shared_kms, limits=limits, decrypt_limits=decrypt_limits)
        self._by_identity: OrderedDict[IdentityKey, MaterialsManager] = OrderedDict()
        self._synced: dict[int, _Synced] = {id(self._shared): _Synced()}
        self._pending = StatsDelta(0, 0, dict.fromkeys(EVICTION_REASONS, 0))
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def per_caller(self) -> bool:
        return self._kms_for is not None

    def for_caller(self, caller: Caller) -> MaterialsManager:
        """The manager whose KMS calls act as ``caller`` (the shared one without ``kms_for``)."""
        if self._kms_for is None:
            return self._shared
        key: IdentityKey = (caller.arn, caller.source_ip)
        manager = self._by_identity.get(key)
        if manager is not None:
            self._by_identity.move_to_end(key)
            return manager
        manager = MaterialsManager(self._kms_for(identity_of(caller)), limits=self._limits,
                                   decrypt_limits=self._decrypt_limits)
        self._by_identity[key] = manager
        self._synced[id(manager)] = _Synced()
        while len(self._by_identity) > self.max_identities:
            _, evicted = self._by_identity.popitem(last=False)
            self._retire(evicted)
        return manager

    def managers(self) -> Iterator[MaterialsManager]:
        """Every live manager (the shared one first)."""
        yield self._shared
        yield from self._by_identity.values()

    def __len__(self) -> int:
        """Live per-identity managers."""
        return len(self._by_identity)

    def _retire(self, manager: MaterialsManager) -> None:
        self._collect(manager, self._synced.pop(id(manager)))
        task = asyncio.ensure_future(manager.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _collect(self, manager: MaterialsManager, synced: _Synced) -> None:
        stats: CacheStats = manager.stats
        hits, misses = stats.hits - synced.hits, stats.misses - synced.misses
        synced.hits, synced.misses = stats.hits, stats.misses
        evictions = dict(self._pending.evictions)
        for reason, count in stats.evictions.items():
            before = synced.evictions.get(reason, 0)
            if count > before:
                evictions[reason] = evictions.get(reason, 0) + count - before
                synced.evictions[reason] = count
        self._pending = StatsDelta(self._pending.hits + hits, self._pending.misses + misses, evictions)

    def take_stats(self) -> StatsDelta:
        """Cache counters gained since the last call, summed over every manager (evicted ones too)."""
        for manager in self.managers():
            self._collect(manager, self._synced[id(manager)])
        delta, self._pending = self._pending, StatsDelta(0, 0, dict.fromkeys(EVICTION_REASONS, 0))
        return delta

    def total_stats(self) -> CacheStats:
        """The live managers' counters summed (for tests and diagnostics)."""
        total = CacheStats()
        for manager in self.managers():
            total.hits += manager.stats.hits
            total.misses += manager.stats.misses
            total.kms_calls += manager.stats.kms_calls
        return total

    async def aclose(self) -> None:
        managers = list(self.managers())
        self._by_identity.clear()
        await asyncio.gather(*(m.aclose() for m in managers), *self._closing, return_exceptions=True)
