"""docs/operations.md, "Backup and restore": its backup commands, run as written against a live
kmsgate, and its restore commands into a fresh data dir give a kmsgate that decrypts what was
encrypted before the backup (KMS Decrypt) and serves the objects stored before it."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KmsgateServer, start_server
from tests.deploy.conftest import DOCS, request

MARKER = "<!-- tests/deploy/test_backup_restore.py runs this block -->"


def guide_blocks() -> list[str]:
    """The shell blocks the guide marks as run by this test: the backup, then the restore."""
    guide = (DOCS / "operations.md").read_text()
    return re.findall(re.escape(MARKER) + r"\n```sh\n(.*?)```", guide, flags=re.S)


def run_block(block: str, **env: str) -> None:
    result = subprocess.run(["bash", "-c", block], env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def root_key_file(tmp_path: Path) -> Path:
    """The root key, kept apart from the data dir as the guide says."""
    path = tmp_path / "escrow" / "root.key"
    path.parent.mkdir()
    path.write_text(base64.b64encode(os.urandom(32)).decode())
    path.chmod(0o600)
    return path


def test_the_guide_has_a_backup_and_a_restore_block() -> None:
    backup, restore = guide_blocks()
    assert "backup" in backup and "cp -a" in restore


def test_a_data_dir_backed_up_live_and_restored_decrypts_what_was_made_before(
    tmp_path: Path, root_key_file: Path
) -> None:
    backup_block, restore_block = guide_blocks()
    live = start_server(tmp_path / "live-data", "--root-key-file", str(root_key_file))
    try:
        kms = live.kms_client()
        key_id = kms.create_key(Description="before the backup")["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"made before", EncryptionContext={"app": "ops"})["CiphertextBlob"]
        assert request(live, "PUT", "/v1/objects/reports/q3", b"q3 report " * 1000)[0] == 201
        # While it serves, its databases in WAL mode with their -wal files in use:
        assert (live.data_dir / "kms.sqlite3-wal").stat().st_size > 0
        assert (live.data_dir / "objects" / "catalog.sqlite3-wal").stat().st_size > 0
        backup = tmp_path / "backup"
        run_block(backup_block, DATA=str(live.data_dir), BACKUP=str(backup), PYTHON=sys.executable)
        assert request(live, "PUT", "/v1/objects/reports/after", b"after the backup")[0] == 201
    finally:
        live.stop()
    assert not (backup / "root.key").exists() and not list(backup.rglob("*.sqlite3-wal"))

    restored_dir = tmp_path / "restored-data"
    run_block(restore_block, DATA=str(restored_dir), BACKUP=str(backup))
    restored = start_server(restored_dir, "--root-key-file", str(root_key_file))
    try:
        kms = restored.kms_client()
        decrypted = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "ops"})
        assert (decrypted["Plaintext"], decrypted["KeyId"].endswith(key_id)) == (b"made before", True)
        assert request(restored, "GET", "/v1/objects/reports/q3") == (200, b"q3 report " * 1000)
        assert request(restored, "GET", "/v1/objects/reports/after")[0] == 404
    finally:
        restored.stop()


def test_a_restored_data_dir_is_refused_with_another_root_key(tmp_path: Path, root_key_file: Path) -> None:
    backup_block, restore_block = guide_blocks()
    live = start_server(tmp_path / "live-data", "--root-key-file", str(root_key_file))
    try:
        live.kms_client().create_key(Description="wrapped under the first root key")
        run_block(backup_block, DATA=str(live.data_dir), BACKUP=str(tmp_path / "backup"), PYTHON=sys.executable)
    finally:
        live.stop()
    restored_dir = tmp_path / "restored-data"
    run_block(restore_block, DATA=str(restored_dir), BACKUP=str(tmp_path / "backup"))
    other_key = tmp_path / "other.key"
    other_key.write_text(base64.b64encode(os.urandom(32)).decode())
    other_key.chmod(0o600)
    server = KmsgateServer(data_dir=restored_dir)
    result = subprocess.run(
        [sys.executable, "-m", "kmsgate", "serve", "--host", "127.0.0.1", "--port", str(server.port),
         "--s3-port", "0", "--workers", "1", "--data-dir", str(restored_dir), "--root-key-file", str(other_key)],
        env=server.env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "the root key is not the one this key store was created with" in result.stderr
    assert "Traceback" not in result.stderr
