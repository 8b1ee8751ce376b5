"""The service's in-memory view of the key store, and how a batch of changed rows moves it forward.

A ``Snapshot`` is immutable once built: a reload builds a new one (sharing every part that did
not change) and the service swaps it in with one assignment, so a request holds a consistent view
for as long as it keeps a reference.

``Changes`` is what a reload read: the current rows of everything changed since the change
sequence the old view was built at. ``apply_changes`` is pure (no I/O): it overwrites each changed
entity with its current row, or drops it when the row is gone. A purged key (deleted for good)
drops the key with everything that hung off it: its materials, the aliases still naming it and
its grants. Purges are applied first, so a later row read for the same key id (there is none:
key ids are never reused) could not be lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from kmsgate.auth.grants import Grant
from kmsgate.kms.model import KeyMaterial, KmsKey

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Alias:
    alias_name: str
    key_id: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the service serves from memory."""

    keys: dict[str, KmsKey]
    aliases: dict[str, Alias]
    materials: dict[tuple[str, int], KeyMaterial]
    grants: dict[str, tuple[Grant, ...]] = field(default_factory=dict)  # by key id


EMPTY_SNAPSHOT = Snapshot(keys={}, aliases={}, materials={})


@dataclass(frozen=True, slots=True)
class Changes:
    """The current rows of what changed. ``None`` marks an entity whose row is gone."""

    purged_keys: frozenset[str] = frozenset()
    keys: Mapping[str, KmsKey | None] = field(default_factory=dict)
    aliases: Mapping[str, Alias | None] = field(default_factory=dict)
    materials: Mapping[str, Mapping[int, KeyMaterial]] = field(default_factory=dict)  # every version of a key
    grants: Mapping[str, Mapping[str, Grant | None]] = field(default_factory=dict)  # key id -> grant id -> row


def apply_changes(snapshot: Snapshot, changes: Changes) -> Snapshot:
    """``snapshot`` with ``changes`` applied; the parts nothing touched are shared, not copied."""
    keys, aliases, materials, grants = snapshot.keys, snapshot.aliases, snapshot.materials, snapshot.grants
    purged = changes.purged_keys
    if purged:
        keys = {key_id: key for key_id, key in keys.items() if key_id not in purged}
        aliases = {name: alias for name, alias in aliases.items() if alias.key_id not in purged}
        materials = {ref: material for ref, material in materials.items() if ref[0] not in purged}
        grants = {key_id: held for key_id, held in grants.items() if key_id not in purged}
    if changes.keys:
        keys = _overwrite(keys, changes.keys)
    if changes.aliases:
        aliases = _overwrite(aliases, changes.aliases)
    if changes.materials:
        reloaded = changes.materials
        materials = {ref: material for ref, material in materials.items() if ref[0] not in reloaded}
        for key_id, versions in reloaded.items():
            materials.update(((key_id, version), material) for version, material in versions.items())
    if changes.grants:
        grants = dict(grants)
        for key_id, rows in changes.grants.items():
            held = {grant.grant_id: grant for grant in grants.get(key_id, ())}
            for grant_id, grant in rows.items():
                if grant is None:
                    held.pop(grant_id, None)
                else:
                    held[grant_id] = grant
            if held:
                grants[key_id] = tuple(held.values())
            else:
                grants.pop(key_id, None)
    return Snapshot(keys=keys, aliases=aliases, materials=materials, grants=grants)


def _overwrite(current: dict[str, _V], rows: Mapping[str, _V | None]) -> dict[str, _V]:
    updated = dict(current)
    for name, row in rows.items():
        if row is None:
            updated.pop(name, None)
        else:
            updated[name] = row
    return updated
