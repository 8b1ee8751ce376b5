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


def test_cli_asymmetric_and_hmac_keys(cli_server: Any, tmp_path: Path) -> None:
    """create-key with a key spec, get-public-key, sign, verify, RSA encrypt/decrypt, generate-mac, verify-mac."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    message = tmp_path / "message"
    message.write_bytes(b"signed from the command line")
    meta = aws_json(cli_server, "create-key", "--key-spec", "ECC_NIST_P384", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]
    assert meta["KeySpec"] == "ECC_NIST_P384" and meta["SigningAlgorithms"] == ["ECDSA_SHA_384"]
    key_id = meta["KeyId"]
    public = aws_json(cli_server, "get-public-key", "--key-id", key_id)
    signed = aws_json(cli_server, "sign", "--key-id", key_id, "--message", f"fileb://{message}",
                      "--signing-algorithm", "ECDSA_SHA_384")
    signature = base64.b64decode(signed["Signature"])
    loaded = serialization.load_der_public_key(base64.b64decode(public["PublicKey"]))
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    loaded.verify(signature, message.read_bytes(), ec.ECDSA(hashes.SHA384()))
    signature_file = tmp_path / "signature"
    signature_file.write_bytes(signature)
    verified = aws_json(cli_server, "verify", "--key-id", key_id, "--message", f"fileb://{message}",
                        "--signature", f"fileb://{signature_file}", "--signing-algorithm", "ECDSA_SHA_384")
    assert verified["SignatureValid"] is True
    message.write_bytes(b"changed")
    failed = aws(cli_server, "verify", "--key-id", key_id, "--message", f"fileb://{message}",
                 "--signature", f"fileb://{signature_file}", "--signing-algorithm", "ECDSA_SHA_384", check=False)
    assert failed.returncode != 0 and "KMSInvalidSignatureException" in failed.stderr

    rsa_key = aws_json(cli_server, "create-key", "--key-spec", "RSA_2048", "--key-usage", "ENCRYPT_DECRYPT")["KeyMetadata"]
    encrypted = aws_json(cli_server, "encrypt", "--key-id", rsa_key["KeyId"], "--plaintext", f"fileb://{message}",
                         "--encryption-algorithm", "RSAES_OAEP_SHA_256")
    blob = tmp_path / "blob"
    blob.write_bytes(base64.b64decode(encrypted["CiphertextBlob"]))
    decrypted = aws_json(cli_server, "decrypt", "--key-id", rsa_key["KeyId"], "--ciphertext-blob", f"fileb://{blob}",
                         "--encryption-algorithm", "RSAES_OAEP_SHA_256")
    assert base64.b64decode(decrypted["Plaintext"]) == b"changed"

    hmac_key = aws_json(cli_server, "create-key", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC")
    mac = aws_json(cli_server, "generate-mac", "--key-id", hmac_key["KeyMetadata"]["KeyId"],
                   "--message", f"fileb://{message}", "--mac-algorithm", "HMAC_SHA_256")
    mac_file = tmp_path / "mac"
    mac_file.write_bytes(base64.b64decode(mac["Mac"]))
    assert aws_json(cli_server, "verify-mac", "--key-id", hmac_key["KeyMetadata"]["KeyId"], "--message",
                    f"fileb://{message}", "--mac", f"fileb://{mac_file}", "--mac-algorithm", "HMAC_SHA_256")["MacValid"]
    wrong = aws(cli_server, "sign", "--key-id", hmac_key["KeyMetadata"]["KeyId"], "--message", f"fileb://{message}",
                "--signing-algorithm", "ECDSA_SHA_256", check=False)
    assert wrong.returncode != 0 and "InvalidKeyUsageException" in wrong.stderr
