"""Secrets stay in the server: not in its output, audit log, metrics, error answers or data-dir files;
no core dumps; and start-up refuses secret files that group or others may read."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer, start_server

ROOT_KEY = bytes(range(7, 39))  # 32 bytes, recognisable
ALICE_ACCESS_KEY_ID = "AKIAFUZZALICE0000001"
ALICE_SECRET = "fuzz-alice-secret-0123456789abcdefghijkl"
ALICE_TOKEN = "fuzz-alice-bearer-token-0123456789abcdef"
IDENTITIES = f"""
[[principal]]
arn = "arn:aws:iam::111122223333:user/alice"
tokens = ["{ALICE_TOKEN}"]
[[principal.access_keys]]
access_key_id = "{ALICE_ACCESS_KEY_ID}"
secret_access_key = "{ALICE_SECRET}"
"""
OTHER_CONTEXT = base64.b64encode(b'{"a": "b"}').decode()  # not the context the object was written with


def _pids(server: KmsgateServer) -> list[int]:
    """The supervisor and every process in its session (its workers)."""
    assert server.process is not None
    sid = os.getsid(server.process.pid)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    found.append(int(entry))
            except ProcessLookupError:
                continue
    return found


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    base = tmp_path_factory.mktemp("secrets")
    root_key_file = base / "root.key"
    root_key_file.write_text(base64.b64encode(ROOT_KEY).decode() + "\n")
    root_key_file.chmod(0o600)
    identities = base / "identities.toml"
    identities.write_text(IDENTITIES)
    identities.chmod(0o600)
    server = start_server(base / "data", "--root-key-file", str(root_key_file), "--identities", str(identities),
                          "--workers", "2", "--audit-stdout")
    yield server
    server.stop()


def _gateway(server: KmsgateServer, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_core_dumps_are_off_in_the_server_and_its_workers(secret_server: KmsgateServer) -> None:
    pids = _pids(secret_server)
    assert len(pids) >= 2  # the supervisor and at least one worker
    for pid in pids:
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert line.split()[4:6] == ["0", "0"], (pid, line)


def test_no_secret_reaches_output_audit_metrics_errors_or_data_files(secret_server: KmsgateServer) -> None:
    server = secret_server
    answers: list[bytes] = []
    data_keys: list[bytes] = []
    alice = KmsgateServer(data_dir=server.data_dir, port=server.port, access_key_id=ALICE_ACCESS_KEY_ID,
                          secret_access_key=ALICE_SECRET).kms_client()
    root = server.kms_client()
    key_id = root.create_key(Description="secrets")["KeyMetadata"]["KeyId"]
    for _ in range(3):
        data_key = root.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        data_keys.append(data_key["Plaintext"])
        root.decrypt(CiphertextBlob=data_key["CiphertextBlob"])
    data_keys.append(root.generate_data_key(KeyId=key_id, NumberOfBytes=64)["Plaintext"])
    for failing in (lambda: alice.describe_key(KeyId=key_id),            # not allowed
                    lambda: root.decrypt(CiphertextBlob=b"\x01" * 80),   # not a blob
                    lambda: root.encrypt(KeyId="alias/none", Plaintext=b"x")):
        with pytest.raises(ClientError) as caught:
            failing()
        answers.append(json.dumps(caught.value.response.get("Error", {})).encode())
    wrong = KmsgateServer(data_dir=server.data_dir, port=server.port, access_key_id=ALICE_ACCESS_KEY_ID,
                          secret_access_key=ALICE_SECRET[::-1]).kms_client()
    with pytest.raises(ClientError) as caught:
        wrong.list_keys()
    answers.append(json.dumps(caught.value.response.get("Error", {})).encode())

    bearer = {"Authorization": f"Bearer {server.root_token}"}
    status, body = _gateway(server, "PUT", "/v1/objects/secret-test", b"hello", bearer)
    assert status == 201, body
    assert _gateway(server, "GET", "/v1/objects/secret-test", None, bearer) == (200, b"hello")
    for method, path, headers in (
        ("GET", "/v1/objects/secret-test", {"Authorization": f"Bearer {ALICE_TOKEN}"}),   # not permitted
        ("GET", "/v1/objects/secret-test", {"Authorization": f"Bearer {ALICE_TOKEN}x"}),  # unknown token
        ("GET", "/v1/objects/secret-test", {**bearer, "x-amz-server-side-encryption-context": OTHER_CONTEXT}),
        ("POST", "/v1/decrypt", bearer),
    ):
        status, body = _gateway(server, method, path, b"garbage" if method == "POST" else None, headers)
        assert 400 <= status < 500, (path, status, body)
        answers.append(body)
    _, metrics = _gateway(server, "GET", "/metrics")
    answers.append(metrics)

    server.stop()  # flushes the audit log and the server's output
    try:
        haystacks = {"output": server.log_text().encode(), "answers": b"\n".join(answers)}
        # Every file in the data dir, the SQLite stores too (they hold key material only wrapped).
        for path in server.data_dir.rglob("*"):
            if path.is_file():
                haystacks[str(path.relative_to(server.data_dir))] = path.read_bytes()
        assert "audit.log" in haystacks and "output" in haystacks
        needles = {
            "root key": ROOT_KEY, "root key (base64)": base64.b64encode(ROOT_KEY),
            "root key (hex)": ROOT_KEY.hex().encode(),
            "alice's secret": ALICE_SECRET.encode(), "root secret": server.secret_access_key.encode(),
            "alice's token": ALICE_TOKEN.encode(), "root token": server.root_token.encode(),
        }
        for index, data_key in enumerate(data_keys):
            needles[f"data key {index}"] = data_key
            needles[f"data key {index} (base64)"] = base64.b64encode(data_key)
        leaks = [(needle, where) for needle, value in needles.items()
                 for where, text in haystacks.items() if value in text]
        assert leaks == []
    finally:
        server.start()


def _refused_start(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Start ``kmsgate serve`` with ``args``; its exit code and output once it stopped by itself."""
    server = KmsgateServer(data_dir=tmp_path / "data")
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsgate", "serve", "--host", "127.0.0.1", "--port", str(server.port),
         "--s3-port", "0", "--workers", "1", "--data-dir", str(server.data_dir), *args],
        env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # it started and serves: stop it and all its workers
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("kmsgate started instead of refusing to")
    return process.returncode, output


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_start_up_refuses_a_root_key_file_readable_by_group_or_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "root.key"
    path.write_text(base64.b64encode(ROOT_KEY).decode())
    path.chmod(mode)
    code, output = _refused_start(tmp_path, "--root-key-file", str(path))
    assert code != 0
    assert "readable by group or others" in output and str(path) in output
    assert "Traceback" not in output
    assert base64.b64encode(ROOT_KEY).decode() not in output


def test_start_up_refuses_a_data_dir_root_key_readable_by_group_or_others(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o700)
    path = tmp_path / "data" / "root.key"
    path.write_text(base64.b64encode(ROOT_KEY).decode())
    path.chmod(0o644)
    code, output = _refused_start(tmp_path)
    assert code != 0
    assert "readable by group or others" in output and "Traceback" not in output


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_start_up_refuses_an_identities_file_readable_by_group_or_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "identities.toml"
    path.write_text(IDENTITIES)
    path.chmod(mode)
    code, output = _refused_start(tmp_path, "--identities", str(path))
    assert code != 0
    assert "readable by group or others" in output and str(path) in output
    assert ALICE_SECRET not in output


def test_start_up_accepts_private_secret_files(tmp_path: Path) -> None:
    root_key = tmp_path / "root.key"
    root_key.write_text(base64.b64encode(ROOT_KEY).decode())
    root_key.chmod(0o400)
    identities = tmp_path / "identities.toml"
    identities.write_text(IDENTITIES)
    identities.chmod(0o600)
    server = start_server(tmp_path / "data", "--root-key-file", str(root_key), "--identities", str(identities))
    server.stop()
