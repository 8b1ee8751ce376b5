"""``kill -9`` of the server at a random moment while many clients create keys and aliases,
rotate on demand, import key material, schedule deletions and create grants: after the restart
the store opens, is consistent (every key's materials decrypt what they encrypted, every alias
names an existing key, every grant an existing key), and every acknowledged operation is there."""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import start_server
from tests.kms.helpers import wrap_key_material

from .conftest import kill_while_clients_run

CLIENTS = 6
MOST_OPERATIONS_PER_CLIENT = 200
KILL_AFTER_ACKNOWLEDGED = (20, 60)  # the kill comes once this many (a random count) were acknowledged


@dataclass
class Acknowledged:
    """What the server answered 200 to, per kind."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: set[str] = field(default_factory=set)
    ciphertexts: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    rotations: dict[str, int] = field(default_factory=dict)
    imported: set[str] = field(default_factory=set)
    pending_deletion: set[str] = field(default_factory=set)
    grants: dict[str, str] = field(default_factory=dict)
    count: int = 0

    def note(self) -> None:
        with self.lock:
            self.count += 1


def client_loop(server: Any, n: int, acked: Acknowledged, stop: threading.Event) -> None:
    kms = server.kms_client()
    rng = random.Random(n)
    mine: list[str] = []
    for i in range(MOST_OPERATIONS_PER_CLIENT):
        if stop.is_set():
            return
        try:
            op = rng.choice(["create", "alias", "rotate", "import", "delete", "grant"]) if mine else "create"
            if op == "create":
                key_id = kms.create_key()["KeyMetadata"]["KeyId"]
                plaintext = os.urandom(32)
                ciphertext = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
                with acked.lock:
                    acked.keys.add(key_id)
                    acked.ciphertexts.setdefault(key_id, []).append((plaintext, ciphertext))
                mine.append(key_id)
            elif op == "alias":
                alias = f"alias/fault-{n}-{i}"
                target = rng.choice(mine)
                kms.create_alias(AliasName=alias, TargetKeyId=target)
                with acked.lock:
                    acked.aliases[alias] = target
            elif op == "rotate":
                key_id = rng.choice(mine)
                kms.rotate_key_on_demand(KeyId=key_id)
                plaintext = os.urandom(32)
                ciphertext = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
                with acked.lock:
                    acked.rotations[key_id] = acked.rotations.get(key_id, 0) + 1
                    acked.ciphertexts[key_id].append((plaintext, ciphertext))
            elif op == "import":
                key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
                params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                       WrappingKeySpec="RSA_2048")
                material = os.urandom(32)
                kms.import_key_material(
                    KeyId=key_id, ImportToken=params["ImportToken"],
                    EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], material, "RSAES_OAEP_SHA_256"),
                    ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
                with acked.lock:
                    acked.keys.add(key_id)
                    acked.imported.add(key_id)
            elif op == "delete":
                key_id = mine.pop(rng.randrange(len(mine)))
                kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
                with acked.lock:
                    acked.pending_deletion.add(key_id)
            else:
                key_id = rng.choice(mine)
                grant_id = kms.create_grant(KeyId=key_id, GranteePrincipal=f"arn:aws:iam::111122223333:role/r{n}",
                                            Operations=["Encrypt", "Decrypt"])["GrantId"]
                with acked.lock:
                    acked.grants[grant_id] = key_id
            acked.note()
        except (ClientError, BotoCoreError, OSError):
            if stop.is_set():
                return  # the server is gone: this operation was never acknowledged
            raise


def test_every_acknowledged_key_operation_survives_kill_9_at_a_random_moment(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}")
    server: Any = start_server(tmp_path / "data", "--workers", "2")
    acked = Acknowledged()
    try:
        kill_at = random.Random(seed).randint(*KILL_AFTER_ACKNOWLEDGED)
        kill_while_clients_run(server, lambda n, stop: client_loop(server, n, acked, stop), CLIENTS,
                               lambda failures: acked.count >= kill_at or bool(failures),
                               "operations to be acknowledged")

        server.start()
        kms = server.kms_client()
        with acked.lock:
            pass  # the clients are done: read without racing them
        listed = {k["KeyId"] for k in kms.get_paginator("list_keys").paginate().build_full_result()["Keys"]}
        assert acked.keys <= listed
        for key_id in listed:
            metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            if metadata["KeyState"] == "Enabled":
                ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
                assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"after"
        for key_id, pairs in acked.ciphertexts.items():
            # A deletion the kill cut off before its answer may or may not have happened: unacknowledged.
            state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
            if key_id not in acked.pending_deletion and state != "PendingDeletion":
                for plaintext, ciphertext in pairs:
                    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == plaintext
        for key_id in acked.imported - acked.pending_deletion:
            assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
        for key_id in acked.pending_deletion:
            assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
        for key_id, count in acked.rotations.items():
            rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
            assert len(rotations) >= count
        aliases = {a["AliasName"]: a.get("TargetKeyId")
                   for a in kms.get_paginator("list_aliases").paginate().build_full_result()["Aliases"]}
        for name, target in aliases.items():
            if not name.startswith("alias/aws/"):
                assert target in listed, name
        for name, target in acked.aliases.items():
            assert aliases.get(name) == target
        for key_id in listed:
            for grant in kms.list_grants(KeyId=key_id)["Grants"]:
                assert grant["KeyId"].endswith(key_id)
        for grant_id, key_id in acked.grants.items():
            assert grant_id in {g["GrantId"] for g in kms.list_grants(KeyId=key_id)["Grants"]}
    finally:
        server.stop()
