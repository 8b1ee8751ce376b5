"""Rotating a key store's root key: every wrapped value rewrapped under a new root key, crash-safe.

The store is in one of three states, told by its settings (``kmsgate.kms.rootkey_state``):

- idle: ``root_key_check`` names the root key every wrapped value is under;
- staging (``root_key_next_check`` set): ``stage`` writes, in batches of ``BATCH_ROWS`` rows per
  transaction, each value rewrapped under the new root key into the working table
  ``root_key_rewraps`` (kind, ref, source = the wrap it was made from, wrapped). The live rows
  are untouched, so the store still opens with the current root key and only with it;
- switched (``root_key_rotation_cleanup`` set): ``switch`` ran, in ONE transaction under the
  store's write lock: it proved every live wrapped value opens under the current root key and
  its staged wrap opens to the same bytes under the new one (rewrapping on the spot any value
  written or changed since it was staged, or staged under another new key), wrote the new wraps
  into the live rows, and set the check value to the new root key's. From its commit the store
  opens with the new root key and only with it. ``cleanup`` then drops the working table.

A ``kill -9`` at any point leaves one of these states (each step is one transaction), so the
store opens with exactly one of the two root keys, and running the rotation again resumes: it
keeps staged wraps made from the live value under the same new key and redoes the rest; staging
towards another new key starts again.

Import tokens are not in the store (clients hold them): the switch keeps the retired root key's
token-sealing key, wrapped under the new root key, for ``IMPORT_TOKEN_LIFETIME_SECONDS``, so a
token handed out before the rotation is still accepted (``kmsgate.kms.rootkey``). Every other
value wrapped under the root key is a ``WrappedKind`` listed in ``WRAPPED_KINDS``: a new kind of
wrapped value is added there.

Writers running beside a rotation are safe: a value written under the current root key while
staging is caught by the switch; after the switch every write checks the store's check value
first (``rootkey_state.require_active``), so a node still on the retired root key writes nothing.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kmsgate.kms import rootkey_state
from kmsgate.kms.importing import IMPORT_TOKEN_LIFETIME_SECONDS
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.rootkey_state import (
    RETIRED_TOKEN_KEYS,
    ROOT_KEY_CHECK,
    ROOT_KEY_NEXT_CHECK,
    ROOT_KEY_PREVIOUS_CHECK,
    ROOT_KEY_ROTATION_CLEANUP,
)
from kmsgate.kms.exclusive_write import exclusive_write
from kmsgate.kms.sql import Connection
from kmsgate.kms.stores import KeyStoreLocation

BATCH_ROWS = 500  # values rewrapped per staging transaction
WORK_TABLE = "root_key_rewraps"

# Named points where a test may have the rotation killed (see ``kmsgate.store_cli``), in order.
STAGING = "staging"  # after the first staged batch committed
STAGED = "staged"  # every value staged, before the switch
SWITCHING = "switching"  # inside the switch transaction, before it commits
SWITCHED = "switched"  # the switch committed, before key files and clean-up

IDLE = "idle"
STAGING_STATE = "staging"
SWITCHED_STATE = "switched"

Ref = tuple[str, int]  # what a wrapped value is bound to: (key id, version) for material
StopAt = Callable[[str], None]


class RotationError(Exception):
    """The rotation cannot go ahead; the store is as it was (or as a resumable earlier run left it)."""


@dataclass(frozen=True, slots=True)
class WrappedKind:
    """One column of values wrapped under the root key, and how to read, rewrap and write them."""

    kind: str
    table: str
    column: str

    def page(self, conn: Connection, after: Ref | None, limit: int) -> list[tuple[Ref, bytes]]:
        if after is None:
            rows = conn.execute(
                f"SELECT key_id, version, {self.column} FROM {self.table} ORDER BY key_id, version LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT key_id, version, {self.column} FROM {self.table} "
                "WHERE key_id > ? OR (key_id = ? AND version > ?) ORDER BY key_id, version LIMIT ?",
                (after[0], after[0], after[1], limit),
            ).fetchall()
        return [((str(row[0]), int(row[1])), bytes(row[2])) for row in rows]

    def all(self, conn: Connection) -> list[tuple[Ref, bytes]]:
        rows = conn.execute(f"SELECT key_id, version, {self.column} FROM {self.table}").fetchall()
        return [((str(row[0]), int(row[1])), bytes(row[2])) for row in rows]

    def write(self, conn: Connection, rows: list[tuple[Ref, bytes]]) -> None:
        conn.executemany(
            f"UPDATE {self.table} SET {self.column} = ? WHERE key_id = ? AND version = ?",
            [(wrapped, ref[0], ref[1]) for ref, wrapped in rows],
        )

    def unwrap(self, root_key: RootKey, ref: Ref, wrapped: bytes) -> bytes:
        return root_key.unwrap_material(ref[0], ref[1], wrapped)

    def wrap(self, root_key: RootKey, ref: Ref, secret: bytes) -> bytes:
        return root_key.wrap_material(ref[0], ref[1], secret)


MATERIALS = WrappedKind("material", "materials", "wrapped")
WRAPPED_KINDS: tuple[WrappedKind, ...] = (MATERIALS,)


@dataclass(frozen=True, slots=True)
class SwitchReport:
    rewrapped: int  # live values now under the new root key
    caught_up: int  # of which rewrapped during the switch (written or changed after staging)


class Rotation:
    """The rotation's steps on one key store (blocking; nodes should be stopped, see ``docs/operations.md``)."""

    def __init__(self, location: KeyStoreLocation, stop_at: StopAt = lambda point: None) -> None:
        self._location = location
        self._stop_at = stop_at

    # -- where the store stands ---------------------------------------------------------

    def settings(self) -> rootkey_state.Settings:
        with self._transaction() as conn:
            return rootkey_state.read_settings(conn)

    @staticmethod
    def state(settings: rootkey_state.Settings) -> str:
        if settings.get(ROOT_KEY_ROTATION_CLEANUP):
            return SWITCHED_STATE
        if settings.get(ROOT_KEY_NEXT_CHECK):
            return STAGING_STATE
        return IDLE

    def require_opens(self, root_key: RootKey, source: str) -> None:
        """Refuse, changing nothing, unless the store opens with ``root_key`` now (a store without a check
        value yet, written before there were check values, records it)."""
        with self._transaction() as conn:
            try:
                rootkey_state.settle(conn, root_key)
            except RootKeyError as exc:
                raise RotationError(
                    f"the current root key ({source}) does not open this key store ({exc}); nothing was changed"
                ) from None

    # -- the steps ------------------------------------------------------------------------

    def begin(self, current: RootKey, new: RootKey) -> bool:
        """Mark the store as staging towards ``new``; returns whether earlier staging towards it is resumed."""
        with self._transaction() as conn:
            settings = rootkey_state.read_settings(conn)
            self._require_current(settings, current)
            if current.matches_check(new.check_value()):
                raise RotationError("the new root key is the current one")
            self._create_work_table(conn)
            if new.matches_check(settings.get(ROOT_KEY_NEXT_CHECK, "")):
                return True
            conn.execute(f"DELETE FROM {WORK_TABLE}")
            rootkey_state.put_setting(conn, ROOT_KEY_NEXT_CHECK, new.check_value())
            return False

    def stage(self, current: RootKey, new: RootKey, batch_rows: int = BATCH_ROWS) -> int:
        """Stage a wrap under ``new`` of every value not staged from its live wrap yet; returns how many were."""
        staged_now = 0
        for kind in WRAPPED_KINDS:
            with self._transaction() as conn:
                staged = self._staged(conn, kind)
            after: Ref | None = None
            while True:
                with self._transaction() as conn:
                    if not new.matches_check(rootkey_state.read_settings(conn).get(ROOT_KEY_NEXT_CHECK, "")):
                        raise RotationError("another rotation took over this key store; nothing more was staged")
                    page = kind.page(conn, after, batch_rows)
                    rows = [
                        (kind.kind, _ref_text(ref), wrapped, kind.wrap(new, ref, kind.unwrap(current, ref, wrapped)))
                        for ref, wrapped in page
                        if staged.get(ref) != wrapped
                    ]
                    conn.executemany(
                        f"INSERT INTO {WORK_TABLE} (kind, ref, source, wrapped) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (kind, ref) DO UPDATE SET source = excluded.source, wrapped = excluded.wrapped",
                        rows,
                    )
                if not page:
                    break
                after = page[-1][0]
                if rows:
                    staged_now += len(rows)
                    self._stop_at(STAGING)
        self._stop_at(STAGED)
        return staged_now

    def switch(self, current: RootKey, new: RootKey) -> SwitchReport:
        """In one transaction: every live value under ``new``, proved; then the check value names ``new``."""
        now = time.time()
        with self._transaction() as conn:
            settings = rootkey_state.read_settings(conn)
            self._require_current(settings, current)
            if not new.matches_check(settings.get(ROOT_KEY_NEXT_CHECK, "")):
                raise RotationError("this key store is not staging a rotation to that new root key")
            rewrapped = caught_up = 0
            for kind in WRAPPED_KINDS:
                staged = self._staged_wraps(conn, kind)
                live = kind.all(conn)
                switched = []
                for ref, wrapped in live:
                    secret = kind.unwrap(current, ref, wrapped)
                    source, staged_wrap = staged.get(ref, (b"", b""))
                    if source != wrapped or not _opens_to(kind, new, ref, staged_wrap, secret):
                        staged_wrap = kind.wrap(new, ref, secret)
                        caught_up += 1
                    switched.append((ref, staged_wrap))
                kind.write(conn, switched)
                rewrapped += len(switched)
            rootkey_state.put_setting(
                conn,
                RETIRED_TOKEN_KEYS,
                rootkey_state.rewrap_retired_token_keys(settings, current, new, now, now + IMPORT_TOKEN_LIFETIME_SECONDS),
            )
            rootkey_state.put_setting(conn, ROOT_KEY_PREVIOUS_CHECK, current.check_value())
            rootkey_state.put_setting(conn, ROOT_KEY_CHECK, new.check_value())
            rootkey_state.put_setting(conn, ROOT_KEY_ROTATION_CLEANUP, "1")
            rootkey_state.delete_setting(conn, ROOT_KEY_NEXT_CHECK)
            self._stop_at(SWITCHING)
        self._stop_at(SWITCHED)
        return SwitchReport(rewrapped=rewrapped, caught_up=caught_up)

    def cleanup(self) -> None:
        """Drop the working table (the staged copies of the old wraps' replacements) once switched."""
        with self._transaction() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {WORK_TABLE}")
            rootkey_state.delete_setting(conn, ROOT_KEY_ROTATION_CLEANUP)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _require_current(settings: rootkey_state.Settings, current: RootKey) -> None:
        if Rotation.state(settings) == SWITCHED_STATE:
            raise RotationError("a switched rotation awaits clean-up; run 'kmsgate root-key rotate' again to finish it")
        if not current.matches_check(settings.get(ROOT_KEY_CHECK, "")):
            raise RotationError(f"the current root key does not open this key store: {rootkey_state.refusal(settings, current)}")

    def _create_work_table(self, conn: Connection) -> None:
        blob = "BLOB" if self._location.sqlite_path is not None else "BYTEA"
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {WORK_TABLE} (kind TEXT NOT NULL, ref TEXT NOT NULL, "
            f"source {blob} NOT NULL, wrapped {blob} NOT NULL, PRIMARY KEY (kind, ref))"
        )

    @staticmethod
    def _staged(conn: Connection, kind: WrappedKind) -> dict[Ref, bytes]:
        return {ref: source for ref, (source, _wrapped) in Rotation._staged_wraps(conn, kind).items()}

    @staticmethod
    def _staged_wraps(conn: Connection, kind: WrappedKind) -> dict[Ref, tuple[bytes, bytes]]:
        rows = conn.execute(f"SELECT ref, source, wrapped FROM {WORK_TABLE} WHERE kind = ?", (kind.kind,)).fetchall()
        return {_ref_parse(str(row[0])): (bytes(row[1]), bytes(row[2])) for row in rows}

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One write transaction that no other writer runs beside (as the stores' own writes)."""
        location = self._location
        if location.sqlite_path is not None and not location.sqlite_path.is_file():
            raise RotationError(f"{location.describe()}: no such key store")
        with exclusive_write(location, create=False) as conn:
            yield conn


def _opens_to(kind: WrappedKind, root_key: RootKey, ref: Ref, wrapped: bytes, secret: bytes) -> bool:
    try:
        return hmac.compare_digest(kind.unwrap(root_key, ref, wrapped), secret)
    except RootKeyError:
        return False


def _ref_text(ref: Ref) -> str:
    return f"{ref[0]}/{ref[1]}"


def _ref_parse(text: str) -> Ref:
    key_id, _, version = text.rpartition("/")
    return key_id, int(version)
