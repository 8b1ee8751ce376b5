"""Pure parsers under generated input: each accepts, or raises its own one documented error.

The KMS ciphertext blob, the SigV4 ``Authorization`` header, presigned query and ``aws-chunked``
framing, request targets, key and identity policy documents, the identities file, and the gateway's
``Range``, key id and base64/JSON encryption-context headers. No event loop, no server.
"""

from __future__ import annotations

import base64
import json
import os
import string
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kmsgate.auth.identities import AccessKey, IdentitiesError, RootCredentials, build_directory, parse_identities
from kmsgate.auth.policy import parse_identity_policy, parse_policy
from kmsgate.auth.sigv4_authorization import parse_authorization, parse_presigned
from kmsgate.auth.sigv4_canonical import check_request_target, query_pairs
from kmsgate.auth.sigv4_chunked import SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER, \
    ChunkSignatureVerifier
from kmsgate.core.errors import ClientError, IncompleteSignatureError, InvalidCiphertextError, \
    InvalidSignatureError, MalformedPolicyDocumentError
from kmsgate.gateway.headers import CONTEXT_HEADER, KEY_ID_HEADER, HeaderError, RangeNotSatisfiable, parse_context, \
    parse_key_id, parse_range
from kmsgate.kms import blob

from .conftest import fuzz_settings

MATERIAL = os.urandom(32)
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
CONTEXT = b'{"a":"b"}'
PLAINTEXT = b"secret plaintext"
SEALED = blob.seal(MATERIAL, KEY_ID, 1, PLAINTEXT, CONTEXT)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=20,
)
sigv4_text = st.text(alphabet=string.printable + "é\u0000", max_size=300)


# -- the KMS ciphertext blob ---------------------------------------------------------------------

@st.composite
def mutated_blobs(draw: st.DrawFn) -> bytes:
    data = bytearray(SEALED)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=40))
        else:
            del data[position:position + draw(st.integers(1, 40))]
    return bytes(data)


@fuzz_settings(scale=20)
@given(data=mutated_blobs() | st.binary(max_size=200))
@example(data=b"")
@example(data=SEALED[:-1])
@example(data=SEALED + b"\x00")
def test_a_mutated_or_random_blob_never_opens(data: bytes) -> None:
    try:
        header = blob.read_header(data)
        opened = blob.open_blob(MATERIAL, data, CONTEXT)
    except InvalidCiphertextError:
        return
    # Only an unchanged blob opens (its key id read back as written).
    assert data == SEALED and opened == PLAINTEXT and header.key_id == KEY_ID


# -- SigV4 ---------------------------------------------------------------------------------------

AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-date, Signature=" + "a" * 64)


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(chars)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from([",", "=", "/", " ", ";", "", "\u0000", "é", "A" * 5000, "Credential="]))
        if kind == "insert":
            chars[position:position] = [piece]
        elif kind == "delete":
            del chars[position:position + draw(st.integers(1, 20))]
        else:
            chars[position:position + 1] = [piece]
    return "".join(chars)


@fuzz_settings(scale=20)
@given(value=mangled(AUTHORIZATION) | sigv4_text)
@example(value=AUTHORIZATION)
@example(value="AWS4-HMAC-SHA256 " + "," * 100_000)
def test_an_authorization_header_parses_or_is_an_incomplete_signature(value: str) -> None:
    try:
        claim = parse_authorization(value)
    except IncompleteSignatureError:
        return
    assert claim.signature is not None


PRESIGNED = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
             ("X-Amz-Credential", "AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request"),
             ("X-Amz-Date", "20150830T123600Z"), ("X-Amz-Expires", "60"),
             ("X-Amz-SignedHeaders", "host"), ("X-Amz-Signature", "a" * 64)]


@fuzz_settings(scale=20)
@given(pairs=st.lists(st.sampled_from(PRESIGNED) | st.tuples(st.sampled_from([name for name, _ in PRESIGNED]),
                                                               sigv4_text), max_size=10),
       query=sigv4_text)
@example(pairs=PRESIGNED, query="")
def test_a_presigned_query_parses_or_is_an_incomplete_signature(pairs: list[tuple[str, str]], query: str) -> None:
    try:
        parse_presigned(pairs)
    except IncompleteSignatureError:
        pass
    try:
        check_request_target("/" + query, query)
        query_pairs(query)
    except ClientError:
        pass


def _chunk(size: int, signature: str = "0" * 64) -> bytes:
    return f"{size:x};chunk-signature={signature}\r\n".encode() + b"x" * size + b"\r\n"


def _chunk_header(size: int, signature: str = "0" * 64) -> bytes:
    """A chunk's size line alone: it claims ``size`` bytes that never come."""
    return f"{size:x};chunk-signature={signature}\r\n".encode()


@fuzz_settings(scale=20)
@given(body=st.lists(st.sampled_from([_chunk(0), _chunk(5), _chunk_header(2**31), _chunk_header(2**64),
                                      b"fffffffffffffffff;chunk-signature=", b"\r\n",
                                      b"x-amz-checksum-crc32:AAAAAA==\r\n"]) | st.binary(max_size=64),
                     max_size=6).map(b"".join),
       mode=st.sampled_from([*SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER]),
       cuts=st.lists(st.integers(0, 400), max_size=3))
@example(body=b"1" * 300 + b";chunk-signature=" + b"0" * 64 + b"\r\n", mode=SIGNED_STREAMING_PAYLOADS[0], cuts=[])
def test_chunked_framing_verifies_or_is_refused_as_a_bad_signature(body: bytes, mode: str, cuts: list[int]) -> None:
    verifier = ChunkSignatureVerifier(b"k" * 32, "20150830T123600Z", "20150830/us-east-1/s3/aws4_request",
                                      "0" * 64, mode=mode)
    released = bytearray()
    start = 0
    try:
        for cut in sorted({min(cut, len(body)) for cut in cuts}) + [len(body)]:
            released += verifier.update(body[start:cut])
            start = cut
        verifier.finalize()
    except (IncompleteSignatureError, InvalidSignatureError):
        return
    assert mode == STREAMING_UNSIGNED_PAYLOAD_TRAILER  # a signed body cannot verify under made-up signatures


# -- policies and identities --------------------------------------------------------------------

STATEMENT_KEYS = ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource",
                  "Condition"]
statements = st.dictionaries(st.sampled_from(STATEMENT_KEYS), any_json | st.sampled_from(
    ["Allow", "Deny", "*", "kms:*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::111122223333:root"]},
    {"StringEquals": {"kms:ViaService": "x"}}, {"Bool": {"aws:SecureTransport": ["true", 1]}}]), max_size=6)
policies = st.fixed_dictionaries({}, optional={"Version": st.sampled_from(["2012-10-17", "", 5]),
                                               "Statement": st.lists(statements, max_size=4) | statements | any_json,
                                               "Id": any_json})


@fuzz_settings(scale=20)
@given(document=policies.map(json.dumps) | any_json.map(json.dumps) | st.text(max_size=200))
@example(document="[" * 10_000)
def test_a_policy_document_parses_or_is_a_malformed_policy_document(document: str) -> None:
    for parse in (parse_policy, parse_identity_policy):
        try:
            parse(document)
        except MalformedPolicyDocumentError:
            pass


ROOT = RootCredentials(AccessKey("AKIAROOT000000000000", "r" * 40), "env")
principals = st.fixed_dictionaries({}, optional={
    "arn": st.sampled_from(["arn:aws:iam::111122223333:user/a", "arn:aws:iam::111122223333:role/b", "x", ""]) | any_json,
    "tokens": st.lists(st.text(max_size=40) | any_json, max_size=3) | any_json,
    "access_keys": st.lists(st.fixed_dictionaries({}, optional={"access_key_id": any_json | st.text(max_size=24),
                                                                "secret_access_key": any_json | st.text(max_size=50)}),
                            max_size=2) | any_json,
    "policy": policies.map(json.dumps) | any_json,
    "account_actions": st.lists(st.text(max_size=20), max_size=3) | any_json,
})


@fuzz_settings(scale=20)
@given(document=st.fixed_dictionaries({}, optional={"principal": st.lists(principals, max_size=3) | any_json})
       | st.dictionaries(st.text(max_size=10), any_json, max_size=3),
       text=st.text(max_size=200))
def test_an_identities_document_builds_or_is_an_identities_error(document: dict[str, Any], text: str) -> None:
    try:
        build_directory("111122223333", ROOT, document)
    except IdentitiesError:
        pass
    try:
        parse_identities(text)
    except IdentitiesError:
        pass


# -- the gateway's headers ----------------------------------------------------------------------

range_values = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\Abytes=[0-9]{0,25}-[0-9]{0,25}\Z"),
    st.sampled_from(["bytes=-0", "bytes=0-", "bytes=5-1", "bytes=0-0,1-1", "bytes=" + "9" * 5000 + "-",
                     "bytes=-" + "9" * 5000, "bytes= 1-2", "bytes=\u0661-\u0662"]),
)


@fuzz_settings(scale=20)
@given(value=range_values | st.none(), size=st.integers(0, 2**64))
def test_a_range_header_is_a_range_within_the_object_or_not_satisfiable_or_ignored(value: str | None,
                                                                                  size: int) -> None:
    try:
        parsed = parse_range(value, size)
    except RangeNotSatisfiable:
        return
    if parsed is not None:
        start, end = parsed
        assert 0 <= start < end <= size


context_values = st.one_of(
    st.text(max_size=80),
    any_json.map(lambda document: base64.b64encode(json.dumps(document).encode()).decode()),
    st.binary(max_size=80).map(lambda data: base64.b64encode(data).decode()),
    st.sampled_from(["e30=", "W10=", "bnVsbA==", base64.b64encode(b'{"a": 1}').decode(), "=" * 70_000]),
)


@fuzz_settings(scale=20)
@given(context=context_values, key_id=st.text(max_size=3000))
def test_context_and_key_id_headers_parse_or_are_a_header_error(context: str, key_id: str) -> None:
    try:
        parsed = parse_context({CONTEXT_HEADER: context})
    except HeaderError:
        pass
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
    try:
        parse_key_id({KEY_ID_HEADER: key_id})
    except HeaderError:
        pass
