"""Validation kmsgate does as AWS documents it, through boto3 against a real server: tags (the
reserved ``aws:`` prefix, a key twice in one request), the Limit bounds and default page sizes of
the list operations, ImportKeyMaterial's expiration model, and what multi-Region keys and custom
key stores answer."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from .helpers import wrap_key_material


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"]), str(caught.value.response["Error"]["Message"])


@pytest.fixture(scope="module")
def raw_kms(kmsgate_server: Any) -> Any:
    """A client that sends what it is given: botocore's own parameter checks are off."""
    config = BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=False)
    return kmsgate_server.boto_session().client("kms", endpoint_url=kmsgate_server.endpoint_url, config=config)


def test_a_tag_key_twice_in_one_request_is_a_tag_exception(kms: Any) -> None:
    twice = [{"TagKey": "team", "TagValue": "a"}, {"TagKey": "team", "TagValue": "b"}]
    assert error_of(kms.create_key, Tags=twice)[0] == "TagException"
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert error_of(kms.tag_resource, KeyId=key_id, Tags=twice)[0] == "TagException"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []
    # Keys are case-sensitive: these are two tags.
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "a"}, {"TagKey": "Team", "TagValue": "b"}])
    assert len(kms.list_resource_tags(KeyId=key_id)["Tags"]) == 2


@pytest.mark.parametrize("tag_key", ["aws:owner", "AWS:owner", "Aws:owner"])
def test_the_aws_prefix_is_reserved_in_any_case(kms: Any, tag_key: str) -> None:
    assert error_of(kms.create_key, Tags=[{"TagKey": tag_key, "TagValue": "x"}])[0] == "TagException"


def test_list_limits_are_aws_documented_bounds(kms: Any, raw_kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for call, arguments, largest in (
        (raw_kms.list_aliases, {}, 100),
        (raw_kms.list_grants, {"KeyId": key_id}, 100),
        (raw_kms.list_retirable_grants, {"RetiringPrincipal": "arn:aws:iam::111122223333:role/r"}, 100),
        (raw_kms.list_resource_tags, {"KeyId": key_id}, 50),
    ):
        call(Limit=largest, **arguments)
        code, message = error_of(call, Limit=largest + 1, **arguments)
        assert code == "ValidationException" and f"less than or equal to {largest}" in message


def test_list_aliases_pages_hold_50_aliases_by_default(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    prefix = f"alias/page-{uuid.uuid4().hex[:8]}"
    for n in range(51):
        kms.create_alias(AliasName=f"{prefix}-{n:02d}", TargetKeyId=key_id)
    page = kms.list_aliases()
    assert len(page["Aliases"]) == 50 and page["Truncated"] is True
    assert len(kms.list_aliases(KeyId=key_id)["Aliases"]) == 50


def _import(kms: Any, key_id: str, **kwargs: Any) -> Any:
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    wrapped = wrap_key_material(params["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256")
    return kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                                   **kwargs)


def test_import_key_material_defaults_to_expiring_material_that_needs_valid_to(kms: Any) -> None:
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    code, message = error_of(_import, kms=kms, key_id=key_id)
    assert code == "ValidationException" and "ValidTo" in message
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    _import(kms, key_id, ValidTo=time.time() + 3600)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"


def test_import_key_material_valid_to_is_at_most_365_days_ahead(kms: Any) -> None:
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    code, message = error_of(_import, kms=kms, key_id=key_id, ExpirationModel="KEY_MATERIAL_EXPIRES",
                             ValidTo=time.time() + 366 * 86400)
    assert code == "ValidationException" and "365 days" in message
    _import(kms, key_id, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=time.time() + 364 * 86400)


def test_multi_region_keys_are_unsupported_with_what_to_use_instead(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for call, arguments in (
        (kms.create_key, {"MultiRegion": True}),
        (kms.replicate_key, {"KeyId": key_id, "ReplicaRegion": "eu-west-1"}),
        (kms.update_primary_region, {"KeyId": key_id, "PrimaryRegion": "eu-west-1"}),
    ):
        code, message = error_of(call, **arguments)
        assert code == "UnsupportedOperationException"
        assert "Multi-Region keys are not supported" in message and "PostgreSQL key store" in message


def test_custom_key_stores_are_unsupported_with_what_to_use_instead(kms: Any) -> None:
    for call, arguments in (
        (kms.create_key, {"CustomKeyStoreId": "cks-1234567890abcdef0"}),
        (kms.create_key, {"Origin": "AWS_CLOUDHSM"}),
        (kms.create_key, {"Origin": "EXTERNAL_KEY_STORE", "XksKeyId": "key-1"}),
        (kms.describe_custom_key_stores, {}),
        (kms.create_custom_key_store, {"CustomKeyStoreName": "store", "CloudHsmClusterId": "cluster-1234567890a",
                                       "TrustAnchorCertificate": "cert", "KeyStorePassword": "password"}),
        (kms.connect_custom_key_store, {"CustomKeyStoreId": "cks-1234567890abcdef0"}),
    ):
        code, message = error_of(call, **arguments)
        assert code == "UnsupportedOperationException"
        assert "Custom key stores" in message and "Origin AWS_KMS" in message
        assert "password" not in message
