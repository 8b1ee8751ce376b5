"""The S3 API driven by boto3 over loopback: buckets, objects, ranges, listings, metadata, auth failures."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer
from tests.s3front.conftest import NOBODY_ACCESS_KEY_ID, NOBODY_SECRET_ACCESS_KEY, s3_client


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_buckets_are_created_listed_and_deleted(s3: Any) -> None:
    s3.create_bucket(Bucket="life-cycle")
    assert "life-cycle" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life-cycle")
    assert s3.get_bucket_location(Bucket="life-cycle").get("LocationConstraint") in (None, "")
    s3.put_object(Bucket="life-cycle", Key="k", Body=b"x")
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket="life-cycle")
    assert code_of(err) == "BucketNotEmpty"
    s3.delete_object(Bucket="life-cycle", Key="k")
    s3.delete_bucket(Bucket="life-cycle")
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket="life-cycle")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_an_object_round_trips_with_its_metadata_and_an_md5_etag(s3: Any, bucket: str) -> None:
    data = os.urandom(300_001)
    put = s3.put_object(Bucket=bucket, Key="dir/a.bin", Body=data, ContentType="application/x-test",
                        ContentDisposition="attachment", CacheControl="no-cache", Metadata={"Owner": "Alice"})
    md5 = hashlib.md5(data).hexdigest()
    assert put["ETag"] == f'"{md5}"'
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"].startswith("arn:aws:kms:")
    got = s3.get_object(Bucket=bucket, Key="dir/a.bin")
    assert got["Body"].read() == data
    assert (got["ETag"], got["ContentType"], got["ContentDisposition"], got["CacheControl"]) == (
        f'"{md5}"', "application/x-test", "attachment", "no-cache")
    assert got["Metadata"] == {"owner": "Alice"}
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    head = s3.head_object(Bucket=bucket, Key="dir/a.bin")
    assert (head["ContentLength"], head["ETag"], head["Metadata"]) == (len(data), f'"{md5}"', {"owner": "Alice"})
    s3.delete_object(Bucket=bucket, Key="dir/a.bin")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="dir/a.bin")
    assert code_of(err) == "NoSuchKey"


def test_a_ranged_get_returns_exactly_the_range(s3: Any, bucket: str) -> None:
    data = os.urandom(600_000)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=262100-262200")
    assert got["Body"].read() == data[262100:262201]
    assert got["ContentRange"] == f"bytes 262100-262200/{len(data)}"
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-10")["Body"].read() == data[-10:]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code_of(err) == "InvalidRange"


def test_conditional_gets_follow_etag_and_dates(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert code_of(err) == "PreconditionFailed"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=modified)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_list_objects_v2_with_prefix_delimiter_and_pages(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "a/b/3", "b/4", "c"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * 3)
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["c"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
    under_a = s3.list_objects_v2(Bucket=bucket, Prefix="a/")
    assert [(o["Key"], o["Size"]) for o in under_a["Contents"]] == [(k, 3 * len(k)) for k in ["a/1", "a/2", "a/b/3"]]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    seen = [[o["Key"] for o in page.get("Contents", [])] for page in pages]
    assert seen == [["a/1", "a/2"], ["a/b/3", "b/4"], ["c"]]
    v1_pages = s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    assert [o["Key"] for page in v1_pages for o in page.get("Contents", [])] == keys
    encoded = s3.list_objects_v2(Bucket=bucket, Prefix="a/b", EncodingType="url")
    assert [o["Key"] for o in encoded["Contents"]] == ["a/b/3"]


def test_delete_objects_deletes_each_and_reports_quietly(s3: Any, bucket: str) -> None:
    for key in ["d1", "d2", "d3"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d1"}, {"Key": "d2"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["d1", "d2"]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d3"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_bucket_default_encryption_is_kept_and_used(s3_server: KmsgateServer, s3: Any, bucket: str) -> None:
    kms = s3_server.kms_client()
    key_arn = kms.create_key(Description="bucket default")["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as err:
        s3.get_bucket_encryption(Bucket=bucket)
    assert code_of(err) == "ServerSideEncryptionConfigurationNotFoundError"
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key_arn
    assert s3.put_object(Bucket=bucket, Key="e", Body=b"e")["SSEKMSKeyId"] == key_arn
    assert s3.head_object(Bucket=bucket, Key="e")["SSEKMSKeyId"] == key_arn
    s3.delete_bucket_encryption(Bucket=bucket)
    assert s3.put_object(Bucket=bucket, Key="f", Body=b"f")["SSEKMSKeyId"] != key_arn


def test_sse_c_is_not_implemented(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
    assert code_of(err) == "NotImplemented"


def test_a_presigned_url_is_fetched_with_plain_http(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=600)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.read() == b"presigned body"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url.replace("shared.txt", "other.txt"), timeout=10)  # noqa: S310
    assert err.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in err.value.read()


def test_a_wrong_secret_is_signature_does_not_match(s3_server: KmsgateServer, bucket: str) -> None:
    wrong = s3_client(s3_server, secret_access_key="x" * 40)
    with pytest.raises(ClientError) as err:
        wrong.list_objects_v2(Bucket=bucket)
    assert code_of(err) == "SignatureDoesNotMatch"


def test_an_unknown_access_key_is_invalid_access_key_id(s3_server: KmsgateServer, bucket: str) -> None:
    unknown = s3_client(s3_server, access_key_id="AKIAUNKNOWN000000000")
    with pytest.raises(ClientError) as err:
        unknown.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert code_of(err) == "InvalidAccessKeyId"


def test_a_principal_without_an_identity_policy_allow_is_access_denied(s3_server: KmsgateServer, s3: Any,
                                                                       bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    nobody = s3_client(s3_server, access_key_id=NOBODY_ACCESS_KEY_ID, secret_access_key=NOBODY_SECRET_ACCESS_KEY)
    for call in (lambda: nobody.get_object(Bucket=bucket, Key="private"),
                 lambda: nobody.put_object(Bucket=bucket, Key="mine", Body=b"x"),
                 lambda: nobody.list_objects_v2(Bucket=bucket),
                 lambda: nobody.create_bucket(Bucket="nobodys-bucket"),
                 lambda: nobody.list_buckets()):
        with pytest.raises(ClientError) as err:
            call()
        assert code_of(err) == "AccessDenied"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["private"]
