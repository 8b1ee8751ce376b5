"""Conditional GET and HEAD through real clients: what a 304 and a 412 carry."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer
from tests.s3front.conftest import s3_endpoint

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl_head_lines(server: KmsgateServer, path: str, *args: str) -> tuple[int, dict[str, str]]:
    """Status and response headers (lower-case names) of a SigV4-signed curl request."""
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-D", "-", "--aws-sigv4", f"aws:amz:{server.region}:s3",
         "--user", f"{server.access_key_id}:{server.secret_access_key}", *args, s3_endpoint(server) + path],
        capture_output=True, text=True, timeout=30, check=True)
    lines = done.stdout.replace("\r", "").split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return status, headers


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_304_carries_the_etag_last_modified_and_cache_headers_of_the_object(
        s3_server: KmsgateServer, s3: Any, bucket: str, method: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="page.html", Body=b"<p>cached</p>", ContentType="text/html",
                        CacheControl="max-age=60", Expires="Thu, 01 Jan 2037 00:00:00 GMT")
    head = s3.head_object(Bucket=bucket, Key="page.html")
    last_modified = head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
    method_args = ["-I"] if method == "HEAD" else []
    for condition in (f"If-None-Match: {put['ETag']}", f"If-Modified-Since: {last_modified}"):
        status, headers = curl_head_lines(s3_server, f"/{bucket}/page.html", *method_args, "-H", condition)
        assert status == 304
        assert headers["etag"] == put["ETag"]
        assert headers["last-modified"] == last_modified
        assert headers["cache-control"] == "max-age=60"
        assert headers["expires"] == "Thu, 01 Jan 2037 00:00:00 GMT"
        assert headers["x-amz-request-id"]


def test_boto3_sees_the_etag_and_last_modified_of_a_304(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"revalidate me")
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as err:
            call(Bucket=bucket, Key="k", IfNoneMatch=put["ETag"])
        response = err.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 304
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert headers["etag"] == put["ETag"]
        assert headers["last-modified"] == s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"][
            "HTTPHeaders"]["last-modified"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_412_carries_no_object_headers(s3_server: KmsgateServer, s3: Any, bucket: str, method: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", CacheControl="max-age=60")
    method_args = ["-I"] if method == "HEAD" else []
    status, headers = curl_head_lines(s3_server, f"/{bucket}/k", *method_args, "-H", 'If-Match: "0000"')
    assert status == 412
    assert not {"etag", "last-modified", "cache-control", "expires"} & set(headers)
