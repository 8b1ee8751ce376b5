"""Gateway authentication against a real ``kmsgate serve``: who may call ``/v1/...`` at all.

Clients: ``http.client`` with bearer tokens, botocore's own S3 SigV4 signer, boto3's S3 client
(the gateway's object routes sit where a path-style bucket named ``objects`` would), and
``curl --aws-sigv4``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

from kmsgate.gateway.auth import MAX_HASHED_BODY_BYTES

from .conftest import ALICE, REGION, USE, AuthGateway, Identity, allow, sigv4_headers

CHALLENGE = "WWW-Authenticate"


def unique(name: str) -> str:
    return f"{name}-{os.urandom(6).hex()}"


def test_no_credentials_is_401_and_nothing_is_stored(gw: AuthGateway) -> None:
    key = unique("anon")
    for method, path in (("PUT", f"/v1/objects/{key}"), ("GET", f"/v1/objects/{key}"),
                         ("POST", "/v1/encrypt"), ("POST", "/v1/decrypt"), ("DELETE", f"/v1/objects/{key}")):
        reply = gw.send(method, path, b"data" if method in ("PUT", "POST") else b"")
        assert reply.status == 401, (method, path, reply)
        assert reply.code == "MissingAuthenticationTokenException"
        assert "Bearer" in reply.headers[CHALLENGE] and "AWS4-HMAC-SHA256" in reply.headers[CHALLENGE]
    assert not gw.stored(key)


def test_unknown_bearer_token_is_401(gw: AuthGateway) -> None:
    key = unique("badtoken")
    reply = gw.send("PUT", f"/v1/objects/{key}", b"x", {"Authorization": "Bearer " + "n" * 48})
    assert (reply.status, reply.code) == (401, "UnrecognizedClientException")
    assert CHALLENGE in reply.headers
    assert not gw.stored(key)


def test_sigv4_with_wrong_secret_is_401_invalid_signature(gw: AuthGateway) -> None:
    key = unique("badsig")
    url = f"{gw.url}/v1/objects/{key}"
    headers = sigv4_headers(ALICE, "PUT", url, b"x", secret="wrong-secret-000000000000000000000000000")
    reply = gw.send("PUT", f"/v1/objects/{key}", b"x", headers)
    assert (reply.status, reply.code) == (401, "InvalidSignatureException")
    assert not gw.stored(key)


def test_sigv4_with_unknown_access_key_is_401(gw: AuthGateway) -> None:
    stranger = Identity("x", "arn:aws:iam::111122223333:user/x", "AKIANOBODY0000000001", "s" * 40, "t" * 40)
    reply = gw.send("GET", "/v1/objects/any", b"", sigv4_headers(stranger, "GET", f"{gw.url}/v1/objects/any", b""))
    assert (reply.status, reply.code) == (401, "UnrecognizedClientException")


def test_sigv4_signature_for_another_path_is_refused(gw: AuthGateway) -> None:
    headers = sigv4_headers(gw.root, "GET", f"{gw.url}/v1/objects/one", b"")
    reply = gw.send("GET", "/v1/objects/other", b"", headers)
    assert (reply.status, reply.code) == (401, "InvalidSignatureException")


def test_sigv4_put_and_get_signed_by_botocore(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key, data = unique("signed"), os.urandom(3000)
    put = gw.as_(ALICE, "PUT", f"/v1/objects/{key}", data, key_id=key_arn, context={"app": "a"}, sigv4=True)
    assert put.status == 201, put
    assert put.json()["kms_key_id"] == key_arn
    got = gw.as_(ALICE, "GET", f"/v1/objects/{key}", sigv4=True)
    assert (got.status, got.body) == (200, data)


def test_sigv4_unsigned_payload_is_accepted(gw: AuthGateway) -> None:
    key, data = unique("unsigned"), b"unsigned payload body"
    path = f"/v1/objects/{key}"
    headers = sigv4_headers(gw.root, "PUT", gw.url + path, data, sign_payload=False)
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert gw.send("PUT", path, data, headers).status == 201
    assert gw.as_(gw.root, "GET", path).body == data


def test_body_other_than_the_signed_one_fails_and_stores_nothing(gw: AuthGateway) -> None:
    key = unique("swapped")
    path = f"/v1/objects/{key}"
    headers = sigv4_headers(gw.root, "PUT", gw.url + path, b"the body that was signed")
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(b"the body that was signed").hexdigest()
    reply = gw.send("PUT", path, b"a different body!!!!!!!!", headers)
    assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch")
    assert not gw.stored(key)


def test_encrypt_stream_with_swapped_body_never_completes(gw: AuthGateway) -> None:
    signed, sent = os.urandom(200_000), os.urandom(200_000)
    headers = sigv4_headers(gw.root, "POST", gw.url + "/v1/encrypt", signed)
    try:
        reply = gw.send("POST", "/v1/encrypt", sent, headers)
    except (http.client.HTTPException, ConnectionError):
        return  # the response was cut off before its end: no complete message
    assert reply.status == 400 and reply.code == "XAmzContentSHA256Mismatch"


def plain_sigv4_headers(who: Identity, method: str, url: str, body: bytes) -> dict[str, str]:
    """Signed as older ``curl --aws-sigv4`` does: the body's hash is signed but not sent as a header."""
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(Credentials(who.access_key_id, who.secret_access_key), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def test_signature_over_an_undeclared_body_hash(gw: AuthGateway) -> None:
    key = unique("undeclared")
    path = f"/v1/objects/{key}"
    small = os.urandom(10_000)
    headers = plain_sigv4_headers(gw.root, "PUT", gw.url + path, small)
    assert "X-Amz-Content-SHA256" not in headers
    assert gw.send("PUT", path, small, headers).status == 201
    assert gw.as_(gw.root, "GET", path).body == small
    swapped = gw.send("PUT", path + "-swapped", os.urandom(10_000), headers)
    assert (swapped.status, swapped.code) == (401, "InvalidSignatureException")
    # Too large to read whole before verifying: refused, with a pointer to the header.
    large = os.urandom(MAX_HASHED_BODY_BYTES + 1)
    refused = gw.send("PUT", path + "-large", large, plain_sigv4_headers(gw.root, "PUT", gw.url + path + "-large", large))
    assert (refused.status, refused.code) == (401, "IncompleteSignatureException")
    assert "x-amz-content-sha256" in refused.json()["message"]
    assert not gw.stored(key + "-swapped") and not gw.stored(key + "-large")


def s3_client(gw: AuthGateway, who: Identity) -> object:
    config = BotoConfig(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                        response_checksum_validation="when_required", retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=gw.url + "/v1", region_name=REGION, config=config,
                        aws_access_key_id=who.access_key_id, aws_secret_access_key=who.secret_access_key)


def test_boto3_s3_client_reads_objects(gw: AuthGateway) -> None:
    # PutObject is not used: its SigV4 request is accepted, but boto3 expects S3's XML reply.
    key, data = unique("boto3"), os.urandom(5000)
    assert gw.as_(gw.root, "PUT", f"/v1/objects/{key}", data).status == 201
    client = s3_client(gw, gw.root)
    assert client.get_object(Bucket="objects", Key=key)["Body"].read() == data  # type: ignore[attr-defined]
    ranged = client.get_object(Bucket="objects", Key=key, Range="bytes=10-19")  # type: ignore[attr-defined]
    assert ranged["Body"].read() == data[10:20]
    assert client.head_object(Bucket="objects", Key=key)["ContentLength"] == len(data)  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_aws_sigv4_put_and_get(gw: AuthGateway, tmp_path) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key = unique("curl")
    url = f"{gw.url}/v1/objects/{key}"
    base = ["curl", "-sS", "--fail-with-body", "--aws-sigv4", f"aws:amz:{REGION}:s3",
            "--user", f"{ALICE.access_key_id}:{ALICE.secret_access_key}"]
    put = subprocess.run([*base, "-X", "PUT", "-H", f"x-amz-server-side-encryption-aws-kms-key-id: {key_arn}",
                          "--data-binary", "hello from curl", url], capture_output=True, text=True, timeout=60)
    assert put.returncode == 0, (put.stdout, put.stderr)
    get = subprocess.run([*base, url], capture_output=True, timeout=60)
    assert (get.returncode, get.stdout) == (0, b"hello from curl"), get.stderr
    # A file upload declared UNSIGNED-PAYLOAD streams without being read first.
    path = tmp_path / "upload.bin"
    path.write_bytes(os.urandom(2 * 1024 * 1024))
    upload = subprocess.run([*base, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                             "-H", f"x-amz-server-side-encryption-aws-kms-key-id: {key_arn}",
                             "-T", str(path), url + "-big"], capture_output=True, text=True, timeout=60)
    assert upload.returncode == 0, (upload.stdout, upload.stderr)
    assert gw.as_(ALICE, "GET", f"/v1/objects/{key}-big").body == path.read_bytes()


def test_health_readiness_and_metrics_stay_open(gw: AuthGateway) -> None:
    assert gw.send("GET", "/healthz").status == 200
    assert gw.send("GET", "/readyz").status == 200
    metrics = gw.send("GET", "/metrics")
    assert metrics.status == 200 and b"kmsgate_" in metrics.body


def test_insecure_no_auth_lets_anyone_act_as_root_on_loopback(tmp_path) -> None:
    from tests.conftest import start_server

    server = start_server(tmp_path / "data", "--insecure-no-auth")
    try:
        open_gateway = AuthGateway(server)
        key = unique("noauth")
        assert open_gateway.send("PUT", f"/v1/objects/{key}", b"open").status == 201
        assert open_gateway.send("GET", f"/v1/objects/{key}").body == b"open"
    finally:
        server.stop()
