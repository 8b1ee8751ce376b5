"""The KMS request path's shortcuts keep their meaning: snapshot checks per loop turn, blob key
derivation, key id parsing, compiled JSON codecs and request ids."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import uuid
from pathlib import Path

import pytest

from kmsgate.core.errors import DisabledError, NotFoundError, SerializationError, ValidationError
from kmsgate.core.principal import Caller
from kmsgate.kms import blob
from kmsgate.kms.keyref import Namespace
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import KmsService, open_service
from kmsgate.web import awsjson
from kmsgate.web.kms_api import KmsApi, TrustingAuthenticator

from .helpers import ACCOUNT_ID, REGION

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class CountingStore:
    """Wraps a real ``KeyStore`` and counts ``data_version`` reads (everything else passes through)."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.version_reads = 0

    def data_version(self) -> int:
        self.version_reads += 1
        return self._store.data_version()  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


@pytest.fixture
def root_key() -> RootKey:
    return RootKey(os.urandom(32))


def _open(data_dir: Path, root_key: RootKey) -> KmsService:
    return open_service(data_dir, root_key, region=REGION, account_id=ACCOUNT_ID)


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_commit_by_another_process_is_seen_in_the_next_loop_turn(
    tmp_path: Path, root_key: RootKey, caller: Caller
) -> None:
    # Two services on one data directory stand for two worker processes: each has its own
    # SQLite connections, so the second learns of the first's commit only through data_version.
    first, second = _open(tmp_path, root_key), _open(tmp_path, root_key)
    try:
        key_id = (await first.create_key(caller=caller))["key_metadata"]["key_id"]
        await _next_turn()
        await second.encrypt(caller=caller, key_id=key_id, plaintext=b"x")  # second reads the version now
        await first.disable_key(caller=caller, key_id=key_id)
        await _next_turn()
        with pytest.raises(DisabledError):
            await second.encrypt(caller=caller, key_id=key_id, plaintext=b"x")
    finally:
        first.close()
        second.close()


async def test_requests_in_one_loop_turn_share_one_data_version_read(
    tmp_path: Path, root_key: RootKey, caller: Caller
) -> None:
    service = _open(tmp_path, root_key)
    try:
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        await _next_turn()
        counting = CountingStore(service._store)
        service._store = counting  # type: ignore[assignment]
        for _ in range(5):  # no await between them that yields: one turn
            await service.generate_data_key(caller=caller, key_id=key_id, key_spec="AES_256")
        assert counting.version_reads == 1
        await _next_turn()
        await service.generate_data_key(caller=caller, key_id=key_id, key_spec="AES_256")
        assert counting.version_reads == 2
    finally:
        service.close()


async def test_own_changes_are_seen_within_the_same_turn(tmp_path: Path, root_key: RootKey, caller: Caller) -> None:
    service = _open(tmp_path, root_key)
    try:
        key_id = (await service.create_key(caller=caller))["key_metadata"]["key_id"]
        await service.encrypt(caller=caller, key_id=key_id, plaintext=b"x")
        await service.disable_key(caller=caller, key_id=key_id)
        with pytest.raises(DisabledError):
            await service.encrypt(caller=caller, key_id=key_id, plaintext=b"x")
    finally:
        service.close()


@pytest.mark.parametrize("material_bytes", [0, 1, 32, 64, 65, 200])
def test_blob_key_derivation_is_hmac_sha256(material_bytes: int) -> None:
    material, salt = os.urandom(material_bytes), os.urandom(blob.SALT_BYTES)
    assert blob._derive(material, salt) == hmac.digest(material, b"kmsgate-blob-v1" + salt, hashlib.sha256)


def test_blob_header_key_id_is_the_canonical_uuid() -> None:
    key_id = str(uuid.uuid4())
    sealed = blob.seal(os.urandom(32), key_id, 9, b"payload", b"\x00\x00")
    header = blob.read_header(sealed)
    assert (header.key_id, header.version) == (key_id, 9)


@pytest.mark.parametrize(
    "text", ["1234ABCD-12AB-34CD-56EF-1234567890AB", "1234abcd-12ab-34cd-56ef-1234567890ab"]
)
def test_canonical_key_ids_parse_in_any_case(text: str) -> None:
    assert Namespace(REGION, ACCOUNT_ID).parse(text, allow_alias=True).key_id == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "{1234abcd-12ab-34cd-56ef-1234567890ab}",
        "urn:uuid:1234abcd-12ab-34cd-56ef-1234567890ab",
        "1234abcd12ab34cd56ef1234567890ab",
        "1234abcd-12ab-34cd-56ef-1234567890ab ",
        "1234abcd-12ab-34cd-56ef-1234567890ag",
        "1234abcd-12ab-34cd-56ef-1234567890a\u0661",
    ],
)
def test_non_canonical_key_ids_are_invalid(text: str) -> None:
    with pytest.raises(NotFoundError, match="Invalid keyId"):
        Namespace(REGION, ACCOUNT_ID).parse(text, allow_alias=True)


@pytest.mark.parametrize("value", ["QQ==", "QR==", "QUI=", "QUJD", "", base64.b64encode(os.urandom(300)).decode()])
def test_blob_members_decode_as_strict_base64(value: str) -> None:
    decoded = awsjson.codec("Decrypt").decode({"CiphertextBlob": value}) if value else None
    if decoded is None:  # an empty blob is too short for the model
        with pytest.raises(ValidationError):
            awsjson.codec("Decrypt").decode({"CiphertextBlob": value})
        return
    assert decoded["ciphertext_blob"] == base64.b64decode(value, validate=True)


@pytest.mark.parametrize("value", ["QQ", "QQ=", "Q===", "=", "QQ==QQ==", "Q Q==", "QUJD\n", "QUJ=D", "QQ===", "é"])
def test_malformed_base64_is_a_serialization_error(value: str) -> None:
    with pytest.raises(SerializationError, match="ciphertextBlob"):
        awsjson.codec("Decrypt").decode({"CiphertextBlob": value})


def test_compiled_decoder_reports_every_violation_with_member_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        awsjson.codec("GenerateDataKey").decode({"KeySpec": "AES_512", "NumberOfBytes": 0, "Unknown": 1})
    message = caught.value.message
    assert message.startswith("3 validation errors detected: ")
    assert "Value null at 'keyId' failed to satisfy constraint: Member must not be null" in message
    assert "Value 'AES_512' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set" in message
    assert "Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than" in message


def test_compiled_encoder_renders_dataclasses_and_mappings() -> None:
    from kmsgate.kms.results import DataKeyResult

    result = DataKeyResult(key_id="arn", plaintext=b"\x00\x01", ciphertext_blob=b"\xff", key_material_id="m")
    encoded = awsjson.codec("GenerateDataKey").encode(result)
    assert encoded["Plaintext"] == "AAE=" and encoded["CiphertextBlob"] == "/w==" and encoded["KeyId"] == "arn"
    assert awsjson.codec("GenerateRandom").encode({"plaintext": b"ab"}) == {"Plaintext": "YWI="}


def test_request_ids_are_unique_uuid_shaped_and_differ_per_adapter() -> None:
    first = KmsApi(None, TrustingAuthenticator(ACCOUNT_ID))
    second = KmsApi(None, TrustingAuthenticator(ACCOUNT_ID))
    ids = [first._next_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(UUID_TEXT.fullmatch(request_id) for request_id in ids)
    assert second._next_request_id()[:23] != ids[0][:23]


def test_remembered_key_ref_parses_keep_their_errors_and_namespaces() -> None:
    here, elsewhere = Namespace(REGION, ACCOUNT_ID), Namespace("eu-west-1", ACCOUNT_ID)
    arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for _ in range(2):
        assert here.parse(arn, allow_alias=False).key_id == "1234abcd-12ab-34cd-56ef-1234567890ab"
        assert here.parse("alias/app", allow_alias=True).alias_name == "alias/app"
        with pytest.raises(NotFoundError):
            elsewhere.parse(arn, allow_alias=False)
        with pytest.raises(NotFoundError, match="Invalid keyId"):
            here.parse("alias/app", allow_alias=False)
