"""Loading the service's in-memory view from the key store: everything once, then only what changed.

``ViewLoader`` reads through connections its store hands it, one load at a time (a lock guards
it), from a worker thread, never on the event loop. ``load`` reads every row; ``load_changes`` reads the
change log after the sequence a view was built at (``kmsgate.kms.changelog``) and then the
current row of each entity named there, so its cost follows what changed, not how much is
stored. Each load runs in one read transaction of its store (``reading``: SQLite's ``BEGIN``,
PostgreSQL's ``REPEATABLE READ``), so the view and its sequence number agree.

Material rows are unwrapped with the root key; an unwrapped version is reused while its wrapped
bytes are unchanged, so a reload does not unwrap again what it already holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import orjson

from kmsgate.auth.grants import Grant
from kmsgate.kms import changelog
from kmsgate.kms.grant_records import grant_from_record
from kmsgate.kms.model import KeyMaterial, KmsKey
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.snapshot import Alias, Changes, Snapshot, apply_changes
from kmsgate.kms.sql import Connection

IDS_PER_QUERY = 500  # ids bound in one ``IN (...)``, well under SQLite's variable limit

Reading = Callable[[], AbstractContextManager[Connection]]  # a connection inside one read transaction

_MaterialRef = tuple[str, int, bytes]  # key id, version, wrapped bytes


@dataclass(frozen=True, slots=True)
class Loaded:
    """A view of the store and the last change it includes (``full``: read from every row)."""

    snapshot: Snapshot
    change_seq: int
    full: bool


def material_from_row(row: tuple, root_key: RootKey) -> KeyMaterial:  # type: ignore[type-arg]
    key_id, version, material_id, wrapped, created, rotation_type, origin = row
    return KeyMaterial(
        key_id=key_id,
        version=version,
        material_id=material_id,
        secret=root_key.unwrap_material(key_id, version, wrapped),
        created=created,
        rotation_type=rotation_type,
        origin=origin,
    )


class ViewLoader:
    """Reads views of the store through ``reading`` (blocking: call from a worker thread)."""

    def __init__(self, reading: Reading, root_key: RootKey) -> None:
        self._reading = reading
        self._root_key = root_key
        self._lock = threading.Lock()
        self._materials: dict[_MaterialRef, KeyMaterial] = {}
        self.rows_read = 0  # every row read so far, change-log rows included

    def close(self, release: Callable[[], None]) -> None:
        """Run ``release`` (closing the store's read connection) once no load is running."""
        with self._lock:
            release()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._lock, self._reading() as conn:
            yield conn

    def load(self) -> Loaded:
        with self._read() as conn:
            return self._load_all(conn)

    def load_changes(self, held: Loaded) -> Loaded:
        with self._read() as conn:
            if held.change_seq < changelog.pruned_through(conn):
                return self._load_all(conn)
            seq, changed = changelog.read_since(conn, held.change_seq)
            if not changed:
                return held
            self.rows_read += len(changed)
            return Loaded(apply_changes(held.snapshot, self._read_changed(conn, changed)), seq, full=False)

    def _load_all(self, conn: Connection) -> Loaded:
        seq = changelog.last_seq(conn)
        keys = {
            key_id: KmsKey.from_record(orjson.loads(record))
            for key_id, record in conn.execute("SELECT key_id, record FROM keys")
        }
        aliases = {row[0]: Alias(*row) for row in conn.execute("SELECT * FROM aliases")}
        grouped: dict[str, list[Grant]] = {}
        for key_id, record in conn.execute("SELECT key_id, record FROM grants"):
            grouped.setdefault(key_id, []).append(grant_from_record(orjson.loads(record)))
        grants = {key_id: tuple(items) for key_id, items in grouped.items()}
        previous, self._materials = self._materials, {}
        materials: dict[tuple[str, int], KeyMaterial] = {}
        for row in conn.execute("SELECT * FROM materials"):
            material = self._unwrap(row, previous)
            materials[(material.key_id, material.version)] = material
        self.rows_read += len(keys) + len(aliases) + sum(map(len, grants.values())) + len(materials)
        return Loaded(Snapshot(keys=keys, aliases=aliases, materials=materials, grants=grants), seq, full=True)

    def _unwrap(self, row: tuple, previous: dict[_MaterialRef, KeyMaterial]) -> KeyMaterial:  # type: ignore[type-arg]
        ref = (row[0], row[1], bytes(row[3]))
        material = previous.get(ref) or material_from_row(row, self._root_key)
        self._materials[ref] = material
        return material

    def _read_changed(self, conn: Connection, changed: list[changelog.Change]) -> Changes:
        """The current rows of every entity ``changed`` names (rows already gone read as ``None``)."""
        purged = {key_id for kind, key_id, _ in changed if kind == changelog.PURGE}
        wanted = [(kind, key_id, name) for kind, key_id, name in changed if key_id not in purged]
        keys: dict[str, KmsKey | None] = {}
        for key_id in {key_id for kind, key_id, _ in wanted if kind == changelog.KEY}:
            row = self._row(conn, "SELECT record FROM keys WHERE key_id = ?", key_id)
            keys[key_id] = None if row is None else KmsKey.from_record(orjson.loads(row[0]))
        aliases: dict[str, Alias | None] = {}
        for alias_name in {name for kind, _, name in wanted if kind == changelog.ALIAS}:
            row = self._row(conn, "SELECT * FROM aliases WHERE alias_name = ?", alias_name)
            aliases[alias_name] = None if row is None else Alias(*row)
        material_keys = {key_id for kind, key_id, _ in wanted if kind == changelog.MATERIALS}
        previous, stale = self._materials, purged | material_keys
        if stale:
            self._materials = {ref: m for ref, m in previous.items() if ref[0] not in stale}
        materials: dict[str, dict[int, KeyMaterial]] = {key_id: {} for key_id in material_keys}
        for key_id in material_keys:
            for row in conn.execute("SELECT * FROM materials WHERE key_id = ?", (key_id,)):
                materials[key_id][row[1]] = self._unwrap(row, previous)
                self.rows_read += 1
        return Changes(frozenset(purged), keys, aliases, materials, self._read_grants(conn, wanted))

    def _read_grants(
        self, conn: Connection, wanted: list[changelog.Change]
    ) -> dict[str, dict[str, Grant | None]]:
        grant_keys = {name: key_id for kind, key_id, name in wanted if kind == changelog.GRANT}
        grants: dict[str, dict[str, Grant | None]] = {}
        for grant_id, key_id in grant_keys.items():
            grants.setdefault(key_id, {})[grant_id] = None
        ids = sorted(grant_keys)
        for start in range(0, len(ids), IDS_PER_QUERY):
            batch = ids[start : start + IDS_PER_QUERY]
            query = f"SELECT key_id, record FROM grants WHERE grant_id IN ({', '.join('?' * len(batch))})"
            for key_id, record in conn.execute(query, batch):
                grant = grant_from_record(orjson.loads(record))
                grants[key_id][grant.grant_id] = grant
                self.rows_read += 1
        return grants

    def _row(self, conn: Connection, query: str, name: str) -> tuple | None:  # type: ignore[type-arg]
        row: tuple | None = conn.execute(query, (name,)).fetchone()  # type: ignore[type-arg]
        self.rows_read += row is not None
        return row

