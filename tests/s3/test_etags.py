"""S3 ETags: single-PUT and multipart, checked against a known answer and against moto."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from moto import mock_aws

from kmsgate.s3.etags import md5_etag, multipart_etag, part_md5_of, quote_etag, unquote_etag

MIB = 1024 * 1024
# Parts b"a" * 5 MiB and b"b": md5(md5(part1) || md5(part2)) + "-2" (also what moto answers).
TWO_PART_ETAG = "e5a8c5272b26fc10581a21089559b006-2"


def test_a_single_put_etag_is_the_md5_hex() -> None:
    assert md5_etag(hashlib.md5(b"").digest()) == "d41d8cd98f00b204e9800998ecf8427e"


def test_the_two_part_known_answer() -> None:
    parts = [b"a" * (5 * MIB), b"b"]
    assert multipart_etag([hashlib.md5(p).digest() for p in parts]) == TWO_PART_ETAG


def test_multipart_etags_agree_with_moto() -> None:
    parts = [bytes([n]) * (5 * MIB) for n in range(3)] + [b"tail"]
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        client.create_bucket(Bucket="bucket")
        upload = client.create_multipart_upload(Bucket="bucket", Key="k")["UploadId"]
        sent = [
            {"PartNumber": n, "ETag": client.upload_part(Bucket="bucket", Key="k", UploadId=upload, PartNumber=n, Body=p)["ETag"]}
            for n, p in enumerate(parts, start=1)
        ]
        done = client.complete_multipart_upload(Bucket="bucket", Key="k", UploadId=upload, MultipartUpload={"Parts": sent})

    part_md5s = [part_md5_of(s["ETag"]) for s in sent]
    assert part_md5s == [hashlib.md5(p).digest() for p in parts]
    assert quote_etag(multipart_etag([d for d in part_md5s if d is not None])) == done["ETag"]


def test_a_multipart_etag_needs_one_to_ten_thousand_digests() -> None:
    with pytest.raises(ValueError):
        multipart_etag([])
    with pytest.raises(ValueError):
        multipart_etag([bytes(16)] * 10_001)
    with pytest.raises(ValueError):
        multipart_etag([bytes(15)])
    assert multipart_etag([bytes(16)] * 10_000).endswith("-10000")


def test_part_etags_that_are_not_an_md5_have_no_digest() -> None:
    assert part_md5_of('"d41d8cd98f00b204e9800998ecf8427e"') == hashlib.md5(b"").digest()
    assert part_md5_of("d41d8cd98f00b204e9800998ecf8427e") == hashlib.md5(b"").digest()
    assert part_md5_of('"e5a8c5272b26fc10581a21089559b006-2"') is None
    assert part_md5_of("xyz") is None


def test_quoting() -> None:
    assert quote_etag("abc") == '"abc"'
    assert unquote_etag(' "abc" ') == "abc"
    assert unquote_etag("abc") == "abc"
    assert unquote_etag('"') == '"'
