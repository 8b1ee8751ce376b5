"""``kmsgate.kms.model_additions``: the ML-KEM parts of the KMS API merged into botocore's model only where absent."""

from __future__ import annotations

import copy

import botocore.session
from botocore.model import ServiceModel

from kmsgate.kms import model_additions
from kmsgate.web import awsjson


def installed_model() -> dict[str, object]:
    return copy.deepcopy(botocore.session.get_session().get_service_data("kms"))


def test_the_served_model_has_encapsulate_decapsulate_and_the_ml_kem_values() -> None:
    model = awsjson.service_model()
    assert {"Encapsulate", "Decapsulate"} <= set(model.operation_names)
    for shape, values in model_additions.ENUM_VALUES.items():
        assert set(values) <= set(model.shape_for(shape).enum)
    encapsulate = model.operation_model("Encapsulate")
    assert encapsulate.input_shape.required_members == ["KeyId", "EncapsulationAlgorithm"]
    assert list(encapsulate.output_shape.members) == [
        "KeyId", "SharedSecret", "SharedSecretCiphertextBlob", "EncapsulationAlgorithm"
    ]
    decapsulate = model.operation_model("Decapsulate")
    assert decapsulate.input_shape.required_members == ["KeyId", "SharedSecretCiphertextBlob", "EncapsulationAlgorithm"]
    assert "InvalidCiphertextException" in [error.name for error in decapsulate.error_shapes]
    assert "EncapsulationAlgorithms" in model.shape_for("KeyMetadata").members
    assert "EncapsulationAlgorithms" in model.shape_for("GetPublicKeyResponse").members


def test_merging_leaves_the_loaded_model_unchanged() -> None:
    raw = botocore.session.get_session().get_service_data("kms")
    before = copy.deepcopy(raw)
    model_additions.merged(raw)
    assert raw == before


def test_a_model_that_already_has_ml_kem_wins() -> None:
    raw = installed_model()
    newer_encapsulate = copy.deepcopy(model_additions.SHAPES["EncapsulateRequest"])
    newer_encapsulate["members"]["Recipient"] = {"shape": "RecipientInfo"}  # what a later AWS might add
    raw["shapes"]["EncapsulateRequest"] = newer_encapsulate  # type: ignore[index]
    raw["operations"]["Encapsulate"] = {  # type: ignore[index]
        "name": "Encapsulate", "http": {"method": "POST", "requestUri": "/"},
        "input": {"shape": "EncapsulateRequest"}, "output": {"shape": "EncapsulateResponse"}, "errors": [],
    }
    raw["shapes"]["KeySpec"]["enum"] = [*raw["shapes"]["KeySpec"]["enum"], "ML_KEM_768", "ML_KEM_2048"]  # type: ignore[index]
    merged = ServiceModel(model_additions.merged(raw), service_name="kms")
    assert "Recipient" in merged.operation_model("Encapsulate").input_shape.members
    assert merged.operation_model("Encapsulate").error_shapes == []
    enum = merged.shape_for("KeySpec").enum
    assert enum.count("ML_KEM_768") == 1 and "ML_KEM_2048" in enum and "ML_KEM_512" in enum
