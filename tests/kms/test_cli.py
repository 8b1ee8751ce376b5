"""The unmodified ``aws kms`` command line against a real kmsgate: only the endpoint URL changes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AWS = Path(sys.executable).parent / "aws"


def aws(server: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(AWS), "kms", *args, "--output", "json"],
        env=server.cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def aws_json(server: Any, *args: str) -> dict[str, Any]:
    return json.loads(aws(server, *args).stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cli_server(kmsgate_server: Any) -> Any:
    if not AWS.exists():
        pytest.skip(f"the aws command line is not installed next to {sys.executable}")
    return kmsgate_server


def test_cli_round_trip(cli_server: Any, tmp_path: Path) -> None:
    meta = aws_json(cli_server, "create-key", "--description", "from the cli")["KeyMetadata"]
    key_id = meta["KeyId"]
    assert meta["KeyState"] == "Enabled" and meta["Description"] == "from the cli"
    alias = f"alias/cli-{key_id}"
    aws(cli_server, "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    listed = aws_json(cli_server, "list-aliases", "--key-id", key_id)["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]

    plaintext = tmp_path / "plain.bin"
    plaintext.write_bytes(b"\x00cli secret\xff")
    encrypted = aws_json(
        cli_server, "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plaintext}",
        "--encryption-context", "purpose=cli,tenant=acme",
    )
    assert encrypted["KeyId"] == meta["Arn"]
    blob = tmp_path / "blob.bin"
    blob.write_bytes(base64.b64decode(encrypted["CiphertextBlob"]))
    decrypted = aws_json(
        cli_server, "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "tenant=acme,purpose=cli"
    )
    assert base64.b64decode(decrypted["Plaintext"]) == b"\x00cli secret\xff"
    assert decrypted["KeyId"] == meta["Arn"] and len(decrypted["KeyMaterialId"]) == 64

    failed = aws(cli_server, "decrypt", "--ciphertext-blob", f"fileb://{blob}", check=False)
    assert failed.returncode != 0 and "InvalidCiphertextException" in failed.stderr

    data_key = aws_json(cli_server, "generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")
    assert len(base64.b64decode(data_key["Plaintext"])) == 32
    random_bytes = aws_json(cli_server, "generate-random", "--number-of-bytes", "16")
    assert len(base64.b64decode(random_bytes["Plaintext"])) == 16

    aws(cli_server, "rotate-key-on-demand", "--key-id", key_id)
    rotations = aws_json(cli_server, "list-key-rotations", "--key-id", key_id)["Rotations"]
    assert len(rotations) == 1 and rotations[0]["RotationType"] == "ON_DEMAND"
    again = aws_json(cli_server, "decrypt", "--ciphertext-blob", f"fileb://{blob}",
                     "--encryption-context", "tenant=acme,purpose=cli")
    assert again["KeyMaterialId"] == decrypted["KeyMaterialId"]

    aws(cli_server, "disable-key", "--key-id", key_id)
    failed = aws(cli_server, "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plaintext}", check=False)
    assert failed.returncode != 0 and "DisabledException" in failed.stderr
    scheduled = aws_json(cli_server, "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7")
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    described = aws_json(cli_server, "describe-key", "--key-id", key_id)["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion"
    aws(cli_server, "cancel-key-deletion", "--key-id", key_id)
    assert aws_json(cli_server, "describe-key", "--key-id", alias)["KeyMetadata"]["KeyState"] == "Disabled"


def test_cli_errors(cli_server: Any) -> None:
    missing = aws(cli_server, "describe-key", "--key-id", "alias/cli-does-not-exist", check=False)
    assert missing.returncode != 0 and "NotFoundException" in missing.stderr
    invalid = aws(cli_server, "schedule-key-deletion", "--key-id", "11111111-2222-3333-4444-555555555555",
                  "--pending-window-in-days", "3", check=False)
    assert invalid.returncode != 0 and "ValidationException" in invalid.stderr and "pendingWindowInDays" in invalid.stderr


def test_cli_paginates_list_keys(cli_server: Any) -> None:
    for _ in range(3):
        aws_json(cli_server, "create-key")
    every = aws_json(cli_server, "list-keys", "--page-size", "2")["Keys"]
    direct = cli_server.kms_client().list_keys(Limit=1000)["Keys"]
    assert sorted(k["KeyId"] for k in every) == sorted(k["KeyId"] for k in direct)
    assert len(every) >= 3
