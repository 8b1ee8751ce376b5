"""Reads and writes of one key-store transaction, in SQL that SQLite and PostgreSQL both run.

The store that opens the transaction (``kmsgate.kms.sqlite_store``, ``kmsgate.kms.pg_store``)
serialises it against every other writer, on every node, before handing it out, and appends
``changed`` to the change log (``kmsgate.kms.changelog``) in the same commit. Key material is
written only wrapped under the root key.
"""

from __future__ import annotations

import orjson

from kmsgate.auth.grants import Grant
from kmsgate.kms import changelog
from kmsgate.kms.changelog import ALIAS, GRANT, KEY, MATERIALS, PURGE
from kmsgate.kms.grant_records import grant_from_record, grant_to_record
from kmsgate.kms.loader import material_from_row
from kmsgate.kms.model import KeyMaterial, KmsKey
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.snapshot import Alias
from kmsgate.kms.sql import Connection


class Transaction:
    """Reads and writes inside one write transaction that no other writer runs beside."""

    def __init__(self, conn: Connection, root_key: RootKey) -> None:
        self._conn = conn
        self._root_key = root_key
        self.changed: set[changelog.Change] = set()  # the change-log rows this transaction adds

    def _note(self, kind: str, key_id: str, name: str = "") -> None:
        self.changed.add((kind, key_id, name))

    def get_key(self, key_id: str) -> KmsKey | None:
        row = self._conn.execute("SELECT record FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else KmsKey.from_record(orjson.loads(row[0]))

    def put_key(self, key: KmsKey) -> None:
        self._conn.execute(
            "INSERT INTO keys (key_id, record) VALUES (?, ?) "
            "ON CONFLICT (key_id) DO UPDATE SET record = excluded.record",
            (key.key_id, orjson.dumps(key.to_record())),
        )
        self._note(KEY, key.key_id)

    def delete_key(self, key_id: str, deleted: float) -> None:
        """Delete a key for good: its metadata, aliases and every version of its material.

        Only the key id and the deletion time remain (no metadata, no material), so that a
        ciphertext made under the key is answered "key does not exist" rather than "invalid".
        """
        self._conn.execute("DELETE FROM materials WHERE key_id = ?", (key_id,))
        self._conn.execute("DELETE FROM aliases WHERE key_id = ?", (key_id,))
        self._conn.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
        self._conn.execute("DELETE FROM grants WHERE key_id = ?", (key_id,))
        self._conn.execute("DELETE FROM key_usage WHERE key_id = ?", (key_id,))
        self._conn.execute(
            "INSERT INTO deleted_keys (key_id, deleted) VALUES (?, ?) "
            "ON CONFLICT (key_id) DO UPDATE SET deleted = excluded.deleted",
            (key_id, deleted),
        )
        self._note(PURGE, key_id)

    def put_material(self, material: KeyMaterial) -> None:
        wrapped = self._root_key.wrap_material(material.key_id, material.version, material.secret)
        self._conn.execute(
            "INSERT INTO materials (key_id, version, material_id, wrapped, created, rotation_type, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, version) DO UPDATE SET "
            "material_id = excluded.material_id, wrapped = excluded.wrapped, created = excluded.created, "
            "rotation_type = excluded.rotation_type, origin = excluded.origin",
            (
                material.key_id,
                material.version,
                material.material_id,
                wrapped,
                material.created,
                material.rotation_type,
                material.origin,
            ),
        )
        self._note(MATERIALS, material.key_id)

    def get_material(self, key_id: str, version: int) -> KeyMaterial | None:
        row = self._conn.execute(
            "SELECT * FROM materials WHERE key_id = ? AND version = ?", (key_id, version)
        ).fetchone()
        return None if row is None else material_from_row(row, self._root_key)

    def delete_materials(self, key_id: str) -> None:
        self._conn.execute("DELETE FROM materials WHERE key_id = ?", (key_id,))
        self._note(MATERIALS, key_id)

    def get_alias(self, alias_name: str) -> Alias | None:
        row = self._conn.execute("SELECT * FROM aliases WHERE alias_name = ?", (alias_name,)).fetchone()
        return None if row is None else Alias(*row)

    def put_alias(self, alias: Alias) -> None:
        self._conn.execute(
            "INSERT INTO aliases (alias_name, key_id, created, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (alias_name) DO UPDATE SET "
            "key_id = excluded.key_id, created = excluded.created, updated = excluded.updated",
            (alias.alias_name, alias.key_id, alias.created, alias.updated),
        )
        self._note(ALIAS, "", alias.alias_name)

    def delete_alias(self, alias_name: str) -> None:
        self._conn.execute("DELETE FROM aliases WHERE alias_name = ?", (alias_name,))
        self._note(ALIAS, "", alias_name)

    def aliases_of(self, key_id: str) -> list[str]:
        rows = self._conn.execute("SELECT alias_name FROM aliases WHERE key_id = ?", (key_id,))
        return [row[0] for row in rows]

    def all_keys(self) -> list[KmsKey]:
        rows = self._conn.execute("SELECT record FROM keys")
        return [KmsKey.from_record(orjson.loads(row[0])) for row in rows]

    def put_grant(self, key_id: str, grant: Grant) -> None:
        self._conn.execute(
            "INSERT INTO grants (grant_id, key_id, record, grantee_principal, name) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (grant_id) DO UPDATE SET key_id = excluded.key_id, record = excluded.record, "
            "grantee_principal = excluded.grantee_principal, name = excluded.name",
            (grant.grant_id, key_id, orjson.dumps(grant_to_record(grant)), grant.grantee_principal, grant.name),
        )
        self._note(GRANT, key_id, grant.grant_id)

    def get_grant(self, grant_id: str) -> Grant | None:
        row = self._conn.execute("SELECT record FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        return None if row is None else grant_from_record(orjson.loads(row[0]))

    def grants_of(self, key_id: str) -> list[Grant]:
        rows = self._conn.execute("SELECT record FROM grants WHERE key_id = ?", (key_id,))
        return [grant_from_record(orjson.loads(row[0])) for row in rows]

    def grants_named(self, key_id: str, name: str) -> list[Grant]:
        rows = self._conn.execute("SELECT record FROM grants WHERE key_id = ? AND name = ?", (key_id, name))
        return [grant_from_record(orjson.loads(row[0])) for row in rows]

    def count_grants(self, key_id: str, grantee_principal: str | None = None) -> int:
        """A key's grants, or only those for one grantee principal (counted in the index)."""
        if grantee_principal is None:
            row = self._conn.execute("SELECT COUNT(*) FROM grants WHERE key_id = ?", (key_id,)).fetchone()
        else:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM grants WHERE key_id = ? AND grantee_principal = ?", (key_id, grantee_principal)
            ).fetchone()
        return int(row[0])

    def delete_grant(self, grant_id: str) -> None:
        row = self._conn.execute("SELECT key_id FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if row is None:
            return
        self._conn.execute("DELETE FROM grants WHERE grant_id = ?", (grant_id,))
        self._note(GRANT, row[0], grant_id)

    def record_usage(self, key_id: str, used: float, operation: str) -> None:
        """Keep the latest use of a live key (several processes flush; the newest wins)."""
        self._conn.execute(
            "INSERT INTO key_usage (key_id, used, operation) SELECT ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM keys WHERE key_id = ?) "
            "ON CONFLICT (key_id) DO UPDATE SET used = excluded.used, operation = excluded.operation "
            "WHERE excluded.used > key_usage.used",
            (key_id, used, operation, key_id),
        )
