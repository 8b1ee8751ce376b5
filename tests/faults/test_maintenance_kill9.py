"""``kill -9`` of the server while its key maintenance runs: scheduled rotations and deletions
made due in the store (their dates moved into the past while the server was stopped, the store's
own records being plain JSON) run at start, and the server is killed at random moments while
they may run. After the restart that lets them finish, each due key rotated exactly once, each
due deletion happened with its aliases and grants, and every key's materials still decrypt."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from tests.conftest import start_server

from .conftest import wait_until

ROTATING_KEYS = 40
DELETED_KEYS = 15
KILLS = 3
MOST_KILL_DELAY_S = 3.0


def make_due(store: Path) -> None:
    """Move every scheduled rotation and deletion into the past, in the store's own records."""
    with closing(sqlite3.connect(store)) as db, db:
        for key_id, record in db.execute("SELECT key_id, record FROM keys").fetchall():
            fields = orjson.loads(record)
            for name in ("next_rotation_date", "deletion_date"):
                if fields.get(name) is not None:
                    fields[name] = 1.0
            db.execute("UPDATE keys SET record = ? WHERE key_id = ?", (orjson.dumps(fields), key_id))


def test_due_rotations_and_deletions_cut_by_kill_9_happen_once_and_whole(tmp_path: Path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    data_dir = tmp_path / "data"
    server: Any = start_server(data_dir, "--workers", "2")
    try:
        kms = server.kms_client()
        samples: dict[str, bytes] = {}
        for _ in range(ROTATING_KEYS):
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
            samples[key_id] = kms.encrypt(KeyId=key_id, Plaintext=key_id.encode())["CiphertextBlob"]
        doomed: dict[str, str] = {}
        for i in range(DELETED_KEYS):
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/doomed-{i}", TargetKeyId=key_id)
            kms.create_grant(KeyId=key_id, GranteePrincipal="arn:aws:iam::111122223333:role/r", Operations=["Decrypt"])
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
            doomed[key_id] = f"alias/doomed-{i}"
        server.stop()
        make_due(data_dir / "kms.sqlite3")

        command = [sys.executable, "-m", "kmsgate", "serve", "--host", "127.0.0.1", "--port", str(server.port),
                   "--data-dir", str(data_dir), "--region", server.region, "--account-id", server.account_id,
                   "--workers", "2", "--s3-port", "0"]
        for _ in range(KILLS):
            process = subprocess.Popen(command, env=server.env(), start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + rng.uniform(0.0, MOST_KILL_DELAY_S)  # the fault's random moment
            wait_until(lambda: time.monotonic() >= deadline or process.poll() is not None, "the moment to kill")
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

        server.start()
        kms = server.kms_client()

        def maintained() -> bool:
            return all(kms.list_key_rotations(KeyId=k)["Rotations"] for k in samples)

        wait_until(maintained, "the due rotations to run", timeout_s=90)
        for key_id, ciphertext in samples.items():
            rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
            assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"], key_id
            assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == key_id.encode()
            fresh = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=fresh)["Plaintext"] == b"after"
        listed = {k["KeyId"] for k in kms.get_paginator("list_keys").paginate().build_full_result()["Keys"]}
        assert listed.isdisjoint(doomed) and set(samples) <= listed
        aliases = kms.get_paginator("list_aliases").paginate().build_full_result()["Aliases"]
        assert not {a["AliasName"] for a in aliases} & set(doomed.values())
        assert all(a.get("TargetKeyId") in listed for a in aliases if "TargetKeyId" in a)
        for key_id in doomed:
            with pytest.raises(ClientError) as gone:
                kms.list_grants(KeyId=key_id)
            assert gone.value.response["Error"]["Code"] == "NotFoundException"
    finally:
        server.stop()
