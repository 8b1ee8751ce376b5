"""GetObject and HeadObject with ``partNumber``, through boto3 and the aws CLI over loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer
from tests.s3front.test_s3_cli import aws

PART = 5 * 1024 * 1024


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def status_of(info: pytest.ExceptionInfo[ClientError]) -> int:
    return int(info.value.response["ResponseMetadata"]["HTTPStatusCode"])


def multipart_object(s3: Any, bucket: str, key: str, parts: list[bytes]) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="text/x-parts")["UploadId"]
    completed = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                                          PartNumber=n, Body=body)["ETag"]}
                 for n, body in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": completed})


@pytest.fixture(scope="module")
def three_parts() -> list[bytes]:
    return [os.urandom(PART), os.urandom(PART + 12_345), b"the short last part"]


def test_get_object_by_part_number_returns_that_part_with_its_range_and_the_parts_count(
        s3: Any, bucket: str, three_parts: list[bytes]) -> None:
    multipart_object(s3, bucket, "mp", three_parts)
    size = sum(len(p) for p in three_parts)
    start = 0
    for number, part in enumerate(three_parts, start=1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == part
        assert got["ContentLength"] == len(part)
        assert got["ContentRange"] == f"bytes {start}-{start + len(part) - 1}/{size}"
        assert got["PartsCount"] == 3
        assert got["ContentType"] == "text/x-parts"
        assert got["ETag"].endswith('-3"')
        start += len(part)


def test_head_object_by_part_number_states_the_parts_length_range_and_count(
        s3: Any, bucket: str, three_parts: list[bytes]) -> None:
    multipart_object(s3, bucket, "mp", three_parts)
    size = sum(len(p) for p in three_parts)
    head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == len(three_parts[1])
    assert head["ContentRange"] == f"bytes {PART}-{PART + len(three_parts[1]) - 1}/{size}"
    assert head["PartsCount"] == 3
    whole = s3.head_object(Bucket=bucket, Key="mp")
    assert (whole["ContentLength"], "PartsCount" in whole) == (size, False)


def test_part_one_of_a_single_part_object_is_the_whole_object(s3: Any, bucket: str) -> None:
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="single", Body=data)
    got = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert got["Body"].read() == data
    assert got["ContentRange"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert "PartsCount" not in got
    head = s3.head_object(Bucket=bucket, Key="single", PartNumber=1)
    assert (head["ContentLength"], head["ContentRange"]) == (len(data), f"bytes 0-{len(data) - 1}/{len(data)}")


def test_a_part_number_past_the_last_part_is_invalid_part_number_416(
        s3: Any, bucket: str, three_parts: list[bytes]) -> None:
    s3.put_object(Bucket=bucket, Key="single", Body=b"one part")
    multipart_object(s3, bucket, "mp", three_parts)
    for key, number in (("single", 2), ("mp", 4)):
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=bucket, Key=key, PartNumber=number)
        assert (code_of(err), status_of(err)) == ("InvalidPartNumber", 416)
        with pytest.raises(ClientError) as err:
            s3.head_object(Bucket=bucket, Key=key, PartNumber=number)
        assert status_of(err) == 416


def test_a_part_number_with_a_range_is_invalid_request(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="single", Body=b"one part")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=1, Range="bytes=0-1")
    assert (code_of(err), status_of(err)) == ("InvalidRequest", 400)


def test_a_part_number_out_of_s3s_range_is_invalid_argument(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="single", Body=b"one part")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=10_001)
    assert (code_of(err), status_of(err)) == ("InvalidArgument", 400)


def test_aws_cli_gets_one_part_of_a_multipart_object(s3_server: KmsgateServer, s3: Any, bucket: str,
                                                      three_parts: list[bytes], tmp_path: Path) -> None:
    multipart_object(s3, bucket, "mp", three_parts)
    out = tmp_path / "part3"
    answer = json.loads(aws(s3_server, tmp_path, "s3api", "get-object", "--bucket", bucket, "--key", "mp",
                            "--part-number", "3", str(out)))
    assert out.read_bytes() == three_parts[2]
    assert answer["PartsCount"] == 3
