"""SigV4 verification of requests from real clients over loopback: boto3, the aws CLI and curl."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .conftest import ALICE_AKID, ALICE_ARN, ALICE_SECRET, BOB_ARN, BOB_AKID, BOB_SECRET, REGION

AWS_CLI = [sys.executable, "-m", "awscli"]


def kms_client(server, akid=ALICE_AKID, secret=ALICE_SECRET, region=REGION):
    return boto3.client(
        "kms",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def test_boto3_kms_request_is_authenticated_as_its_principal(verifying_server):
    kms_client(verifying_server).list_keys()
    kms_client(verifying_server, BOB_AKID, BOB_SECRET).encrypt(KeyId="alias/a", Plaintext=b"x")
    assert [c.arn for c in verifying_server.callers] == [ALICE_ARN, BOB_ARN]
    assert verifying_server.callers[0].source_ip == "127.0.0.1"


def test_boto3_wrong_secret_gets_invalid_signature(verifying_server):
    with pytest.raises(ClientError) as info:
        kms_client(verifying_server, secret="z" * 40).list_keys()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_boto3_unknown_key_gets_unrecognized_client(verifying_server):
    with pytest.raises(ClientError) as info:
        kms_client(verifying_server, akid="AKIANOBODY0000000000").list_keys()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_boto3_wrong_region_gets_invalid_signature(verifying_server):
    with pytest.raises(ClientError) as info:
        kms_client(verifying_server, region="eu-west-1").list_keys()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_boto3_with_skewed_clock_gets_signature_expired(verifying_server, clock):
    clock.offset = 3600
    with pytest.raises(ClientError) as info:
        kms_client(verifying_server).list_keys()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["Error"]["Message"].startswith("Signature expired")


def test_boto3_s3_put_with_signed_payload(verifying_server):
    s3 = boto3.client(
        "s3", endpoint_url=verifying_server.url + "/v1", region_name=REGION,
        aws_access_key_id=ALICE_AKID, aws_secret_access_key=ALICE_SECRET,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.put_object(Bucket="objects", Key="dir/a b.txt", Body=b"payload")
    assert verifying_server.callers[-1].arn == ALICE_ARN


def test_boto3_presigned_url_is_verified(verifying_server, clock):
    import urllib.error
    import urllib.request

    s3 = boto3.client(
        "s3", endpoint_url=verifying_server.url + "/v1", region_name=REGION,
        aws_access_key_id=ALICE_AKID, aws_secret_access_key=ALICE_SECRET,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "objects", "Key": "dir/a b+\u1234.txt"},
                                    ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200 and response.headers["X-Caller"] == ALICE_ARN
    with pytest.raises(urllib.error.HTTPError) as info:  # another key, same signature
        urllib.request.urlopen(url.replace("a%20b", "a%20c"), timeout=10)
    assert json.loads(info.value.read())["__type"] == "InvalidSignatureException"
    clock.offset = 61
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert json.loads(info.value.read())["__type"] == "AccessDeniedException"


def aws(env, *args):
    return subprocess.run([*AWS_CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def test_aws_cli_is_authenticated(verifying_server, aws_env):
    done = aws(aws_env, "--endpoint-url", verifying_server.url, "kms", "list-keys")
    assert done.returncode == 0, done.stderr
    assert verifying_server.callers[-1].arn == ALICE_ARN


def test_aws_cli_wrong_secret_is_refused(verifying_server, aws_env):
    aws_env["AWS_SECRET_ACCESS_KEY"] = "q" * 40
    done = aws(aws_env, "--endpoint-url", verifying_server.url, "kms", "list-keys")
    assert done.returncode != 0
    assert "InvalidSignatureException" in done.stderr
    assert not verifying_server.callers


curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def run_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=30)


@curl
def test_curl_aws_sigv4_kms_request(verifying_server):
    done = run_curl(
        "--aws-sigv4", f"aws:amz:{REGION}:kms", "--user", f"{ALICE_AKID}:{ALICE_SECRET}",
        "-H", "X-Amz-Target: TrentService.ListKeys", "-H", "Content-Type: application/x-amz-json-1.1",
        "-d", "{}", verifying_server.url + "/",
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {}, done.stdout + done.stderr
    assert verifying_server.callers[-1].arn == ALICE_ARN


@curl
def test_curl_aws_sigv4_s3_style_put(verifying_server):
    # The query is already sorted: curl before 8.x signs it unsorted, which AWS refuses too.
    done = run_curl(
        "--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{ALICE_AKID}:{ALICE_SECRET}",
        "-X", "PUT", "--data-binary", "hello", verifying_server.url + "/v1/objects/a%20b?a=2&x=a%2Fb",
    )
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    assert verifying_server.callers[-1].arn == ALICE_ARN


@curl
def test_curl_wrong_secret_is_refused(verifying_server):
    done = run_curl(
        "--aws-sigv4", f"aws:amz:{REGION}:kms", "--user", f"{ALICE_AKID}:{'w' * 40}",
        "-H", "X-Amz-Target: TrentService.ListKeys", "-d", "{}", verifying_server.url + "/",
    )
    assert json.loads(done.stdout)["__type"] == "InvalidSignatureException"
    assert not verifying_server.callers


def test_unsigned_request_gets_missing_token(verifying_server):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(verifying_server.url + "/", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert json.loads(info.value.read())["__type"] == "MissingAuthenticationTokenException"
