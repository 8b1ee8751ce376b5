"""Multipart uploads and copies through the S3 API, driven by boto3 over loopback."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client

MIB = 1024 * 1024
PART = 5 * MIB


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def multipart_etag(*parts: bytes) -> str:
    return f'"{hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-{len(parts)}"'


def test_upload_file_and_download_file_of_64_mib_round_trip_with_the_default_transfer_config(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    source, back = tmp_path / "big.bin", tmp_path / "back.bin"
    data = os.urandom(64 * MIB)
    source.write_bytes(data)
    s3.upload_file(str(source), bucket, "big.bin",
                   ExtraArgs={"ContentType": "application/x-big", "Metadata": {"origin": "upload_file"}})
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    eight = [data[i : i + 8 * MIB] for i in range(0, len(data), 8 * MIB)]
    assert (head["ContentLength"], head["ETag"]) == (len(data), multipart_etag(*eight))
    assert (head["ContentType"], head["Metadata"]) == ("application/x-big", {"origin": "upload_file"})
    assert head["ServerSideEncryption"] == "aws:kms"
    s3.download_file(bucket, "big.bin", str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_multipart_object_is_served_with_the_metadata_given_at_create(s3: Any, bucket: str) -> None:
    one, two = os.urandom(PART), os.urandom(1000)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="text/x-parts",
                                           CacheControl="max-age=60", Metadata={"Team": "blue"})["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
             for n, body in ((1, one), (2, two))]
    assert etags == [f'"{hashlib.md5(one).hexdigest()}"', f'"{hashlib.md5(two).hexdigest()}"']
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}]})
    assert done["ETag"] == multipart_etag(one, two)
    assert done["SSEKMSKeyId"].startswith("arn:aws:kms:")
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == one + two
    assert (got["ETag"], got["ContentType"], got["CacheControl"], got["Metadata"]) == (
        multipart_etag(one, two), "text/x-parts", "max-age=60", {"team": "blue"})
    assert got["SSEKMSKeyId"] == done["SSEKMSKeyId"]
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={PART - 10}-{PART + 9}")
    assert ranged["Body"].read() == (one + two)[PART - 10 : PART + 10]


def test_parts_and_uploads_are_listed_and_an_aborted_upload_is_gone(s3: Any, bucket: str) -> None:
    first = s3.create_multipart_upload(Bucket=bucket, Key="dir/a")["UploadId"]
    second = s3.create_multipart_upload(Bucket=bucket, Key="b")["UploadId"]
    for n in (3, 1, 2):
        s3.upload_part(Bucket=bucket, Key="dir/a", UploadId=first, PartNumber=n, Body=b"p" * n)
    page = s3.list_parts(Bucket=bucket, Key="dir/a", UploadId=first, MaxParts=2)
    assert [(p["PartNumber"], p["Size"]) for p in page["Parts"]] == [(1, 1), (2, 2)]
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    rest = s3.list_parts(Bucket=bucket, Key="dir/a", UploadId=first, PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"]
    uploads = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [("b", second), ("dir/a", first)]
    grouped = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in grouped["Uploads"]] == ["b"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["dir/"]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix="dir/")["Uploads"]] == ["dir/a"]
    s3.abort_multipart_upload(Bucket=bucket, Key="dir/a", UploadId=first)
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [second]
    with pytest.raises(ClientError) as err:
        s3.list_parts(Bucket=bucket, Key="dir/a", UploadId=first)
    assert code_of(err) == "NoSuchUpload"


def test_completions_that_break_s3s_rules_are_refused_with_s3s_codes(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="rules")["UploadId"]
    small = [s3.upload_part(Bucket=bucket, Key="rules", UploadId=upload_id, PartNumber=n, Body=b"tiny")["ETag"]
             for n in (1, 2)]
    attempts = {
        "EntityTooSmall": [{"PartNumber": 1, "ETag": small[0]}, {"PartNumber": 2, "ETag": small[1]}],
        "InvalidPart": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}],
        "InvalidPartOrder": [{"PartNumber": 2, "ETag": small[1]}, {"PartNumber": 1, "ETag": small[0]}],
    }
    for code, parts in attempts.items():
        with pytest.raises(ClientError) as err:
            s3.complete_multipart_upload(Bucket=bucket, Key="rules", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
        assert (code_of(err), err.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 400)
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="rules", UploadId="no-such-upload", PartNumber=1, Body=b"x")
    assert code_of(err) == "NoSuchUpload"
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="rules")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_part_whose_content_md5_does_not_match_is_not_stored(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="md5")["UploadId"]
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="md5", UploadId=upload_id, PartNumber=1, Body=b"the part",
                       ContentMD5=wrong)
    assert code_of(err) == "BadDigest"
    assert s3.list_parts(Bucket=bucket, Key="md5", UploadId=upload_id).get("Parts", []) == []


def test_copy_object_keeps_or_replaces_metadata_and_reencrypts(s3: Any, bucket: str) -> None:
    data = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="text/x-src", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    md5 = f'"{hashlib.md5(data).hexdigest()}"'
    assert copied["CopyObjectResult"]["ETag"] == md5 and copied["ServerSideEncryption"] == "aws:kms"
    kept = s3.get_object(Bucket=bucket, Key="kept")
    assert (kept["Body"].read(), kept["ETag"], kept["ContentType"], kept["Metadata"]) == (
        data, md5, "text/x-src", {"a": "1"})
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   ContentType="text/x-new", Metadata={"b": "2"})
    replaced = s3.head_object(Bucket=bucket, Key="replaced")
    assert (replaced["ContentType"], replaced["Metadata"], replaced["ETag"]) == ("text/x-new", {"b": "2"}, md5)


def test_copy_source_conditions_are_checked_before_anything_is_written(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"conditional")
    etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    s3.copy_object(Bucket=bucket, Key="ok", CopySource=f"{bucket}/src", CopySourceIfMatch=etag)
    for condition in ({"CopySourceIfMatch": '"' + "0" * 32 + '"'}, {"CopySourceIfNoneMatch": etag}):
        with pytest.raises(ClientError) as err:
            s3.copy_object(Bucket=bucket, Key="refused", CopySource=f"{bucket}/src", **condition)
        assert (code_of(err), err.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("PreconditionFailed",
                                                                                              412)
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="refused")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code_of(err) == "InvalidRequest"


def test_a_multipart_object_copies_to_a_single_part_object_with_its_metadata(s3: Any, bucket: str) -> None:
    one, two = os.urandom(PART), b"tail"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", Metadata={"k": "v"})["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=n,
                                                      Body=body)["ETag"]} for n, body in ((1, one), (2, two))]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": parts})
    s3.copy_object(Bucket=bucket, Key="flat", CopySource=f"{bucket}/mp")
    flat = s3.get_object(Bucket=bucket, Key="flat")
    assert (flat["Body"].read(), flat["Metadata"]) == (one + two, {"k": "v"})
    assert flat["ETag"] == f'"{hashlib.md5(one + two).hexdigest()}"'


def test_upload_part_copy_builds_an_object_from_ranges_of_another(s3: Any, bucket: str) -> None:
    data = os.urandom(PART + 3000)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    first = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes=0-{PART - 1}")
    second = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=2,
                                 CopySource=f"{bucket}/src", CopySourceRange=f"bytes={PART}-{len(data) - 1}")
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(data[:PART]).hexdigest()}"'
    with pytest.raises(ClientError) as err:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=3, CopySource=f"{bucket}/src",
                            CopySourceIfMatch='"' + "0" * 32 + '"')
    assert code_of(err) == "PreconditionFailed"
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload_id, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data


def test_an_abandoned_upload_is_aborted_once_older_than_the_maximum_age(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--s3-port", str(free_port()), "--multipart-max-age", "1")
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="expiring")
        upload_id = s3.create_multipart_upload(Bucket="expiring", Key="left")["UploadId"]
        s3.upload_part(Bucket="expiring", Key="left", UploadId=upload_id, PartNumber=1, Body=b"abandoned")
        deadline = time.monotonic() + 30
        while s3.list_multipart_uploads(Bucket="expiring").get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.2)  # polling for the sweep's effect, not a fixed wait
        assert s3.list_multipart_uploads(Bucket="expiring").get("Uploads", []) == []
        with pytest.raises(ClientError) as err:
            s3.list_parts(Bucket="expiring", Key="left", UploadId=upload_id)
        assert code_of(err) == "NoSuchUpload"
    finally:
        server.stop()


def test_a_listing_gives_a_multipart_objects_plaintext_size(s3: Any, bucket: str) -> None:
    parts = [os.urandom(PART), os.urandom(PART), b"end of it"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="sized")["UploadId"]
    completed = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="sized", UploadId=upload_id,
                                                          PartNumber=n, Body=body)["ETag"]}
                 for n, body in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="sized", UploadId=upload_id, MultipartUpload={"Parts": completed})
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("sized", sum(len(p) for p in parts))]
