"""Interoperability with the official aws-encryption-sdk through a running kmsgate KMS.

Both sides talk to a real ``kmsgate serve`` on loopback: kmsgate through
``RemoteKmsClient`` (aiobotocore), the official SDK through its strict KMS master key
provider on a botocore session pointed at the server by ``AWS_ENDPOINT_URL_KMS``.
"""

from __future__ import annotations

from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy

from kmsgate.envelope import (
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
)
from kmsgate.envelope.kms_client import RemoteKmsClient, RemoteKmsSettings
from kmsgate.envelope.materials import MaterialsManager, decrypt_message, encrypt_message

from .conftest import vector_loader

SUITES = {
    "0478": (AES_256_GCM_HKDF_SHA512_COMMIT_KEY, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY),
    "0578": (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384),
}
CASES = [  # (name, context, plaintext length, frame length)
    ("empty-ctx-empty-pt", {}, 0, 4096),
    ("ctx-one-frame", {"purpose": "interop", "tenant": "\u00e9"}, 4096, 4096),
    ("ctx-frame-plus-one", {"purpose": "interop"}, 4097, 4096),
    ("empty-ctx-many-frames", {}, 50_000, 1024),
]


@pytest.fixture
def kms_env(kmsgate_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Credentials and endpoint in the environment, as a deployed client would have them."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", kmsgate_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", kmsgate_server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", kmsgate_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", kmsgate_server.endpoint_url)
    return kmsgate_server


@pytest.fixture
def key_arn(kms_env: Any) -> str:
    return str(kms_env.kms_client().create_key(Description="envelope interop")["KeyMetadata"]["Arn"])


def sdk_client() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def sdk_provider(key_arn: str) -> Any:
    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=botocore.session.Session())


def remote(kms_env: Any) -> RemoteKmsClient:
    return RemoteKmsClient(RemoteKmsSettings(endpoint_url=kms_env.endpoint_url, region=kms_env.region))


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize(("name", "context", "length", "frame_length"), CASES, ids=[c[0] for c in CASES])
async def test_kmsgate_message_decrypts_with_official_sdk(kms_env, key_arn, suite_name, name, context, length,  # type: ignore[no-untyped-def]
                                                          frame_length) -> None:
    suite, _ = SUITES[suite_name]
    plaintext = vector_loader.plaintext_of(length)
    async with remote(kms_env) as kms:
        manager = MaterialsManager(kms)
        message = await encrypt_message(manager, plaintext, key_id=key_arn, encryption_context=context,
                                        suite=suite, frame_length=frame_length)
    decrypted, header = sdk_client().decrypt(source=bytes(message), key_provider=sdk_provider(key_arn))
    assert decrypted == plaintext
    assert header.algorithm.algorithm_id == suite.suite_id
    assert {k: v for k, v in header.encryption_context.items() if not k.startswith("aws-crypto-")} == context


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize(("name", "context", "length", "frame_length"), CASES, ids=[c[0] for c in CASES])
async def test_official_sdk_message_decrypts_with_kmsgate(kms_env, key_arn, suite_name, name, context, length,  # type: ignore[no-untyped-def]
                                                          frame_length) -> None:
    suite, sdk_suite = SUITES[suite_name]
    plaintext = vector_loader.plaintext_of(length)
    message, _ = sdk_client().encrypt(source=plaintext, key_provider=sdk_provider(key_arn),
                                      encryption_context=context, algorithm=sdk_suite, frame_length=frame_length)
    async with remote(kms_env) as kms:
        result = await decrypt_message(MaterialsManager(kms), message)
    assert result.plaintext == plaintext
    assert result.header.suite is suite
    assert result.header.encrypted_data_keys[0].provider_info == key_arn.encode()


async def test_cached_reads_make_one_decrypt_call(kms_env, key_arn) -> None:  # type: ignore[no-untyped-def]
    async with remote(kms_env) as kms:
        writer = MaterialsManager(kms)
        messages = [await encrypt_message(writer, bytes([i]) * 100, key_id=key_arn) for i in range(5)]
        assert writer.stats.kms_calls == 1
        reader = MaterialsManager(kms)
        for i, message in enumerate(messages):
            assert (await decrypt_message(reader, message)).plaintext == bytes([i]) * 100
        assert reader.stats.kms_calls == 1 and reader.stats.hits == 4
