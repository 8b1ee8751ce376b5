"""The key store opens a database written by an earlier kmsgate: grants gain their grantee and name
columns, filled from the stored records, and are counted and found through them; the root key's
check value is recorded, and another root key is refused."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from kmsgate.auth.grants import new_grant
from kmsgate.kms.grant_records import grant_to_record
from kmsgate.kms.model import KeyMaterial
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.sqlite_store import DB_FILENAME, SqliteKeyStore

from .helpers import ACCOUNT_ID

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/{KEY_ID}"
BOB = f"arn:aws:iam::{ACCOUNT_ID}:user/bob"
CAROL = f"arn:aws:iam::{ACCOUNT_ID}:user/carol"


def test_grants_stored_before_the_grantee_and_name_columns_are_counted_after_opening(tmp_path: Path) -> None:
    grants = [
        new_grant(key_arn=KEY_ARN, grantee_principal=BOB, operations=["Encrypt"], account_id=ACCOUNT_ID, now=1.0,
                  name="app"),
        new_grant(key_arn=KEY_ARN, grantee_principal=BOB, operations=["Decrypt"], account_id=ACCOUNT_ID, now=2.0),
        new_grant(key_arn=KEY_ARN, grantee_principal=CAROL, operations=["Decrypt"], account_id=ACCOUNT_ID, now=3.0),
    ]
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:  # the grants table as kmsgate wrote it before
        conn.execute("CREATE TABLE grants (grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, record BLOB NOT NULL)")
        conn.executemany(
            "INSERT INTO grants VALUES (?, ?, ?)",
            [(grant.grant_id, KEY_ID, orjson.dumps(grant_to_record(grant))) for grant in grants],
        )
    conn.close()
    root_key = RootKey(os.urandom(32))
    store = SqliteKeyStore(tmp_path, root_key)
    try:
        counts = store.mutate(lambda tx: (tx.count_grants(KEY_ID), tx.count_grants(KEY_ID, BOB),
                                          tx.count_grants(KEY_ID, CAROL)))
        assert counts == (3, 2, 1)
        assert store.mutate(lambda tx: tx.grants_named(KEY_ID, "app")) == [grants[0]]
        assert {grant.grant_id for grant in store.load().snapshot.grants[KEY_ID]} == {g.grant_id for g in grants}
    finally:
        store.close()
    reopened = SqliteKeyStore(tmp_path, root_key)  # a second opening finds the columns in place
    reopened.close()


def test_a_sqlite_store_refuses_a_root_key_other_than_the_one_it_was_created_with(tmp_path: Path) -> None:
    SqliteKeyStore(tmp_path, RootKey(os.urandom(32))).close()  # no material yet: only the check value tells

    with pytest.raises(RootKeyError, match="not the one this key store was created with"):
        SqliteKeyStore(tmp_path, RootKey(os.urandom(32)))


def test_a_sqlite_store_from_before_check_values_records_only_a_root_key_that_opens_its_material(
    tmp_path: Path,
) -> None:
    root_key = RootKey(os.urandom(32))
    store = SqliteKeyStore(tmp_path, root_key)
    store.mutate(lambda tx: tx.put_material(
        KeyMaterial(key_id=KEY_ID, version=1, material_id="0" * 64, secret=os.urandom(32), created=1.0,
                    rotation_type=None)
    ))
    store.close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:  # as a kmsgate without check values left it
        conn.execute("DELETE FROM settings WHERE name = 'root_key_check'")
    conn.close()

    with pytest.raises(RootKeyError, match="not the one this key store was created with"):
        SqliteKeyStore(tmp_path, RootKey(os.urandom(32)))
    SqliteKeyStore(tmp_path, root_key).close()
    with pytest.raises(RootKeyError):
        SqliteKeyStore(tmp_path, RootKey(os.urandom(32)))
