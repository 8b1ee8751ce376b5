"""What the S3 API leaves in the data directory: no plaintext, no metadata in the clear, and messages
that the official AWS Encryption SDK decrypts with nothing but KMS access."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError
from aws_encryption_sdk.identifiers import CommitmentPolicy

from tests.conftest import KmsgateServer


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_no_plaintext_or_metadata_is_at_rest_and_the_sdk_decrypts_a_stored_object(
        s3_server: KmsgateServer, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    data = marker * 4000
    s3.put_object(Bucket=bucket, Key="at-rest/doc.txt", Body=data, ContentType="text/x-secret-type",
                  Metadata={"classified": "metadata-marker-value"})
    files = _files(s3_server.data_dir)
    for path in files:
        content = path.read_bytes()
        assert marker not in content, path
        assert b"metadata-marker-value" not in content and b"text/x-secret-type" not in content, path

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3_server.endpoint_url)
    key_arn = s3.head_object(Bucket=bucket, Key="at-rest/doc.txt")["SSEKMSKeyId"]
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key_arn], botocore_session=botocore.session.Session())
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    stored = [path for path in files if path.read_bytes()[:2] == b"\x02\x04"]  # format version 2, suite 0x0478
    decrypted = []
    for path in stored:
        try:
            plaintext, header = client.decrypt(source=path.read_bytes(), key_provider=provider)
        except AWSEncryptionSDKClientError:  # another object's message (another key or context): not the one looked for
            continue
        if plaintext == data:
            decrypted.append(header.encryption_context)
    assert len(decrypted) == 1
    assert decrypted[0]["aws:s3:arn"] == f"arn:aws:s3:::{bucket}/at-rest/doc.txt"
