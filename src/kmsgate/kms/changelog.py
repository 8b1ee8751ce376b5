"""The key store's change log: which served entities each commit changed, in commit order.

Every write transaction that changes what the service serves from memory (keys, aliases,
materials, grants) also appends one row per changed entity to the ``changes`` table, in the same
commit::

    seq      commit-ordered, never reused: SQLite's AUTOINCREMENT (one writer at a time), PostgreSQL's
             BIGSERIAL taken under the store's write lock, which is held until the commit is visible
    kind     "key" | "purge" (key deleted for good, with its aliases, materials and grants) |
             "materials" (any version of a key's material) | "alias" | "grant"
    key_id   the key concerned ("" for an alias: an alias may move between keys)
    name     the alias name or grant id ("" otherwise)
    changed  POSIX seconds, for pruning

A reader holding a view built at sequence ``n`` reads the rows after ``n``, then the current row
of each entity they name (``kmsgate.kms.loader``). Rows older than ``RETENTION_SECONDS`` are pruned
whenever the sequence crosses a multiple of ``PRUNE_EVERY``; the ``settings`` row
``changes_pruned_through`` says how far, and a reader whose view is older loads everything. The
log holds ids only, never a secret.

The PostgreSQL store keeps the same table and ``NOTIFY``s the new sequence number on commit
(``kmsgate.kms.pg_listener``) where SQLite readers poll ``PRAGMA data_version``. The statements
here run on both (``kmsgate.kms.sql``).
"""

from __future__ import annotations

from collections.abc import Iterable

from kmsgate.kms.sql import Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key_id TEXT NOT NULL,
    name TEXT NOT NULL,
    changed REAL NOT NULL
);
"""
PRUNED_THROUGH = "changes_pruned_through"  # the settings row
RETENTION_SECONDS = 3600.0  # a view idle for longer than this reloads in full
PRUNE_EVERY = 1024  # sequence numbers between pruning passes

KEY, PURGE, MATERIALS, ALIAS, GRANT = "key", "purge", "materials", "alias", "grant"

Change = tuple[str, str, str]  # (kind, key id, name)


def append(conn: Connection, changed: Iterable[Change], now: float) -> None:
    """Log ``changed`` inside the caller's write transaction, pruning when a pass falls due."""
    rows = [(kind, key_id, name, now) for kind, key_id, name in sorted(set(changed))]
    if not rows:
        return
    before = last_seq(conn)
    conn.executemany("INSERT INTO changes (kind, key_id, name, changed) VALUES (?, ?, ?, ?)", rows)
    if (before + len(rows)) // PRUNE_EVERY != before // PRUNE_EVERY:
        prune(conn, now - RETENTION_SECONDS)


def prune(conn: Connection, older_than: float) -> None:
    """Drop the rows written before ``older_than`` (inside the caller's write transaction)."""
    row = conn.execute("SELECT MAX(seq) FROM changes WHERE changed < ?", (older_than,)).fetchone()
    if row[0] is None:
        return
    through = max(int(row[0]), pruned_through(conn))
    conn.execute("DELETE FROM changes WHERE seq <= ?", (through,))
    conn.execute(
        "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (PRUNED_THROUGH, str(through)),
    )


def last_seq(conn: Connection) -> int:
    """The last sequence number committed (0 before the first change).

    Sequence numbers are never reused and pruning keeps the newest row unless every row is old,
    when ``changes_pruned_through`` names the last one.
    """
    row = conn.execute("SELECT MAX(seq) FROM changes").fetchone()
    return max(0 if row[0] is None else int(row[0]), pruned_through(conn))


def pruned_through(conn: Connection) -> int:
    """Rows up to this sequence number may be gone."""
    row = conn.execute("SELECT value FROM settings WHERE name = ?", (PRUNED_THROUGH,)).fetchone()
    return 0 if row is None else int(row[0])


def read_since(conn: Connection, seq: int) -> tuple[int, list[Change]]:
    """The changes after ``seq`` and the last sequence number among them (``seq`` when none)."""
    rows = conn.execute("SELECT seq, kind, key_id, name FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
    if not rows:
        return seq, []
    return int(rows[-1][0]), [(kind, key_id, name) for _, kind, key_id, name in rows]
