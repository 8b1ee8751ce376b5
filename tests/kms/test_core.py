"""Core (no event loop, no server) tests for the blob format, context encoding, root key, import tokens, key refs."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsgate.core.errors import (
    ExpiredImportTokenError,
    InvalidArnError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    InvalidMarkerError,
    NotFoundError,
    ValidationError,
)
from kmsgate.kms import blob, importing
from kmsgate.kms.context import MAX_CONTEXT_BYTES, encode_context
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.pagination import paginate
from kmsgate.kms.rootkey import RootKey, RootKeyError

from .helpers import WRAPPING_ALGORITHMS, tampered, wrap_key_material

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
contexts = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4)


# -- blob ------------------------------------------------------------------------------------------


def test_blob_layout_matches_the_documented_format() -> None:
    material = os.urandom(32)
    sealed = blob.seal(material, KEY_ID, 7, b"hello", encode_context({"a": "b"}))
    assert len(sealed) == blob.OVERHEAD_BYTES + 5
    assert sealed[0] == blob.FORMAT_VERSION
    assert sealed[1:17] == uuid.UUID(KEY_ID).bytes
    assert sealed[17:21] == (7).to_bytes(4, "big")
    header = blob.read_header(sealed)
    assert (header.key_id, header.version) == (KEY_ID, 7)
    assert blob.open_blob(material, sealed, encode_context({"a": "b"})) == b"hello"


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=4096), context=contexts)
def test_blob_round_trip(plaintext: bytes, context: dict[str, str]) -> None:
    material = os.urandom(32)
    sealed = blob.seal(material, KEY_ID, 1, plaintext, encode_context(context))
    assert blob.open_blob(material, sealed, encode_context(context)) == plaintext


def test_every_change_to_a_blob_fails_opening() -> None:
    material = os.urandom(32)
    sealed = blob.seal(material, KEY_ID, 3, b"payload", encode_context({}))
    for label, bad in tampered(sealed):
        with pytest.raises(InvalidCiphertextError) as info:
            blob.read_header(bad)
            blob.open_blob(material, bad, encode_context({}))
        assert info.value.message == blob.INVALID_CIPHERTEXT_MESSAGE, label


def test_wrong_material_or_context_fails() -> None:
    material = os.urandom(32)
    sealed = blob.seal(material, KEY_ID, 1, b"x", encode_context({"k": "v"}))
    with pytest.raises(InvalidCiphertextError):
        blob.open_blob(os.urandom(32), sealed, encode_context({"k": "v"}))
    with pytest.raises(InvalidCiphertextError):
        blob.open_blob(material, sealed, encode_context({"k": "w"}))


def test_oversized_blob_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidCiphertextError):
        blob.read_header(b"\x01" * (blob.MAX_BLOB_BYTES + 1))


# -- context ---------------------------------------------------------------------------------------


def test_context_encoding_is_canonical_and_length_prefixed() -> None:
    assert encode_context(None) == encode_context({}) == b"\x00\x00"
    assert encode_context({"b": "2", "a": "1"}) == encode_context({"a": "1", "b": "2"})
    assert encode_context({"a": "bc"}) != encode_context({"ab": "c"})
    assert encode_context({"a": "bc"}) == b"\x00\x01" + b"\x00\x01a" + b"\x00\x02bc"


@settings(max_examples=300, deadline=None)
@given(one=contexts, two=contexts)
def test_context_encoding_is_injective(one: dict[str, str], two: dict[str, str]) -> None:
    assert (encode_context(one) == encode_context(two)) == (one == two)


def test_context_size_is_capped() -> None:
    encode_context({"k": "v" * (MAX_CONTEXT_BYTES - 16)})
    with pytest.raises(ValidationError):
        encode_context({"k": "v" * MAX_CONTEXT_BYTES})


# -- root key --------------------------------------------------------------------------------------


def test_wrapped_material_is_bound_to_key_id_and_version() -> None:
    root = RootKey(os.urandom(32))
    material = os.urandom(32)
    wrapped = root.wrap_material(KEY_ID, 2, material)
    assert material not in wrapped
    assert root.unwrap_material(KEY_ID, 2, wrapped) == material
    with pytest.raises(RootKeyError):
        root.unwrap_material(KEY_ID, 3, wrapped)
    with pytest.raises(RootKeyError):
        root.unwrap_material(str(uuid.uuid4()), 2, wrapped)
    with pytest.raises(RootKeyError):
        RootKey(os.urandom(32)).unwrap_material(KEY_ID, 2, wrapped)
    for _label, bad in tampered(wrapped):
        with pytest.raises(RootKeyError):
            root.unwrap_material(KEY_ID, 2, bad)


def test_root_key_hides_its_secret_and_checks_its_size() -> None:
    secret = os.urandom(32)
    assert secret.hex() not in repr(RootKey(secret)) and str(secret) not in repr(RootKey(secret))
    with pytest.raises(RootKeyError):
        RootKey(os.urandom(16))


# -- importing -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root() -> RootKey:
    return RootKey(os.urandom(32))


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_import_unwrap_each_algorithm(root: RootKey, algorithm: str) -> None:
    params = importing.create_parameters(root, KEY_ID, algorithm, "RSA_2048", now=1000.0)
    assert params.valid_to == 1000.0 + importing.IMPORT_TOKEN_LIFETIME_SECONDS
    material = os.urandom(32)
    wrapped = wrap_key_material(params.public_key_der, material, algorithm)
    assert importing.unwrap_material(root, KEY_ID, params.import_token, wrapped, now=1000.0) == material
    with pytest.raises(InvalidImportTokenError):
        importing.unwrap_material(root, str(uuid.uuid4()), params.import_token, wrapped, now=1000.0)
    with pytest.raises(ExpiredImportTokenError):
        importing.unwrap_material(root, KEY_ID, params.import_token, wrapped, now=params.valid_to + 1)
    with pytest.raises(InvalidImportTokenError):
        importing.unwrap_material(RootKey(os.urandom(32)), KEY_ID, params.import_token, wrapped, now=1000.0)
    with pytest.raises(InvalidCiphertextError):
        importing.unwrap_material(root, KEY_ID, params.import_token, wrapped[:-1], now=1000.0)


def test_import_token_does_not_carry_the_private_key_in_clear(root: RootKey) -> None:
    from cryptography.hazmat.primitives import serialization

    params = importing.create_parameters(root, KEY_ID, "RSAES_OAEP_SHA_256", "RSA_2048", now=0.0)
    public = serialization.load_der_public_key(params.public_key_der)
    modulus = public.public_numbers().n.to_bytes(256, "big")  # type: ignore[union-attr]
    assert modulus[:32] not in params.import_token
    assert b"PRIVATE" not in params.import_token


def test_unknown_wrapping_parameters(root: RootKey) -> None:
    with pytest.raises(ValidationError):
        importing.create_parameters(root, KEY_ID, "RSAES_PKCS1_V1_5", "RSA_2048", now=0.0)
    with pytest.raises(ValidationError):
        importing.create_parameters(root, KEY_ID, "RSAES_OAEP_SHA_256", "RSA_1024", now=0.0)


# -- key references and pagination -----------------------------------------------------------------


def test_key_reference_forms() -> None:
    ns = Namespace(region="us-east-1", account_id="111122223333")
    assert ns.parse(KEY_ID, allow_alias=False).key_id == KEY_ID
    assert ns.parse(ns.key_arn(KEY_ID), allow_alias=False).key_id == KEY_ID
    assert ns.parse("alias/x", allow_alias=True).alias_name == "alias/x"
    assert ns.parse(ns.alias_arn("alias/x"), allow_alias=True).alias_name == "alias/x"
    for refused in ("alias/x", ns.alias_arn("alias/x"), "junk", ns.key_arn(KEY_ID).replace("us-east-1", "us-west-2")):
        with pytest.raises(NotFoundError):
            ns.parse(refused, allow_alias=False)
    with pytest.raises(InvalidArnError):
        ns.parse("arn:aws:kms:us-east-1:111122223333:bucket/x", allow_alias=True)


def test_pagination_markers() -> None:
    items = [f"item-{i:02d}" for i in range(10)]
    page, more = paginate(items, lambda s: s, 4, None)
    assert page == items[:4] and more["truncated"] is True
    page2, more2 = paginate(items, lambda s: s, 4, more["next_marker"])
    assert page2 == items[4:8]
    page3, more3 = paginate(items, lambda s: s, 4, more2["next_marker"])
    assert page3 == items[8:] and more3 == {"truncated": False}
    for bad in ("!!!", "é", "////"):
        with pytest.raises(InvalidMarkerError):
            paginate(items, lambda s: s, 4, bad)
