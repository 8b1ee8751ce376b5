"""What AWS's KMS API has that an older botocore's service model lacks: ML-KEM.

kmsgate validates requests against botocore's KMS model (``kmsgate.web.awsjson``). The botocore
that aiobotocore pins can predate ML-KEM, so this module declares, from AWS's KMS API reference,
the ML-KEM parts of the API:

- the operations ``Encapsulate`` (KeyId, EncapsulationAlgorithm, GrantTokens, DryRun ->
  KeyId, SharedSecret, SharedSecretCiphertextBlob, EncapsulationAlgorithm) and ``Decapsulate``
  (KeyId, SharedSecretCiphertextBlob, EncapsulationAlgorithm, GrantTokens, DryRun -> KeyId,
  SharedSecret, EncapsulationAlgorithm), with the errors the reference lists for each;
- the enum ``EncapsulationAlgorithmSpec`` (``ML_KEM``) and the values ML-KEM added to
  ``KeySpec`` and ``DataKeyPairSpec`` (``ML_KEM_512/768/1024``), ``KeyUsageType``
  (``ENCAPSULATE_DECAPSULATE``), ``GrantOperation`` and ``KeyLastUsageTrackingOperation``
  (``Encapsulate``, ``Decapsulate``);
- the ``EncapsulationAlgorithms`` member of ``KeyMetadata`` and of ``GetPublicKeyResponse``.

Members reuse the model's own shapes for what they carry: ``KeyIdType`` (1 to 2048 characters),
``GrantTokenList`` (at most 10), ``CiphertextType`` (1 to 6144 bytes) for the encapsulated
secret and ``PlaintextType`` for the shared secret, as the model types DeriveSharedSecret's.

``merged`` adds each of these only where the loaded model has no such operation, shape, member
or enum value, so a botocore that knows ML-KEM is used as it is. Pure: dictionaries in, a new
dictionary out; the loader's cached model is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_COMMON_ERRORS = (
    "NotFoundException",
    "DisabledException",
    "KeyUnavailableException",
    "DependencyTimeoutException",
    "InvalidGrantTokenException",
    "InvalidKeyUsageException",
    "KMSInternalException",
    "KMSInvalidStateException",
    "DryRunOperationException",
)

ENUM_VALUES: Mapping[str, tuple[str, ...]] = {
    "KeySpec": ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"),
    "DataKeyPairSpec": ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"),
    "KeyUsageType": ("ENCAPSULATE_DECAPSULATE",),
    "GrantOperation": ("Encapsulate", "Decapsulate"),
    "KeyLastUsageTrackingOperation": ("Encapsulate", "Decapsulate"),
}

SHAPES: Mapping[str, dict[str, Any]] = {
    "EncapsulationAlgorithmSpec": {"type": "string", "enum": ["ML_KEM"]},
    "EncapsulationAlgorithmSpecList": {"type": "list", "member": {"shape": "EncapsulationAlgorithmSpec"}},
    "EncapsulateRequest": {
        "type": "structure",
        "required": ["KeyId", "EncapsulationAlgorithm"],
        "members": {
            "KeyId": {"shape": "KeyIdType"},
            "EncapsulationAlgorithm": {"shape": "EncapsulationAlgorithmSpec"},
            "GrantTokens": {"shape": "GrantTokenList"},
            "DryRun": {"shape": "NullableBooleanType"},
        },
    },
    "EncapsulateResponse": {
        "type": "structure",
        "members": {
            "KeyId": {"shape": "KeyIdType"},
            "SharedSecret": {"shape": "PlaintextType"},
            "SharedSecretCiphertextBlob": {"shape": "CiphertextType"},
            "EncapsulationAlgorithm": {"shape": "EncapsulationAlgorithmSpec"},
        },
    },
    "DecapsulateRequest": {
        "type": "structure",
        "required": ["KeyId", "SharedSecretCiphertextBlob", "EncapsulationAlgorithm"],
        "members": {
            "KeyId": {"shape": "KeyIdType"},
            "SharedSecretCiphertextBlob": {"shape": "CiphertextType"},
            "EncapsulationAlgorithm": {"shape": "EncapsulationAlgorithmSpec"},
            "GrantTokens": {"shape": "GrantTokenList"},
            "DryRun": {"shape": "NullableBooleanType"},
        },
    },
    "DecapsulateResponse": {
        "type": "structure",
        "members": {
            "KeyId": {"shape": "KeyIdType"},
            "SharedSecret": {"shape": "PlaintextType"},
            "EncapsulationAlgorithm": {"shape": "EncapsulationAlgorithmSpec"},
        },
    },
}

MEMBERS: Mapping[str, Mapping[str, dict[str, str]]] = {
    "KeyMetadata": {"EncapsulationAlgorithms": {"shape": "EncapsulationAlgorithmSpecList"}},
    "GetPublicKeyResponse": {"EncapsulationAlgorithms": {"shape": "EncapsulationAlgorithmSpecList"}},
}


def _operation(name: str, errors: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": name,
        "http": {"method": "POST", "requestUri": "/"},
        "input": {"shape": f"{name}Request"},
        "output": {"shape": f"{name}Response"},
        "errors": [{"shape": error} for error in errors],
    }


OPERATIONS: Mapping[str, dict[str, Any]] = {
    "Encapsulate": _operation("Encapsulate", _COMMON_ERRORS),
    # Decapsulate also answers InvalidCiphertextException: a blob of the wrong length for the key spec.
    "Decapsulate": _operation("Decapsulate", (*_COMMON_ERRORS, "InvalidCiphertextException")),
}


def merged(model: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw service model ``model`` with whatever of the above it lacks."""
    result: dict[str, Any] = copy.deepcopy(dict(model))
    shapes: dict[str, Any] = result.setdefault("shapes", {})
    operations: dict[str, Any] = result.setdefault("operations", {})
    for name, shape in SHAPES.items():
        shapes.setdefault(name, copy.deepcopy(shape))
    for name, operation in OPERATIONS.items():
        operations.setdefault(name, copy.deepcopy(operation))
    for shape_name, values in ENUM_VALUES.items():
        enum_shape = shapes.get(shape_name)
        if enum_shape is None or "enum" not in enum_shape:
            continue
        known = enum_shape["enum"]
        enum_shape["enum"] = [*known, *(value for value in values if value not in known)]
    for shape_name, members in MEMBERS.items():
        if shape_name not in shapes:
            continue
        structure_members: dict[str, Any] = shapes[shape_name].setdefault("members", {})
        for member_name, member in members.items():
            structure_members.setdefault(member_name, dict(member))
    return result
