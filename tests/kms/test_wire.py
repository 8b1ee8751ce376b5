"""The AWS JSON 1.1 wire protocol over raw, SigV4-signed HTTP: protocol errors, and no client input yields a 500."""

from __future__ import annotations

import base64
import http.client
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from kmsgate.web import awsjson
from kmsgate.web.kms_api import MAX_REQUEST_BYTES

from .helpers import signed_headers, signed_post

JSON = "application/x-amz-json-1.1"


@pytest.fixture(scope="module")
def conn(kmsgate_server: Any) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", kmsgate_server.port, timeout=30)
    yield connection
    connection.close()


def test_a_valid_request(kmsgate_server: Any) -> None:
    status, document = signed_post(kmsgate_server, b"{}", "TrentService.ListKeys")
    assert status == 200 and isinstance(document["Keys"], list)
    status, document = signed_post(kmsgate_server, b"", "TrentService.ListKeys")
    assert status == 200


@pytest.mark.parametrize("target", ["TrentService.FlyToTheMoon", "OtherService.ListKeys", "", None])
def test_unknown_operation(kmsgate_server: Any, target: str | None) -> None:
    status, document = signed_post(kmsgate_server, b"{}", target)
    assert status == 400
    assert document["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b"[1, 2", b'{"KeyId": }', b"\xff\xfe\x00", b'{"Limit": 1}garbage', b"{" * 2000],
)
def test_malformed_json_is_a_serialization_exception(kmsgate_server: Any, body: bytes) -> None:
    status, document = signed_post(kmsgate_server, body, "TrentService.ListKeys")
    assert status == 400
    assert document["__type"] == "SerializationException"


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("TrentService.ListKeys", b"[]"),
        ("TrentService.ListKeys", b'"text"'),
        ("TrentService.ListKeys", b'{"Limit": "ten"}'),
        ("TrentService.Encrypt", b'{"KeyId": "k", "Plaintext": "***not base64***"}'),
        ("TrentService.Encrypt", b'{"KeyId": 5, "Plaintext": "eA=="}'),
        ("TrentService.Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "EncryptionContext": {"a": 1}}'),
        ("TrentService.Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "EncryptionContext": ["a"]}'),
        ("TrentService.ListKeys", b'{"Limit": true}'),
    ],
)
def test_wrong_json_types_are_serialization_exceptions(kmsgate_server: Any, target: str, body: bytes) -> None:
    status, document = signed_post(kmsgate_server, body, target)
    assert status == 400
    assert document["__type"] == "SerializationException"


def test_error_body_shape_and_request_id(kmsgate_server: Any) -> None:
    body = json.dumps({"KeyId": "alias/does-not-exist"}).encode()
    status, document = signed_post(kmsgate_server, body, "TrentService.DescribeKey")
    assert status == 400
    assert set(document) == {"__type", "message"}
    assert document["__type"] == "NotFoundException"


def test_oversized_body_is_refused(kmsgate_server: Any) -> None:
    body = json.dumps({"KeyId": "k", "Plaintext": base64.b64encode(b"x" * 300_000).decode()}).encode()
    status, document = signed_post(kmsgate_server, body, "TrentService.Encrypt")
    assert status in (400, 413)
    assert status != 500


# -- fuzzing: a bounded, seeded generator of malformed requests for every operation -----------------

FUZZ_CASES_PER_OPERATION = 300
OPERATIONS = sorted(awsjson.service_model().operation_names)


def _junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 7, 30, 1024, 1025, 2**31, -(2**63), 2**63 - 1, 4097])
    if choice == 3:
        return rng.choice([0.5, -1e308, 1e308, 1e-300])
    if choice == 4:
        return rng.choice(["", "a", "alias/", "alias/aws/x", "arn:aws:kms", "arn:aws:kms:us-east-1:111122223333:key/x",
                           "arn:::::", "é" * 3, "\u0000", "x" * 5000, "SYMMETRIC_DEFAULT", "AES_256", "RSA_2048"])
    if choice == 5:
        return base64.b64encode(rng.randbytes(rng.choice([0, 1, 16, 64, 65, 100, 4097, 6145]))).decode()
    if choice == 6:
        return "=" * rng.randrange(1, 5) + "AAAA"
    if choice == 7 and depth < 3:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if choice == 8 and depth < 3:
        return {rng.choice(["a", "", "TagKey", "TagValue", "k" * 300]): _junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
    if choice == 9:
        return rng.choice(["00000000-0000-0000-0000-000000000000", "alias/fuzz-missing"])
    return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(0, 20)))


def _fuzz_bodies(operation: str, valid_refs: list[str], blob: str, seed: int) -> Iterator[bytes]:
    rng = random.Random(f"{operation}:{seed}")
    shape = awsjson.operation(operation).input_shape
    members = list(shape.members) if shape is not None else []
    for _ in range(FUZZ_CASES_PER_OPERATION):
        kind = rng.randrange(10)
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 64))
            continue
        if kind == 1:
            yield json.dumps(_junk(rng)).encode()
            continue
        document: dict[str, Any] = {}
        for member in members:
            roll = rng.random()
            if roll < 0.3:
                continue
            if member in ("KeyId", "TargetKeyId", "DestinationKeyId", "SourceKeyId") and roll < 0.7:
                document[member] = rng.choice(valid_refs)
            elif member == "CiphertextBlob" and roll < 0.6:
                document[member] = blob
            else:
                document[member] = _junk(rng)
        if rng.random() < 0.2:
            document["UnknownMember"] = _junk(rng)
        yield json.dumps(document).encode()


@pytest.fixture(scope="module")
def fuzz_target(kmsgate_server: Any) -> tuple[list[str], str]:
    """A dedicated key (and alias) for the fuzzer, so it cannot disturb other tests' keys."""
    kms = kmsgate_server.kms_client()
    key = kms.create_key(Description="fuzz")["KeyMetadata"]
    kms.create_alias(AliasName=f"alias/fuzz-{key['KeyId']}", TargetKeyId=key["KeyId"])
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"fuzz")["CiphertextBlob"]
    refs = [key["KeyId"], key["Arn"], f"alias/fuzz-{key['KeyId']}"]
    return refs, base64.b64encode(blob).decode()


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_client_input_yields_a_500(
    kmsgate_server: Any, conn: http.client.HTTPConnection, fuzz_target: tuple[list[str], str], operation: str
) -> None:
    refs, blob = fuzz_target
    for body in _fuzz_bodies(operation, refs, blob, seed=1):
        status, document = signed_post(kmsgate_server, body, f"TrentService.{operation}", conn=conn)
        assert status < 500, (operation, body[:300], document)
        if status != 200:
            assert status == 400, (operation, body[:300], status)
            assert document.get("__type") and "message" in document, (operation, body[:300], document)


def test_a_body_that_arrives_in_several_reads_is_read_whole(kmsgate_server: Any) -> None:
    # A 4 KiB plaintext makes a body of about 5.5 KB: more than one packet on a real network.
    plaintext = bytes(range(256)) * 16
    body = json.dumps({"KeyId": "alias/kmsgate-default",
                       "Plaintext": base64.b64encode(plaintext).decode("ascii")}).encode()
    status, document = signed_post(kmsgate_server, body, "TrentService.Encrypt", pieces=3)
    assert status == 200, document
    blob = document["CiphertextBlob"]
    status, document = signed_post(kmsgate_server, json.dumps({"CiphertextBlob": blob}).encode(),
                                   "TrentService.Decrypt", pieces=4)
    assert status == 200, document
    assert base64.b64decode(document["Plaintext"]) == plaintext


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_whatever_its_framing(kmsgate_server: Any, declared: bool) -> None:
    body = b'{"KeyId": "' + b"k" * (MAX_REQUEST_BYTES + 10) + b'"}'
    connection = http.client.HTTPConnection("127.0.0.1", kmsgate_server.port, timeout=30)
    # Signed: an unsigned request is refused from its headers, before any body is read.
    headers = signed_headers(kmsgate_server, body, {"Content-Type": JSON, "X-Amz-Target": "TrentService.DescribeKey"})
    try:
        if declared:
            connection.request("POST", "/", body=body, headers=headers)
        else:  # no Content-Length: the server only learns the size as the chunks arrive
            step = 64 * 1024
            connection.request("POST", "/", body=iter([body[i:i + step] for i in range(0, len(body), step)]),
                               headers=headers, encode_chunked=True)
        response = connection.getresponse()
        document = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400
    assert document["__type"] == "ValidationException"
    assert "larger than" in document["message"]
