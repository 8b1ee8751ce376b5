"""Every KMS operation, fed generated JSON over loopback: never a 500, always the AWS error shape.

Requests are built from botocore's model of each operation's input: each member is left out, given a
value of its own type (any size, any unicode) or of any other JSON type, nested at random; unknown
members are added; some bodies are not JSON at all. The server runs with ``--insecure-no-auth`` (see
``open_server``). Every answer must be a 200 or a 4xx whose body is exactly ``{"__type", "message"}``.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape
from hypothesis import example, given
from hypothesis import strategies as st

from kmsgate.web import awsjson
from tests.conftest import KmsgateServer

from .conftest import CORPUS, fuzz_settings

OPERATIONS = sorted(awsjson.service_model().operation_names)
KEY_REFERENCE_MEMBERS = {"KeyId", "TargetKeyId", "DestinationKeyId", "SourceKeyId"}

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
any_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                        st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
awkward_text = st.one_of(
    st.text(max_size=64),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=9000),
    st.sampled_from(["", "alias/", "alias/aws/x", "arn:aws:kms:us-east-1:111122223333:key/",
                     "arn:aws:kms:us-east-1:111122223333:alias/x", "arn:::::", "\u0000", "\ud7ff\ue000",
                     "00000000-0000-0000-0000-000000000000", "SYMMETRIC_DEFAULT", "AES_256", "RSA_2048",
                     "HMAC_256", "ECC_NIST_P256", "ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"]),
)


def _blob() -> st.SearchStrategy[Any]:
    sizes = st.sampled_from([0, 1, 16, 32, 64, 65, 1024, 4096, 4097, 6145])
    return st.one_of(
        sizes.flatmap(lambda n: st.binary(min_size=n, max_size=n)).map(lambda b: base64.b64encode(b).decode()),
        st.text(alphabet="ABCD=+/_-\n ", max_size=20),
    )


def _value(shape: Shape, refs: list[str], blob: str, depth: int = 0) -> st.SearchStrategy[Any]:
    """A value of ``shape``'s own type (often invalid within it), or now and then any JSON at all."""
    if depth > 3:
        return any_json
    kind = shape.type_name
    own: st.SearchStrategy[Any]
    if isinstance(shape, StructureShape):
        own = _document(shape, refs, blob, depth + 1)
    elif isinstance(shape, ListShape):
        own = st.lists(_value(shape.member, refs, blob, depth + 1), max_size=5)
    elif isinstance(shape, MapShape):
        own = st.dictionaries(awkward_text, _value(shape.value, refs, blob, depth + 1), max_size=5)
    elif kind == "string":
        enum = shape.enum or []
        own = st.sampled_from(enum) | awkward_text if enum else awkward_text
    elif kind == "blob":
        own = st.just(blob) | _blob()
    elif kind in ("integer", "long"):
        own = st.integers(min_value=-(2**64), max_value=2**64) | st.sampled_from([0, 1, 7, 1000, 1001, 1024, 4097])
    elif kind == "boolean":
        own = st.booleans()
    elif kind == "timestamp":
        own = st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
    else:
        own = any_json
    return st.one_of(own, own, own, any_json)


def _document(shape: StructureShape, refs: list[str], blob: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    members: dict[str, st.SearchStrategy[Any]] = {}
    for name, member in shape.members.items():
        value = _value(member, refs, blob, depth)
        if name in KEY_REFERENCE_MEMBERS:
            value = st.sampled_from(refs) | value
        members[name] = value
    extra = st.dictionaries(st.text(max_size=20), any_json, max_size=2)
    return st.fixed_dictionaries({}, optional=members).flatmap(
        lambda document: extra.map(lambda more: {**more, **document}))


def _bodies(operation: str, refs: list[str], blob: str) -> st.SearchStrategy[bytes]:
    shape = awsjson.operation(operation).input_shape
    documents = _document(shape, refs, blob) if shape is not None else st.just({})
    encoded = documents.map(lambda document: json.dumps(document).encode())
    return st.one_of(
        encoded, encoded, encoded, encoded,
        any_json.map(lambda document: json.dumps(document).encode()),
        st.binary(max_size=200),
        encoded.flatmap(lambda body: st.integers(0, max(0, len(body) - 1)).map(lambda cut: body[:cut])),
    )


def post(connection: http.client.HTTPConnection, target: str, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", "/", body=body, headers={"Content-Type": "application/x-amz-json-1.1",
                                                        "X-Amz-Target": target})
    response = connection.getresponse()
    return response.status, response.read()


def assert_aws_answer(status: int, body: bytes, sent: bytes) -> None:
    """A 200, or a 4xx in the AWS JSON error shape; never a 5xx, a traceback or an echo of a secret."""
    assert status < 500, (status, sent[:300], body[:300])
    if status == 200:
        return
    assert 400 <= status < 500, (status, sent[:300], body[:300])
    document = json.loads(body)
    assert set(document) == {"__type", "message"}, (sent[:300], document)
    assert isinstance(document["__type"], str) and document["__type"], document
    assert isinstance(document["message"], str), document
    assert "Traceback" not in document["message"], document


@pytest.fixture(scope="module")
def connection(open_server: KmsgateServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", open_server.port, timeout=60)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def targets(open_server: KmsgateServer, connection: http.client.HTTPConnection) -> tuple[list[str], str]:
    """A key of the fuzzer's own (by id, ARN and alias), and a ciphertext blob under it."""
    status, body = post(connection, "TrentService.CreateKey", b'{"Description": "fuzz"}')
    assert status == 200, body
    key = json.loads(body)["KeyMetadata"]
    alias = f"alias/fuzz-{key['KeyId']}"
    status, body = post(connection, "TrentService.CreateAlias",
                        json.dumps({"AliasName": alias, "TargetKeyId": key["KeyId"]}).encode())
    assert status == 200, body
    status, body = post(connection, "TrentService.Encrypt",
                        json.dumps({"KeyId": key["KeyId"], "Plaintext": "ZnV6eg=="}).encode())
    assert status == 200, body
    return [key["KeyId"], key["Arn"], alias, "alias/kmsgate-default"], json.loads(body)["CiphertextBlob"]


def _corpus() -> list[tuple[str, bytes]]:
    """The committed seed corpus: one file per request, ``<Operation>.<name>.json``."""
    return [(path.name.split(".")[0], path.read_bytes()) for path in sorted((CORPUS / "kms").glob("*.json"))]


@pytest.mark.parametrize(("operation", "body"), _corpus(), ids=[name for name, _ in _corpus()])
def test_the_seed_corpus_gets_an_aws_answer(connection: http.client.HTTPConnection, operation: str,
                                            body: bytes) -> None:
    status, answer = post(connection, f"TrentService.{operation}", body)
    assert_aws_answer(status, answer, body)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_generated_request_gets_a_500_or_another_error_shape(
    connection: http.client.HTTPConnection, targets: tuple[list[str], str], operation: str
) -> None:
    refs, blob = targets

    @fuzz_settings(scale=1)
    @given(body=_bodies(operation, refs, blob))
    @example(body=b"")
    @example(body=b"{}")
    @example(body=b"null")
    @example(body=b'{"KeyId": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    def run(body: bytes) -> None:
        status, answer = post(connection, f"TrentService.{operation}", body)
        assert_aws_answer(status, answer, body)

    run()


AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=AKIAKMSGATETEST00001/20150830/us-east-1/kms/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "a" * 64)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


@st.composite
def authorizations(draw: st.DrawFn) -> str:
    value = draw(st.sampled_from([AUTHORIZATION, ""]) | header_text)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(value)))
        value = value[:position] + draw(st.sampled_from([",", "=", "/", " ", ";", "Credential=", "a" * 2000,
                                                         "SignedHeaders=", "Signature="])) + value[position + 1:]
    return value  # under the HTTP parser's 8 KB field limit: a longer one is test_a_100_KB_header_gets_a_400


@pytest.fixture(scope="module")
def signed_connection(kmsgate_server: KmsgateServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", kmsgate_server.port, timeout=60)
    yield connection
    connection.close()


@fuzz_settings(scale=20)
@given(authorization=authorizations(), date=st.sampled_from(["20150830T123600Z", "", "not a date"]) | header_text,
       query=st.sampled_from(["", "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Credential=%ZZ&X-Amz-Expires=-1"])
       | header_text.map(lambda text: text.replace(" ", "%20").replace("#", "%23")))
@example(authorization=AUTHORIZATION, date="20150830T123600Z", query="")
def test_no_generated_signature_gets_a_500_or_another_error_shape(
    signed_connection: http.client.HTTPConnection, authorization: str, date: str, query: str
) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys",
               "Authorization": authorization, "X-Amz-Date": date}
    signed_connection.request("POST", "/?" + query if query else "/", body=b"{}", headers=headers)
    response = signed_connection.getresponse()
    answer = response.read()
    assert_aws_answer(response.status, answer, f"{authorization!r} {date!r} {query!r}".encode())
    assert response.status != 200


@pytest.mark.parametrize("server", ["open_server", "kmsgate_server"])
@pytest.mark.parametrize("target", [b"TrentService.Verfi\x8a\x9c", b"TrentService.ListKeys\xff"])
def test_an_x_amz_target_that_is_not_utf8_gets_an_aws_answer(request: pytest.FixtureRequest, server: str,
                                                              target: bytes) -> None:
    """Found by the atheris ``kms_json`` target (``corpus/kms_json/regression-target-not-utf8.bin``):
    aiohttp hands such bytes over surrogate-escaped, and the target, quoted in the error message and
    the audit entry, could not be encoded as JSON: a 500 in plain text. Unauthenticated (the signed
    server) the request is refused, and audited, before any operation is looked up."""
    port = request.getfixturevalue(server).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/", body=b"{}", headers={"Content-Type": "application/x-amz-json-1.1",
                                                              "X-Amz-Target": target})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    assert_aws_answer(response.status, answer, target)
    if server == "open_server":
        assert response.status == 400
        shown = target[len(b"TrentService."):].decode("utf-8", "backslashreplace")  # e.g. ListKeys\xff
        assert json.loads(answer) == {"__type": "UnknownOperationException", "message": f"Unknown operation {shown}"}
    else:
        assert response.status == 403


def test_a_100_KB_header_gets_a_400(kmsgate_server: KmsgateServer) -> None:
    """Refused by the HTTP parser itself, before any handler: a plain-text 400, not the AWS shape."""
    connection = http.client.HTTPConnection("127.0.0.1", kmsgate_server.port, timeout=60)
    try:
        connection.request("POST", "/", body=b"{}", headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys",
            "Authorization": AUTHORIZATION + "a" * 100 * 1024})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 400
