"""Chunk-signed uploads (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, aws-chunked) sent raw, signed by the test.

The request's headers are signed with botocore's S3 signer; the chunks with the chunk-signature
chain computed here, so a test can also send a chain that does not verify.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import zlib
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer
from kmsgate.auth.sigv4_canonical import EMPTY_SHA256, derive_signing_key, signature
from tests.s3front.conftest import s3_endpoint

STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
CHUNK = 64 * 1024


class _StreamingSigner(S3SigV4Auth):
    def payload(self, request: Any) -> str:
        return STREAMING


def _signed_headers(server: KmsgateServer, path: str, decoded_length: int, extra: dict[str, str]) -> dict[str, str]:
    url = s3_endpoint(server) + path
    request = AWSRequest(method="PUT", url=url, headers={
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded_length), **extra})
    _StreamingSigner(Credentials(server.access_key_id, server.secret_access_key), "s3", server.region).add_auth(request)
    return dict(request.headers.items())


def _chunked_body(server: KmsgateServer, headers: dict[str, str], data: bytes, *, tamper: bool = False) -> bytes:
    stamp = headers["X-Amz-Date"]
    scope = f"{stamp[:8]}/{server.region}/s3/aws4_request"
    key = derive_signing_key(server.secret_access_key, stamp[:8], server.region, "s3")
    previous = headers["Authorization"].rsplit("Signature=", 1)[1]
    out = bytearray()
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] + [b""]
    for piece in pieces:
        text = f"AWS4-HMAC-SHA256-PAYLOAD\n{stamp}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{hashlib.sha256(piece).hexdigest()}"
        previous = signature(key, text)
        sent = bytes([piece[0] ^ 1]) + piece[1:] if tamper and piece else piece
        out += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    return bytes(out)


def _put(server: KmsgateServer, path: str, data: bytes, *, tamper: bool = False,
         extra: dict[str, str] | None = None) -> tuple[int, bytes]:
    headers = _signed_headers(server, path, len(data), extra or {})
    body = _chunked_body(server, headers, data, tamper=tamper)
    port = int(s3_endpoint(server).rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("PUT", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_chunk_signed_upload_is_decoded_into_the_plain_object(s3_server: KmsgateServer, s3: Any) -> None:
    data = os.urandom(200_000)
    status, _ = _put(s3_server, "/kmsgate/chunked/plain.bin", data)
    assert status == 200
    got = s3.get_object(Bucket="kmsgate", Key="chunked/plain.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_a_tampered_chunk_stores_nothing(s3_server: KmsgateServer, s3: Any) -> None:
    status, body = _put(s3_server, "/kmsgate/chunked/tampered.bin", os.urandom(100_000), tamper=True)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    assert "Contents" not in s3.list_objects_v2(Bucket="kmsgate", Prefix="chunked/tampered")


def test_a_wrong_checksum_is_bad_digest_and_stores_nothing(s3_server: KmsgateServer, s3: Any) -> None:
    data = os.urandom(70_000)
    wrong = base64.b64encode(zlib.crc32(data + b"!").to_bytes(4, "big")).decode()
    status, body = _put(s3_server, "/kmsgate/chunked/bad.bin", data, extra={"x-amz-checksum-crc32": wrong})
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    assert "Contents" not in s3.list_objects_v2(Bucket="kmsgate", Prefix="chunked/bad")
    right = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    status, _ = _put(s3_server, "/kmsgate/chunked/good.bin", data, extra={"x-amz-checksum-crc32": right})
    assert status == 200


def test_a_wrong_content_md5_is_bad_digest_and_stores_nothing(s3: Any) -> None:
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="kmsgate", Key="md5/bad", Body=b"the body", ContentMD5=wrong)
    assert err.value.response["Error"]["Code"] == "BadDigest"
    assert "Contents" not in s3.list_objects_v2(Bucket="kmsgate", Prefix="md5/")
