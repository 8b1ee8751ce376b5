"""What boto3 itself sends and asks for: response header overrides and trailing checksums.

botocore ≥ 1.36 sends a PutObject body as ``aws-chunked`` with the checksum in a trailer
(``STREAMING-UNSIGNED-PAYLOAD-TRAILER``) by default, but only over https; on the plain-http
loopback it puts the checksum in a header instead. ``trailing_checksums`` moves the checksum
to the trailer before botocore applies it, which is exactly the decision botocore takes on
https: the request that reaches kmsgate is the one botocore sends to S3.

botocore never chunk-signs a body (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: the Java and Go
SDKs do); ``test_s3_chunked`` signs such requests per the AWS spec with botocore's signer
for the headers.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.request
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer
from tests.s3front.conftest import s3_client

OVERRIDES = {
    "ResponseContentType": "text/x-override",
    "ResponseContentDisposition": 'attachment; filename="report.txt"',
    "ResponseCacheControl": "no-store",
    "ResponseExpires": "Wed, 21 Oct 2037 07:28:00 GMT",
    "ResponseContentLanguage": "fr-CA",
    "ResponseContentEncoding": "identity",
}
OVERRIDDEN_HEADERS = {
    "content-type": "text/x-override",
    "content-disposition": 'attachment; filename="report.txt"',
    "cache-control": "no-store",
    "expires": "Wed, 21 Oct 2037 07:28:00 GMT",
    "content-language": "fr-CA",
    "content-encoding": "identity",
}


def test_response_header_overrides_replace_the_stored_headers_on_get(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="doc", Body=b"override me", ContentType="text/plain",
                  CacheControl="max-age=60", ContentLanguage="en")
    got = s3.get_object(Bucket=bucket, Key="doc", **OVERRIDES)
    assert got["Body"].read() == b"override me"
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert {name: headers.get(name) for name in OVERRIDDEN_HEADERS} == OVERRIDDEN_HEADERS
    plain = s3.get_object(Bucket=bucket, Key="doc")["ResponseMetadata"]["HTTPHeaders"]
    assert (plain["content-type"], plain["cache-control"], plain["content-language"]) == (
        "text/plain", "max-age=60", "en")


def test_response_header_overrides_apply_to_a_presigned_get(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="doc", Body=b"presigned override", ContentType="text/plain")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "doc", **OVERRIDES},
                                    ExpiresIn=600)
    assert "response-content-disposition=" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"presigned override"
        headers = {name.lower(): value for name, value in response.headers.items()}
    assert {name: headers.get(name) for name in OVERRIDDEN_HEADERS} == OVERRIDDEN_HEADERS


def trailing_checksums(client: Any, *, corrupt: bool = False) -> list[dict[str, str]]:
    """Make ``client`` send PutObject's checksum in an aws-chunked trailer, as botocore does on
    https; with ``corrupt``, the trailer's value is replaced by another CRC32. Returns the
    headers of each request sent."""
    sent: list[dict[str, str]] = []

    def to_trailer(params: dict[str, Any], **_: Any) -> None:
        algorithm = params["context"].get("checksum", {}).get("request_algorithm")
        if isinstance(algorithm, dict):
            algorithm["in"] = "trailer"

    def record(request: Any, **_: Any) -> None:
        sent.append({name.lower(): value.decode() if isinstance(value, bytes) else value
                     for name, value in request.headers.items()})
        if corrupt:
            body = request.body.read()
            head, _, value = body.rpartition(b"x-amz-checksum-crc32:")
            wrong = base64.b64encode(zlib.crc32(b"not the body").to_bytes(4, "big"))
            request.body = head + b"x-amz-checksum-crc32:" + wrong + value[len(value.split(b"\r\n")[0]):]

    client.meta.events.register("before-call.s3.PutObject", to_trailer)
    client.meta.events.register("before-send.s3.PutObject", record)
    return sent


def test_a_trailing_checksum_as_botocore_sends_it_is_checked_and_the_object_stored(
        s3_server: KmsgateServer, bucket: str) -> None:
    client = s3_client(s3_server, request_checksum_calculation="when_supported")
    sent = trailing_checksums(client)
    data = os.urandom(300_000)
    client.put_object(Bucket=bucket, Key="trailer.bin", Body=data)
    headers = sent[0]
    assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert headers["content-encoding"] == "aws-chunked"
    got = client.get_object(Bucket=bucket, Key="trailer.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_a_wrong_trailing_checksum_is_bad_digest_and_stores_nothing(
        s3_server: KmsgateServer, s3: Any, bucket: str) -> None:
    client = s3_client(s3_server, request_checksum_calculation="when_supported")
    sent = trailing_checksums(client, corrupt=True)
    with pytest.raises(ClientError) as err:
        client.put_object(Bucket=bucket, Key="bad-trailer.bin", Body=os.urandom(100_000))
    assert err.value.response["Error"]["Code"] == "BadDigest"
    assert sent[0]["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
