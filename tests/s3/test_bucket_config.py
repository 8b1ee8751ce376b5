"""Bucket location, CreateBucketConfiguration and default-encryption documents against boto3."""

from __future__ import annotations

import pytest

from kmsgate.s3.bucket_config import (
    BucketEncryption,
    CreateBucketConfiguration,
    SseAlgorithm,
    bucket_encryption_result,
    location_constraint_result,
    parse_bucket_encryption,
    parse_create_bucket_configuration,
)
from kmsgate.s3.errors import InvalidArgument, MalformedXML, NotImplementedFeature
from tests.s3.conftest import S3Oracle

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(("region", "expected"), [("eu-west-1", "eu-west-1"), ("us-east-1", None), ("EU", "EU")])
def test_boto3_reads_the_bucket_location(s3: S3Oracle, region: str, expected: str | None) -> None:
    s3.transport.respond(location_constraint_result(region))
    assert s3.client.get_bucket_location(Bucket="b")["LocationConstraint"] == expected


@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2", "EU"])
def test_create_bucket_configuration_from_boto3_names_the_region(s3: S3Oracle, region: str) -> None:
    s3.client.create_bucket(Bucket="b", CreateBucketConfiguration={"LocationConstraint": region})
    assert parse_create_bucket_configuration(s3.transport.last_body) == CreateBucketConfiguration(region)


def test_create_bucket_without_a_body_asks_for_the_defaults(s3: S3Oracle) -> None:
    s3.client.create_bucket(Bucket="b")
    assert s3.transport.last_body == b""
    assert parse_create_bucket_configuration(b"") == CreateBucketConfiguration(None)


def test_create_bucket_options_not_offered_are_not_implemented(s3: S3Oracle) -> None:
    s3.client.create_bucket(
        Bucket="b",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1", "Tags": [{"Key": "a", "Value": "b"}]},
    )
    with pytest.raises(NotImplementedFeature):
        parse_create_bucket_configuration(s3.transport.last_body)


@pytest.mark.parametrize(
    "config",
    [
        BucketEncryption(SseAlgorithm.AWS_KMS, KEY_ARN, True),
        BucketEncryption(SseAlgorithm.AWS_KMS, None, False),
        BucketEncryption(SseAlgorithm.AWS_KMS, "alias/my-key", None),
        BucketEncryption(SseAlgorithm.AES256, None, None),
    ],
)
def test_bucket_encryption_round_trips_through_boto3_both_ways(s3: S3Oracle, config: BucketEncryption) -> None:
    s3.transport.respond(bucket_encryption_result(config))
    got = s3.client.get_bucket_encryption(Bucket="b")["ServerSideEncryptionConfiguration"]
    default: dict[str, str] = {"SSEAlgorithm": config.sse_algorithm.value}
    if config.kms_master_key_id is not None:
        default["KMSMasterKeyID"] = config.kms_master_key_id
    rule: dict[str, object] = {"ApplyServerSideEncryptionByDefault": default}
    if config.bucket_key_enabled is not None:
        rule["BucketKeyEnabled"] = config.bucket_key_enabled
    assert got == {"Rules": [rule]}

    s3.client.put_bucket_encryption(Bucket="b", ServerSideEncryptionConfiguration=got)
    assert parse_bucket_encryption(s3.transport.last_body) == config


def test_bucket_encryption_is_written_as_s3_writes_it() -> None:
    assert bucket_encryption_result(BucketEncryption(SseAlgorithm.AWS_KMS, KEY_ARN, True)) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>'
        b"<ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>"
        b"<KMSMasterKeyID>" + KEY_ARN.encode() + b"</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>"
        b"<BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>"
    )


def _sse(rule: str) -> bytes:
    return f'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{rule}</ServerSideEncryptionConfiguration>'.encode()


@pytest.mark.parametrize(
    "body",
    [
        _sse(""),
        _sse("<Rule></Rule>"),
        _sse("<Rule><BucketKeyEnabled>true</BucketKeyEnabled></Rule>"),
        _sse("<Rule><ApplyServerSideEncryptionByDefault></ApplyServerSideEncryptionByDefault></Rule>"),
        _sse("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>ROT13</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"),
        _sse("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>maybe</BucketKeyEnabled></Rule>"),
        _sse("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>" * 2),
    ],
)
def test_an_encryption_configuration_outside_the_schema_is_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        parse_bucket_encryption(body)


def test_a_kms_key_with_aes256_is_an_invalid_argument(s3: S3Oracle) -> None:
    s3.client.put_bucket_encryption(
        Bucket="b",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": KEY_ARN}}]
        },
    )
    with pytest.raises(InvalidArgument):
        parse_bucket_encryption(s3.transport.last_body)


def test_dual_layer_encryption_is_not_implemented(s3: S3Oracle) -> None:
    s3.client.put_bucket_encryption(
        Bucket="b",
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse"}}]},
    )
    with pytest.raises(NotImplementedFeature):
        parse_bucket_encryption(s3.transport.last_body)
