"""``kill -9`` of the server at a random moment while many clients import key material into
EXTERNAL keys (CreateKey, GetParametersForImport, ImportKeyMaterial, each with fresh random
material), killed while at least one import is on the wire. After the restart:

* every acknowledged import is there: its key is Enabled, a ciphertext the server made before
  the kill still decrypts, and the material is the one imported — a ciphertext the server makes
  now opens, in the test, with the test's own copy of the material (``kmsgate.kms.blob``);
* every unacknowledged import is whole or absent: its key is Enabled with exactly the material
  sent (checked the same way), or PendingImport, refusing Encrypt, and a new import into it works;
* the store is consistent: every listed key describes, and every Enabled one round-trips."""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from kmsgate.kms.blob import open_blob
from kmsgate.kms.context import encode_context
from tests.conftest import start_server
from tests.kms.helpers import wrap_key_material

from .conftest import kill_while_clients_run

CLIENTS = 6
MOST_IMPORTS_PER_CLIENT = 60
KILL_AFTER_ACKNOWLEDGED = (8, 30)  # the kill comes once this many imports (a random count) were acknowledged
CONTEXT = {"purpose": "import-kill-9"}
WRAPPING = "RSAES_OAEP_SHA_256"


@dataclass
class Imports:
    """What the clients sent and what the server acknowledged, per key."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: set[str] = field(default_factory=set)
    sent: dict[str, bytes] = field(default_factory=dict)  # key id -> material of an ImportKeyMaterial sent
    acknowledged: dict[str, bytes] = field(default_factory=dict)
    before_kill: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # key id -> (plaintext, ciphertext)
    on_the_wire: int = 0


def import_loop(server: Any, n: int, imports: Imports, stop: threading.Event) -> None:
    kms = server.kms_client()
    for _ in range(MOST_IMPORTS_PER_CLIENT):
        if stop.is_set():
            return
        try:
            key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
            with imports.lock:
                imports.created.add(key_id)
            params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=WRAPPING, WrappingKeySpec="RSA_2048")
            material = os.urandom(32)
            wrapped = wrap_key_material(params["PublicKey"], material, WRAPPING)
            with imports.lock:
                imports.sent[key_id] = material
                imports.on_the_wire += 1
            try:
                kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                                        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
            finally:
                with imports.lock:
                    imports.on_the_wire -= 1
            with imports.lock:
                imports.acknowledged[key_id] = material
            plaintext = os.urandom(32)
            ciphertext = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=CONTEXT)["CiphertextBlob"]
            with imports.lock:
                imports.before_kill[key_id] = (plaintext, ciphertext)
        except (ClientError, BotoCoreError, OSError):
            if stop.is_set():
                return  # the server is gone: this step was never acknowledged
            raise


def assert_material_is(kms: Any, key_id: str, material: bytes) -> None:
    """The server's material for ``key_id`` is ``material``: what it encrypts now opens with it."""
    plaintext = os.urandom(32)
    blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=CONTEXT)["CiphertextBlob"]
    assert open_blob(material, blob, encode_context(CONTEXT)) == plaintext, key_id
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)["Plaintext"] == plaintext


def test_every_acknowledged_import_survives_kill_9_and_an_unacknowledged_one_is_whole_or_absent(
        tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"seed {seed}")
    server: Any = start_server(tmp_path / "data", "--workers", "2")
    imports = Imports()
    try:
        kill_at = random.Random(seed).randint(*KILL_AFTER_ACKNOWLEDGED)

        def time_to_kill(failures: list[BaseException]) -> bool:
            with imports.lock:
                return bool(failures) or (len(imports.acknowledged) >= kill_at and imports.on_the_wire > 0)

        kill_while_clients_run(server, lambda n, stop: import_loop(server, n, imports, stop), CLIENTS, time_to_kill,
                               "imports to be acknowledged, with one on the wire")

        server.start()
        kms = server.kms_client()
        with imports.lock:
            pass  # the clients are done: read without racing them
        listed = {k["KeyId"] for k in kms.get_paginator("list_keys").paginate().build_full_result()["Keys"]}
        assert set(imports.acknowledged) <= listed

        for key_id, material in imports.acknowledged.items():
            assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled", key_id
            assert_material_is(kms, key_id, material)
            if key_id in imports.before_kill:
                plaintext, ciphertext = imports.before_kill[key_id]
                assert kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=CONTEXT)["Plaintext"] == plaintext
                assert open_blob(material, ciphertext, encode_context(CONTEXT)) == plaintext

        unacknowledged = set(imports.sent) - set(imports.acknowledged)
        outcomes = {}
        for key_id in unacknowledged | (imports.created - set(imports.sent)):
            if key_id not in listed:  # a CreateKey the kill cut off before it was kept
                continue
            state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
            outcomes[key_id] = state
            if state == "Enabled":
                assert key_id in imports.sent, key_id  # no material appears without an import
                assert_material_is(kms, key_id, imports.sent[key_id])
                continue
            assert state == "PendingImport", (key_id, state)
            with pytest.raises(ClientError) as refused:
                kms.encrypt(KeyId=key_id, Plaintext=b"no material")
            assert refused.value.response["Error"]["Code"] == "KMSInvalidStateException"
            params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=WRAPPING, WrappingKeySpec="RSA_2048")
            material = os.urandom(32)
            kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                                    EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], material, WRAPPING),
                                    ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
            assert_material_is(kms, key_id, material)
        print(f"acknowledged {len(imports.acknowledged)}, unacknowledged outcomes {sorted(outcomes.values())}")

        for key_id in listed:
            metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            if metadata["KeyState"] == "Enabled":
                ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
                assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"after"
    finally:
        server.stop()
