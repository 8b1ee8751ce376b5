"""boto3 against a real ``kmsgate serve`` on a loopback port: every operation, key-id form, state and error."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from .helpers import ACCOUNT_ID, REGION, WRAPPING_ALGORITHMS, wrap_key_material


def new_key(kms: Any, **kwargs: Any) -> dict[str, Any]:
    return kms.create_key(**kwargs)["KeyMetadata"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def raw_kms(kmsgate_server: Any) -> Any:
    """A client that sends what it is given: botocore's own min-length checks are off."""
    config = BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=False)
    return kmsgate_server.boto_session().client("kms", endpoint_url=kmsgate_server.endpoint_url, config=config)


def test_key_lifecycle(kms: Any) -> None:
    meta = new_key(kms, Description="lifecycle", Tags=[{"TagKey": "team", "TagValue": "core"}])
    key_id = meta["KeyId"]
    assert meta["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}"
    assert meta["AWSAccountId"] == ACCOUNT_ID
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["KeyManager"] == "CUSTOMER" and meta["Origin"] == "AWS_KMS" and meta["MultiRegion"] is False
    assert len(meta["CurrentKeyMaterialId"]) == 64
    assert hasattr(meta["CreationDate"], "year")

    kms.update_key_description(KeyId=key_id, Description="renamed")
    kms.disable_key(KeyId=key_id)
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["Description"] == "renamed" and described["KeyState"] == "Disabled"
    with pytest.raises(kms.exceptions.DisabledException):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    kms.enable_key(KeyId=key_id)

    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    assert scheduled["KeyId"] == meta["Arn"]
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion" and described["Enabled"] is False
    assert described["DeletionDate"] == scheduled["DeletionDate"]
    assert "PendingDeletionWindowInDays" not in described
    for call in (
        lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: kms.enable_key(KeyId=key_id),
        lambda: kms.schedule_key_deletion(KeyId=key_id),
        lambda: kms.update_key_description(KeyId=key_id, Description="no"),
        lambda: kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "b"}]),
    ):
        with pytest.raises(kms.exceptions.KMSInvalidStateException):
            call()
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "core"}]

    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == meta["Arn"]
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["KeyState"] == "Disabled" and "DeletionDate" not in described
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.cancel_key_deletion(KeyId=key_id)


def test_every_key_id_form_and_where_it_is_rejected(kms: Any) -> None:
    meta = new_key(kms)
    key_id, arn = meta["KeyId"], meta["Arn"]
    kms.create_alias(AliasName=f"alias/forms-{key_id}", TargetKeyId=key_id)
    alias = f"alias/forms-{key_id}"
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:{alias}"
    for form in (key_id, arn, alias, alias_arn):
        assert kms.describe_key(KeyId=form)["KeyMetadata"]["KeyId"] == key_id
        blob = kms.encrypt(KeyId=form, Plaintext=b"form")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob, KeyId=form)["Plaintext"] == b"form"
        assert kms.generate_data_key(KeyId=form, KeySpec="AES_128")["KeyId"] == arn
    for form in (alias, alias_arn):
        for call in (
            lambda: kms.disable_key(KeyId=form),
            lambda: kms.enable_key_rotation(KeyId=form),
            lambda: kms.schedule_key_deletion(KeyId=form),
            lambda: kms.tag_resource(KeyId=form, Tags=[{"TagKey": "a", "TagValue": "b"}]),
            lambda: kms.list_aliases(KeyId=form),
            lambda: kms.create_alias(AliasName=f"alias/x-{key_id}", TargetKeyId=form),
        ):
            with pytest.raises(kms.exceptions.NotFoundException):
                call()
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId="11111111-2222-3333-4444-555555555555")
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.describe_key(KeyId=arn.replace(REGION, "ap-south-1"))
    with pytest.raises(kms.exceptions.InvalidArnException):
        kms.describe_key(KeyId=f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:bucket/{key_id}")


def test_encrypt_decrypt_reencrypt_and_data_keys(kms: Any) -> None:
    source = new_key(kms)["KeyId"]
    target = new_key(kms)["KeyId"]
    context = {"tenant": "acme", "purpose": "test"}
    encrypted = kms.encrypt(KeyId=source, Plaintext=b"hello", EncryptionContext=context)
    assert encrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"], EncryptionContext=context)
    assert decrypted["Plaintext"] == b"hello" and decrypted["KeyId"].endswith(source)
    assert len(decrypted["KeyMaterialId"]) == 64
    with pytest.raises(kms.exceptions.IncorrectKeyException):
        kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"], EncryptionContext=context, KeyId=target)

    moved = kms.re_encrypt(
        CiphertextBlob=encrypted["CiphertextBlob"],
        SourceEncryptionContext=context,
        DestinationKeyId=target,
        DestinationEncryptionContext={"moved": "yes"},
    )
    assert moved["SourceKeyId"].endswith(source) and moved["KeyId"].endswith(target)
    assert moved["SourceKeyMaterialId"] == decrypted["KeyMaterialId"]
    assert len(moved["DestinationKeyMaterialId"]) == 64
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"moved": "yes"})["Plaintext"] == b"hello"

    data_key = kms.generate_data_key(KeyId=source, KeySpec="AES_256", EncryptionContext=context)
    assert len(data_key["Plaintext"]) == 32 and len(data_key["KeyMaterialId"]) == 64
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)["Plaintext"] == data_key["Plaintext"]
    sized = kms.generate_data_key(KeyId=source, NumberOfBytes=1024)
    assert len(sized["Plaintext"]) == 1024
    without = kms.generate_data_key_without_plaintext(KeyId=source, KeySpec="AES_128")
    assert "Plaintext" not in without
    assert len(kms.decrypt(CiphertextBlob=without["CiphertextBlob"])["Plaintext"]) == 16
    assert len(kms.generate_random(NumberOfBytes=64)["Plaintext"]) == 64


def test_context_mismatch_and_tampered_blobs(kms: Any) -> None:
    key_id = new_key(kms)["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"tamper", EncryptionContext={"a": "bc"})["CiphertextBlob"]
    for wrong in ({"ab": "c"}, {}, {"a": "bc", "x": "y"}, {"a": "BC"}):
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)
    messages = set()
    for index in range(len(blob)):
        bad = bytearray(blob)
        bad[index] ^= 0x01
        with pytest.raises(kms.exceptions.InvalidCiphertextException) as info:
            kms.decrypt(CiphertextBlob=bytes(bad), EncryptionContext={"a": "bc"})
        messages.add(info.value.response["Error"]["Message"])
    for length in range(1, len(blob), 7):
        with pytest.raises(kms.exceptions.InvalidCiphertextException) as info:
            kms.decrypt(CiphertextBlob=blob[:length], EncryptionContext={"a": "bc"})
        messages.add(info.value.response["Error"]["Message"])
    assert len(messages) == 1
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=os.urandom(200))


def test_rotation_then_old_ciphertexts_decrypt(kms: Any) -> None:
    key_id = new_key(kms)["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    assert "NextRotationDate" in status
    blobs = []
    materials = []
    for round_ in range(3):
        blobs.append(kms.encrypt(KeyId=key_id, Plaintext=b"r%d" % round_)["CiphertextBlob"])
        materials.append(kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"])
        assert kms.rotate_key_on_demand(KeyId=key_id)["KeyId"].endswith(key_id)
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert len({*materials, current}) == 4
    for round_, blob in enumerate(blobs):
        decrypted = kms.decrypt(CiphertextBlob=blob)
        assert decrypted["Plaintext"] == b"r%d" % round_ and decrypted["KeyMaterialId"] == materials[round_]
        moved = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key_id)
        assert moved["SourceKeyMaterialId"] == materials[round_] and moved["DestinationKeyMaterialId"] == current
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["KeyMaterialId"] for r in rotations] == [*materials[1:], current]
    assert all(r["RotationType"] == "ON_DEMAND" and hasattr(r["RotationDate"], "year") for r in rotations)
    page = kms.list_key_rotations(KeyId=key_id, Limit=2)
    assert page["Truncated"] is True and len(page["Rotations"]) == 2
    rest = kms.list_key_rotations(KeyId=key_id, Limit=2, Marker=page["NextMarker"])
    assert [r["KeyMaterialId"] for r in page["Rotations"] + rest["Rotations"]] == [r["KeyMaterialId"] for r in rotations]
    kms.disable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


@pytest.mark.parametrize(
    ("algorithm", "spec"),
    [("RSAES_OAEP_SHA_1", "RSA_2048"), ("RSAES_OAEP_SHA_256", "RSA_3072"), ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")],
)
def test_import_round_trip(kms: Any, algorithm: str, spec: str) -> None:
    meta = new_key(kms, Origin="EXTERNAL", Description="byok")
    key_id = meta["KeyId"]
    assert meta["KeyState"] == "PendingImport"
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)
    assert params["KeyId"].endswith(key_id) and hasattr(params["ParametersValidTo"], "year")
    material = os.urandom(32)
    wrapped = wrap_key_material(params["PublicKey"], material, algorithm)
    imported = kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrapped,
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["KeyState"] == "Enabled" and described["Origin"] == "EXTERNAL"
    assert described["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert described["CurrentKeyMaterialId"] == imported["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"imported")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"

    # same token, different material: bound to the first material for life
    with pytest.raises(kms.exceptions.IncorrectKeyMaterialException):
        kms.import_key_material(
            KeyId=key_id,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap_key_material(params["PublicKey"], os.urandom(32), algorithm),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    # the token of this key is useless for another key
    other = new_key(kms, Origin="EXTERNAL")["KeyId"]
    with pytest.raises(kms.exceptions.InvalidImportTokenException):
        kms.import_key_material(
            KeyId=other, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    deleted = kms.delete_imported_key_material(KeyId=key_id)
    assert deleted["KeyMaterialId"] == imported["KeyMaterialId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(kms.exceptions.KMSInvalidStateException):
        kms.decrypt(CiphertextBlob=blob)
    kms.import_key_material(
        KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.enable_key_rotation(KeyId=key_id)


def test_import_operations_on_a_kms_origin_key(kms: Any) -> None:
    key_id = new_key(kms)["KeyId"]
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.delete_imported_key_material(KeyId=key_id)


def test_aliases_and_tags(kms: Any) -> None:
    first = new_key(kms)["KeyId"]
    second = new_key(kms)["KeyId"]
    name = f"alias/tags-{first}"
    kms.create_alias(AliasName=name, TargetKeyId=first)
    with pytest.raises(kms.exceptions.AlreadyExistsException):
        kms.create_alias(AliasName=name, TargetKeyId=second)
    for bad in ("alias/aws/reserved", "alias/with space", "noprefix"):
        with pytest.raises(kms.exceptions.InvalidAliasNameException):
            kms.create_alias(AliasName=bad, TargetKeyId=first)
    (entry,) = kms.list_aliases(KeyId=first)["Aliases"]
    assert entry["AliasName"] == name and entry["TargetKeyId"] == first
    assert entry["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:{name}"
    kms.update_alias(AliasName=name, TargetKeyId=second)
    assert kms.list_aliases(KeyId=first)["Aliases"] == []
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == second
    kms.delete_alias(AliasName=name)
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.delete_alias(AliasName=name)

    kms.tag_resource(KeyId=first, Tags=[{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": "1"}])
    assert kms.list_resource_tags(KeyId=first)["Tags"] == [
        {"TagKey": "a", "TagValue": "1"},
        {"TagKey": "b", "TagValue": "2"},
    ]
    kms.untag_resource(KeyId=first, TagKeys=["a"])
    assert kms.list_resource_tags(KeyId=first)["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    with pytest.raises(kms.exceptions.TagException):
        kms.tag_resource(KeyId=first, Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}])


def test_pagination_of_list_operations(kms: Any) -> None:
    key_id = new_key(kms, Tags=[{"TagKey": f"t{i}", "TagValue": str(i)} for i in range(5)])["KeyId"]
    for i in range(5):
        kms.create_alias(AliasName=f"alias/page-{key_id}-{i}", TargetKeyId=key_id)
    for _ in range(3):
        new_key(kms)

    def collect(call: Any, field: str, **kwargs: Any) -> list[Any]:
        items: list[Any] = []
        marker = None
        while True:
            page = call(Limit=2, **({"Marker": marker} if marker else {}), **kwargs)
            assert len(page[field]) <= 2
            items.extend(page[field])
            if not page["Truncated"]:
                assert "NextMarker" not in page
                return items
            marker = page["NextMarker"]

    keys = collect(kms.list_keys, "Keys")
    assert len(keys) == len({k["KeyId"] for k in keys}) >= 4
    assert key_id in {k["KeyId"] for k in keys}
    every = {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
    assert {k["KeyId"] for k in keys} == every
    aliases = collect(kms.list_aliases, "Aliases", KeyId=key_id)
    assert [a["AliasName"] for a in aliases] == sorted(f"alias/page-{key_id}-{i}" for i in range(5))
    tags = collect(kms.list_resource_tags, "Tags", KeyId=key_id)
    assert [t["TagKey"] for t in tags] == [f"t{i}" for i in range(5)]
    with pytest.raises(kms.exceptions.InvalidMarkerException):
        kms.list_keys(Marker="not-a-marker!")


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("encrypt", {"KeyId": "K", "Plaintext": b"x" * 4097}, "plaintext"),
        ("encrypt", {"KeyId": "K", "Plaintext": b""}, "plaintext"),
        ("generate_data_key", {"KeyId": "K", "NumberOfBytes": 1025}, "numberOfBytes"),
        ("generate_data_key", {"KeyId": "K", "NumberOfBytes": 0}, "numberOfBytes"),
        ("generate_data_key", {"KeyId": "K", "KeySpec": "AES_512"}, "keySpec"),
        ("generate_random", {"NumberOfBytes": 1025}, "numberOfBytes"),
        ("schedule_key_deletion", {"KeyId": "K", "PendingWindowInDays": 6}, "pendingWindowInDays"),
        ("schedule_key_deletion", {"KeyId": "K", "PendingWindowInDays": 31}, "pendingWindowInDays"),
        ("enable_key_rotation", {"KeyId": "K", "RotationPeriodInDays": 89}, "rotationPeriodInDays"),
        ("enable_key_rotation", {"KeyId": "K", "RotationPeriodInDays": 2561}, "rotationPeriodInDays"),
        ("list_keys", {"Limit": 0}, "limit"),
        ("list_keys", {"Limit": 1001}, "limit"),
        ("create_alias", {"AliasName": "alias/" + "a" * 300, "TargetKeyId": "K"}, "aliasName"),
        ("create_key", {"Description": "d" * 8193}, "description"),
        ("create_key", {"KeyUsage": "FLY"}, "keyUsage"),
        ("describe_key", {"KeyId": ""}, "keyId"),
        ("tag_resource", {"KeyId": "K", "Tags": [{"TagKey": "k" * 129, "TagValue": "v"}]}, "tagKey"),
        ("get_parameters_for_import", {"KeyId": "K", "WrappingAlgorithm": "X", "WrappingKeySpec": "RSA_2048"},
         "wrappingAlgorithm"),
    ],
)
def test_validation_errors_name_the_field(raw_kms: Any, kms: Any, operation: str, params: dict[str, Any], field: str) -> None:
    key_id = new_key(kms)["KeyId"]
    params = {name: (key_id if value == "K" else value) for name, value in params.items()}
    with pytest.raises(ClientError) as info:
        getattr(raw_kms, operation)(**params)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert field in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_missing_required_member(raw_kms: Any) -> None:
    with pytest.raises(ClientError) as info:
        raw_kms.encrypt(Plaintext=b"x")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "keyId" in info.value.response["Error"]["Message"]
