"""The AWS JSON 1.1 codec for the KMS API, driven by botocore's published service model.

The service model is AWS's own machine-readable description of every operation: member names,
types, lengths, ranges, enums and patterns. Using it means the validation and wire names here
follow the API reference without a hand-copied table.

Decoding turns a request document into snake_case keyword arguments (blobs base64-decoded,
timestamps as POSIX seconds) and raises the error AWS raises for each violation:
``SerializationException`` for the wrong JSON type or bad base64, ``ValidationException``
naming the member for constraint violations. Encoding does the reverse for results.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from kmsgate.core.errors import SerializationError, UnknownOperationError, ValidationError

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("kms")


@cache
def operation(name: str) -> OperationModel:
    model = service_model()
    if name not in model.operation_names:
        raise UnknownOperationError(f"Unknown operation {name}")
    return model.operation_model(name)


def snake_case(name: str) -> str:
    """``NumberOfBytes`` -> ``number_of_bytes``; ``AWSAccountId`` -> ``aws_account_id``."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


# -- decoding ---------------------------------------------------------------------------------


class _Violations:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{value}'" if isinstance(value, (str, int)) else None
        prefix = f"Value {shown} at" if shown is not None else "Value at"
        self.messages.append(f"{prefix} '{path}' failed to satisfy constraint: {constraint}")

    def raise_if_any(self) -> None:
        if self.messages:
            count = len(self.messages)
            noun = "error" if count == 1 else "errors"
            raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(self.messages))


def decode_request(op: OperationModel, document: Any) -> dict[str, Any]:
    """Validate a request document against the operation's input shape; return snake_case kwargs."""
    shape = op.input_shape
    if shape is None:
        return {}
    if not isinstance(document, dict):
        raise SerializationError("Request body must be a JSON object")
    violations = _Violations()
    decoded = _decode_structure(shape, document, "", violations)
    violations.raise_if_any()
    return decoded


def _member_path(parent: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{parent}.{camel}" if parent else camel


def _decode_structure(shape: StructureShape, value: Any, path: str, violations: _Violations) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SerializationError(f"Expected an object at '{path or 'body'}'")
    result: dict[str, Any] = {}
    for name in shape.required_members:
        if value.get(name) is None:
            violations.add(None, _member_path(path, name), "Member must not be null")
    for name, member_value in value.items():
        member = shape.members.get(name)
        if member is None or member_value is None:
            continue  # AWS ignores members it does not know
        result[snake_case(name)] = _decode(member, member_value, _member_path(path, name), violations)
    return result


def _decode(shape: Shape, value: Any, path: str, violations: _Violations) -> Any:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        return _decode_structure(shape, value, path, violations)  # type: ignore[arg-type]
    if kind == "list":
        if not isinstance(value, list):
            raise SerializationError(f"Expected a list at '{path}'")
        _check_length(len(value), meta, value, path, violations)
        member = shape.member  # type: ignore[attr-defined]
        return [_decode(member, item, f"{path}.member", violations) for item in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise SerializationError(f"Expected a map at '{path}'")
        assert isinstance(shape, MapShape)
        decoded_map = {}
        for map_key, map_value in value.items():
            decoded_map[map_key] = _decode(shape.value, map_value, f"{path}.{map_key}", violations)
        return decoded_map
    if kind == "string":
        if not isinstance(value, str):
            raise SerializationError(f"Expected a string at '{path}'")
        enum = shape.enum  # type: ignore[attr-defined]
        if enum and value not in enum:
            violations.add(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        _check_length(len(value), meta, value, path, violations)
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise SerializationError(f"Expected a base64 string at '{path}'")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SerializationError(f"Value at '{path}' is not valid base64") from None
        _check_length(len(raw), meta, None, path, violations)
        return raw
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SerializationError(f"Expected an integer at '{path}'")
        if "min" in meta and value < meta["min"]:
            violations.add(value, path, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            violations.add(value, path, f"Member must have value less than or equal to {meta['max']}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise SerializationError(f"Expected a boolean at '{path}'")
        return value
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SerializationError(f"Expected a timestamp (epoch seconds) at '{path}'")
        return float(value)
    return value


def _check_length(length: int, meta: Mapping[str, Any], value: Any, path: str, violations: _Violations) -> None:
    shown = value if isinstance(value, str) and length <= 256 else None
    if "min" in meta and length < meta["min"]:
        violations.add(shown, path, f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and length > meta["max"]:
        violations.add(shown, path, f"Member must have length less than or equal to {meta['max']}")


# -- encoding ---------------------------------------------------------------------------------


def encode_response(op: OperationModel, result: Any) -> dict[str, Any]:
    """Render a service result (dataclass or snake_case dict) with the operation's wire names."""
    shape = op.output_shape
    if shape is None or result is None:
        return {}
    if dataclasses.is_dataclass(result):
        result = {field.name: getattr(result, field.name) for field in dataclasses.fields(result)}
    return _encode_structure(shape, result)


@cache
def _wire_names(shape: StructureShape) -> dict[str, str]:
    return {_squash(name): name for name in shape.members}


def _encode_structure(shape: StructureShape, value: Mapping[str, Any]) -> dict[str, Any]:
    names = _wire_names(shape)
    encoded: dict[str, Any] = {}
    for field, field_value in value.items():
        wire = names.get(_squash(field))
        if wire is None or field_value is None:
            continue
        encoded[wire] = _encode(shape.members[wire], field_value)
    return encoded


def _encode(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _encode_structure(shape, value)  # type: ignore[arg-type]
    if kind == "list":
        assert isinstance(shape, ListShape)
        return [_encode(shape.member, item) for item in value]
    if kind == "map":
        assert isinstance(shape, MapShape)
        return {k: _encode(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    return value
