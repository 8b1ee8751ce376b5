"""Durability: what a response acknowledged survives ``kill -9`` of every server process, and nothing
secret is written in the clear (key store file, logs)."""

from __future__ import annotations

import base64
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import wrap_key_material


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_everything(server: Any) -> None:
    """SIGKILL the server and every worker process it started, by PID, and wait until they are gone."""
    assert server.process is not None
    workers = _children(server.process.pid)
    server.kill()
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in workers):
        assert time.monotonic() < deadline, "worker processes did not die"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _store_bytes(data_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(data_dir.glob("kms.sqlite3*")))


def _secret_forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), base64.b64encode(secret), base64.b64encode(secret).rstrip(b"=")]


def test_everything_acknowledged_survives_kill_9(fresh_server: Any) -> None:
    server = fresh_server
    kms = server.kms_client()
    context = {"order": "42"}

    key = kms.create_key(Description="durable")["KeyMetadata"]
    key_id = key["KeyId"]
    kms.create_alias(AliasName="alias/durable", TargetKeyId=key_id)
    before_rotation = kms.encrypt(KeyId="alias/durable", Plaintext=b"first", EncryptionContext=context)["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=120)
    after_rotation = kms.encrypt(KeyId=key_id, Plaintext=b"second")["CiphertextBlob"]
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    material_ids = [r["KeyMaterialId"] for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]]

    doomed = kms.create_key()["KeyMetadata"]["KeyId"]
    scheduled = kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    disabled = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled)

    external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(
        KeyId=external, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    material = os.urandom(32)
    imported = kms.import_key_material(
        KeyId=external,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], material, "RSAES_OAEP_SHA_256"),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    under_import = kms.encrypt(KeyId=external, Plaintext=b"imported")["CiphertextBlob"]

    store_before = _store_bytes(server.data_dir)
    kill_everything(server)
    store_after_crash = _store_bytes(server.data_dir)
    server.start()
    kms = server.kms_client()

    assert kms.decrypt(CiphertextBlob=before_rotation, EncryptionContext=context)["Plaintext"] == b"first"
    assert kms.decrypt(CiphertextBlob=after_rotation)["Plaintext"] == b"second"
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)["Plaintext"] == data_key["Plaintext"]
    assert kms.decrypt(CiphertextBlob=under_import)["Plaintext"] == b"imported"
    assert kms.describe_key(KeyId="alias/durable")["KeyMetadata"]["KeyId"] == key_id
    assert [r["KeyMaterialId"] for r in kms.list_key_rotations(KeyId=key_id)["Rotations"]] == material_ids
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 120
    doomed_meta = kms.describe_key(KeyId=doomed)["KeyMetadata"]
    assert doomed_meta["KeyState"] == "PendingDeletion" and doomed_meta["DeletionDate"] == scheduled["DeletionDate"]
    assert kms.describe_key(KeyId=disabled)["KeyMetadata"]["KeyState"] == "Disabled"
    external_meta = kms.describe_key(KeyId=external)["KeyMetadata"]
    assert external_meta["KeyState"] == "Enabled"
    assert external_meta["CurrentKeyMaterialId"] == imported["KeyMaterialId"]
    # the binding to the imported material survives too
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        kms.import_key_material(
            KeyId=external,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )

    # No clear key material in the store, in any of its files, before or after the crash; the
    # root key file is private; neither the imported material nor a data key reaches the log.
    for store in (store_before, store_after_crash, _store_bytes(server.data_dir)):
        assert store
        for form in _secret_forms(material) + _secret_forms(data_key["Plaintext"]):
            assert form not in store
    root_key_file = server.data_dir / "root.key"
    assert stat.S_IMODE(root_key_file.stat().st_mode) == 0o600
    root_secret = base64.b64decode(root_key_file.read_text().strip())
    log = server.log_text().encode()
    assert b"starting" in log
    for form in _secret_forms(material) + _secret_forms(data_key["Plaintext"]) + _secret_forms(root_secret):
        assert form not in log
