"""GetKeyLastUsage over a real server: empty before use, the last successful operation after,
not moved by denied calls, permission-checked, and kept across a restart (flushed at shutdown)."""

from __future__ import annotations

import datetime
from pathlib import Path

from tests.conftest import start_server

from .conftest import BOB, CAROL, AuthzServer, allow, error_code, key_policy, write_identities


def test_last_usage_follows_successful_cryptography(authz: AuthzServer) -> None:
    root = authz.client()
    key = root.create_key(Policy=key_policy(allow(BOB, ["kms:Encrypt", "kms:GenerateDataKey"])))["KeyMetadata"]
    before = root.get_key_last_usage(KeyId=key["KeyId"])
    assert before["KeyId"] == key["KeyId"]
    assert before.get("KeyLastUsage", {}) == {}
    assert before["KeyCreationDate"] == key["CreationDate"]
    assert before["TrackingStartDate"] >= key["CreationDate"]

    authz.client(BOB).encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    after_encrypt = root.get_key_last_usage(KeyId=key["Arn"])["KeyLastUsage"]
    assert after_encrypt["Operation"] == "Encrypt"
    assert isinstance(after_encrypt["Timestamp"], datetime.datetime)
    assert after_encrypt["Timestamp"] >= key["CreationDate"]

    authz.client(BOB).generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    assert root.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]["Operation"] == "GenerateDataKey"

    # A denied call is not a use.
    assert error_code(authz.client(CAROL).encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "AccessDeniedException"
    assert error_code(authz.client(BOB).decrypt, CiphertextBlob=b"\x00" * 64) is not None
    assert root.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]["Operation"] == "GenerateDataKey"


def test_last_usage_needs_permission_and_a_key_id(authz: AuthzServer) -> None:
    root = authz.client()
    key_id = root.create_key(Policy=key_policy(allow(BOB, "kms:GetKeyLastUsage")))["KeyMetadata"]["KeyId"]
    root.create_alias(AliasName="alias/last-usage", TargetKeyId=key_id)
    assert error_code(authz.client(BOB).get_key_last_usage, KeyId=key_id) is None
    assert error_code(authz.client(CAROL).get_key_last_usage, KeyId=key_id) == "AccessDeniedException"
    assert error_code(root.get_key_last_usage, KeyId="alias/last-usage") == "NotFoundException"


def test_last_usage_survives_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--identities", str(write_identities(tmp_path)))
    try:
        root = server.kms_client()
        key_id = root.create_key()["KeyMetadata"]["KeyId"]
        blob = root.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
        root.decrypt(CiphertextBlob=blob)
        used = root.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
        server.stop()  # SIGTERM: the shutdown flushes unwritten uses to the key store
        server.start()
        again = server.kms_client()
        assert again.get_key_last_usage(KeyId=key_id)["KeyLastUsage"] == used
        assert used["Operation"] == "Decrypt"
    finally:
        server.stop()
