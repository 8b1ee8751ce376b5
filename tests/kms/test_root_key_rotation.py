"""``kmsgate root-key rotate`` end to end, on SQLite and on PostgreSQL: every key decrypts through a real
server with the new root key, the old one is refused, and a ``kill -9`` at each named point of the
rotation leaves a store that opens with exactly one of the two keys and a re-run that finishes."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kmsgate.core.principal import account_root
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.rootkey_source import read_root_key_file
from kmsgate.kms.service import open_service
from kmsgate.kms.sqlite_store import DB_FILENAME
from tests.conftest import KmsgateServer, start_server

from .helpers import ACCOUNT_ID, REGION, wrap_key_material

ALGORITHM = "RSAES_OAEP_SHA_256"


@dataclass
class AsymmetricKeys:
    """An RSA key with a ciphertext, an ECC signing key with its public key, an HMAC key with a MAC."""

    rsa_key_id: str
    rsa_ciphertext: bytes
    ecc_key_id: str
    ecc_public_key: bytes
    hmac_key_id: str
    mac: bytes


@dataclass
class World:
    """What was made through the server before the rotation."""

    data_dir: Path
    key_store: str | None
    ciphertexts: dict[bytes, bytes]  # plaintext -> ciphertext blob
    pending_key_id: str  # an EXTERNAL key with an import token handed out, nothing imported yet
    pending_token: bytes
    pending_public_key: bytes
    asymmetric: AsymmetricKeys

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMSGATE_")}
        if self.key_store:
            env["KMSGATE_KEY_STORE"] = self.key_store
        env.update(extra)
        return env

    def server(self, **env: str) -> KmsgateServer:
        return start_server(self.data_dir, **({"KMSGATE_KEY_STORE": self.key_store} if self.key_store else {}), **env)


ASYMMETRIC_PLAINTEXT = b"under an RSA key"
MAC_MESSAGE = b"under an HMAC key"


def _make_asymmetric_keys(kms: Any) -> AsymmetricKeys:
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    ciphertext = kms.encrypt(KeyId=rsa, Plaintext=ASYMMETRIC_PLAINTEXT,
                             EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    hmac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=hmac_key, Message=MAC_MESSAGE, MacAlgorithm="HMAC_SHA_256")["Mac"]
    return AsymmetricKeys(rsa, ciphertext, ecc, kms.get_public_key(KeyId=ecc)["PublicKey"], hmac_key, mac)


def _assert_asymmetric_keys_kept_their_material(kms: Any, keys: AsymmetricKeys) -> None:
    decrypted = kms.decrypt(KeyId=keys.rsa_key_id, CiphertextBlob=keys.rsa_ciphertext,
                            EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"]
    assert decrypted == ASYMMETRIC_PLAINTEXT
    signature = kms.sign(KeyId=keys.ecc_key_id, Message=b"after the rotation", MessageType="RAW",
                         SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    public_key = serialization.load_der_public_key(keys.ecc_public_key)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, b"after the rotation", ec.ECDSA(hashes.SHA256()))  # the same private key signs
    mac = kms.generate_mac(KeyId=keys.hmac_key_id, Message=MAC_MESSAGE, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == keys.mac  # the same HMAC key


def _build_world(data_dir: Path, key_store: str | None) -> World:
    server = start_server(data_dir, **({"KMSGATE_KEY_STORE": key_store} if key_store else {}))
    try:
        kms = server.kms_client()
        ciphertexts: dict[bytes, bytes] = {}

        def encrypt(key_id: str, plaintext: bytes) -> None:
            ciphertexts[plaintext] = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]

        rotated = kms.create_key(Description="rotated")["KeyMetadata"]["KeyId"]
        encrypt(rotated, b"rotated, first material")
        kms.rotate_key_on_demand(KeyId=rotated)
        encrypt(rotated, b"rotated, second material")
        kms.rotate_key_on_demand(KeyId=rotated)
        encrypt(rotated, b"rotated, third material")
        plain = kms.create_key(Description="plain")["KeyMetadata"]["KeyId"]
        encrypt(plain, b"plain key")
        imported = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        params = kms.get_parameters_for_import(KeyId=imported, WrappingAlgorithm=ALGORITHM, WrappingKeySpec="RSA_2048")
        kms.import_key_material(
            KeyId=imported, ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], os.urandom(32), ALGORITHM),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
        encrypt(imported, b"imported material")
        pending = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        token = kms.get_parameters_for_import(KeyId=pending, WrappingAlgorithm=ALGORITHM, WrappingKeySpec="RSA_2048")
        asymmetric = _make_asymmetric_keys(kms)
    finally:
        server.stop()
    return World(data_dir, key_store, ciphertexts, pending, token["ImportToken"], token["PublicKey"], asymmetric)


@pytest.fixture
def world(key_store_url: str | None, tmp_path: Path) -> World:
    return _build_world(tmp_path / "data", key_store_url)


def _rotate(world: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmsgate", "root-key", "rotate", "--data-dir", str(world.data_dir), *args],
        env=world.env(**env), capture_output=True, text=True, timeout=120,
    )


def _key_text(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def _assert_everything_decrypts_and_the_pending_token_imports(server: KmsgateServer, world: World) -> None:
    kms = server.kms_client()
    for plaintext, blob in world.ciphertexts.items():
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    _assert_asymmetric_keys_kept_their_material(kms, world.asymmetric)
    kms.import_key_material(
        KeyId=world.pending_key_id, ImportToken=world.pending_token,
        EncryptedKeyMaterial=wrap_key_material(world.pending_public_key, os.urandom(32), ALGORITHM),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    blob = kms.encrypt(KeyId=world.pending_key_id, Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"after"


def _serve_refused(world: World, root_key_text: str) -> str:
    """Start ``kmsgate serve`` with this root key; it must refuse. Returns its last line of stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "kmsgate", "serve", "--data-dir", str(world.data_dir), "--port", "0",
         "--workers", "0", "--s3-port", "0"],
        env=world.env(KMSGATE_ROOT_KEY=root_key_text), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_after_rotation_every_key_decrypts_with_the_new_root_key_and_the_old_one_is_refused(world: World) -> None:
    old = _key_text(world.data_dir / "root.key")

    done = _rotate(world)

    assert done.returncode == 0, done.stderr
    new = _key_text(world.data_dir / "root.key")
    assert new != old
    assert sorted(p.name for p in world.data_dir.glob("root.key*")) == ["root.key"]
    assert (world.data_dir / "root.key").stat().st_mode & 0o777 == 0o600
    for secret in (old, new):
        assert secret not in done.stdout + done.stderr
    assert "Next: start every node" in done.stdout
    server = world.server()
    try:
        _assert_everything_decrypts_and_the_pending_token_imports(server, world)
    finally:
        server.stop()
    assert "replaced by 'kmsgate root-key rotate'" in _serve_refused(world, old)


def test_a_rotation_to_a_new_key_file_leaves_the_current_key_file_alone(world: World, tmp_path: Path) -> None:
    current = tmp_path / "current.key"
    (world.data_dir / "root.key").rename(current)
    new_file = tmp_path / "new.key"

    done = _rotate(world, "--root-key-file", str(current), "--new-root-key-file", str(new_file))

    assert done.returncode == 0, done.stderr
    assert new_file.stat().st_mode & 0o777 == 0o600
    assert f"with the new root key ({new_file})" in done.stdout
    assert _key_text(new_file) not in done.stdout + done.stderr
    server = world.server(KMSGATE_ROOT_KEY_FILE=str(new_file))
    try:
        _assert_everything_decrypts_and_the_pending_token_imports(server, world)
    finally:
        server.stop()
    assert "replaced by 'kmsgate root-key rotate'" in _serve_refused(world, _key_text(current))


def _dump(world: World) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("keys", "materials", "aliases", "grants", "settings", "deleted_keys")
    if world.key_store is None:
        with sqlite3.connect(world.data_dir / DB_FILENAME) as conn:
            dumped = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
            dumped["tables"] = sorted(conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall())
        conn.close()
        return dumped
    with psycopg.connect(world.key_store) as pg:
        dumped = {t: sorted(pg.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
        dumped["tables"] = sorted(pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall())
    return dumped


def test_a_wrong_current_root_key_is_refused_with_one_line_and_nothing_changes(world: World, tmp_path: Path) -> None:
    before = _dump(world)
    wrong = base64.b64encode(os.urandom(32)).decode()
    new_file = tmp_path / "new.key"

    done = _rotate(world, "--new-root-key-file", str(new_file), KMSGATE_ROOT_KEY=wrong)

    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "does not open this key store" in done.stderr and "nothing was changed" in done.stderr
    assert wrong not in done.stdout + done.stderr
    assert not new_file.exists()
    assert _dump(world) == before


# The named points of a rotation, in order, and which root key opens the store after a kill there.
KILL_POINTS = [
    ("staging", "old"),
    ("staged", "old"),
    ("switching", "old"),
    ("switched", "new"),
    ("old-key-kept", "new"),
    ("key-file-replaced", "new"),
]
RESUMED_SAYS = {
    "old": "resuming an interrupted rotation to this new root key",
    "new": "resuming: the key store is already under the new root key",
    "key-file-replaced": "the interrupted root key rotation is finished",
}


def _count(world: World, table: str) -> int:
    if world.key_store is None:
        with sqlite3.connect(world.data_dir / DB_FILENAME) as conn:
            count = int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        conn.close()
        return count
    with psycopg.connect(world.key_store) as pg:
        row = pg.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(row[0]) if row is not None else 0


def _refusal(world: World, root_key: RootKey) -> str | None:
    """Why the store refuses to open with ``root_key``, or ``None`` if it opens."""
    try:
        service = open_service(world.data_dir, root_key, region=REGION, account_id=ACCOUNT_ID,
                               key_store=world.key_store)
    except RootKeyError as exc:
        return str(exc)
    service.close()
    return None


def _decrypts_everything(world: World, root_key: RootKey) -> None:
    async def decrypt_all() -> None:
        service = open_service(world.data_dir, root_key, region=REGION, account_id=ACCOUNT_ID,
                               key_store=world.key_store)
        try:
            for plaintext, blob in world.ciphertexts.items():
                opened = await service.decrypt(caller=account_root(ACCOUNT_ID), ciphertext_blob=blob)
                assert opened.plaintext == plaintext
        finally:
            service.close()

    asyncio.run(decrypt_all())


@pytest.mark.parametrize(("point", "opens_with"), KILL_POINTS, ids=[point for point, _ in KILL_POINTS])
def test_a_kill_9_at_each_point_leaves_a_store_one_key_opens_and_running_again_finishes(
    world: World, point: str, opens_with: str
) -> None:
    old_file, new_file = world.data_dir / "root.key", world.data_dir / "root.key.new"
    old_text = _key_text(old_file)

    killed = _rotate(world, "--batch-rows", "2", KMSGATE_TEST_ROTATE_KILL_AT=point)

    assert killed.returncode == -9, killed.stderr
    if point == "staging":  # killed between batches: some values staged, not all
        assert 0 < _count(world, "root_key_rewraps") < _count(world, "materials")
    old = RootKey(base64.b64decode(old_text))
    # The operator still holds both keys in the data dir: the new one as root.key.new, or, once
    # installed, as root.key (with the old one as root.key.old).
    if point == "key-file-replaced":
        new = read_root_key_file(old_file)
        assert _key_text(world.data_dir / "root.key.old") == old_text
    else:
        new = read_root_key_file(new_file)
        assert _key_text(old_file) == old_text
    opening, refused = (old, new) if opens_with == "old" else (new, old)
    assert _refusal(world, opening) is None
    assert _refusal(world, refused) == (
        "a rotation to this root key has not finished; run 'kmsgate root-key rotate' again to finish it, "
        "or start with the current root key"
        if opens_with == "old"
        else "this root key was replaced by 'kmsgate root-key rotate'; start with the new root key "
        "(if the rotation was interrupted, run it again to finish it)"
    )
    _decrypts_everything(world, opening)

    resumed = _rotate(world)

    assert resumed.returncode == 0, resumed.stderr
    assert RESUMED_SAYS.get(point, RESUMED_SAYS[opens_with]) in resumed.stdout
    assert sorted(p.name for p in world.data_dir.glob("root.key*")) == ["root.key"]
    assert read_root_key_file(old_file).matches_check(new.check_value())
    for secret in (old_text, _key_text(old_file)):
        assert secret not in killed.stdout + killed.stderr + resumed.stdout + resumed.stderr
    server = world.server()
    try:
        _assert_everything_decrypts_and_the_pending_token_imports(server, world)
    finally:
        server.stop()
    assert "replaced by 'kmsgate root-key rotate'" in _serve_refused(world, old_text)


def test_a_rotation_to_a_new_key_file_killed_after_the_switch_finishes_when_run_again(
    world: World, tmp_path: Path
) -> None:
    current = tmp_path / "current.key"
    (world.data_dir / "root.key").rename(current)
    new_file = tmp_path / "new.key"
    arguments = ("--root-key-file", str(current), "--new-root-key-file", str(new_file))

    killed = _rotate(world, *arguments, KMSGATE_TEST_ROTATE_KILL_AT="switched")
    resumed = _rotate(world, *arguments)

    assert killed.returncode == -9, killed.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert RESUMED_SAYS["new"] in resumed.stdout
    assert _key_text(current) != _key_text(new_file)
    server = world.server(KMSGATE_ROOT_KEY_FILE=str(new_file))
    try:
        _assert_everything_decrypts_and_the_pending_token_imports(server, world)
    finally:
        server.stop()
