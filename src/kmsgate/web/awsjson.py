"""The AWS JSON 1.1 codec for the KMS API, driven by botocore's published service model.

The service model is AWS's own machine-readable description of every operation: member names,
types, lengths, ranges, enums and patterns. Using it means the validation and wire names here
follow the API reference without a hand-copied table. Where the installed botocore predates part
of the API (ML-KEM), ``kmsgate.kms.model_additions`` supplies it, and botocore's own wins.

Decoding turns a request document into snake_case keyword arguments (blobs base64-decoded,
timestamps as POSIX seconds) and raises the error AWS raises for each violation:
``SerializationException`` for the wrong JSON type or bad base64, ``ValidationException``
naming the member for constraint violations. Encoding does the reverse for results.

Each operation's codec is compiled once from its shapes (``codec(name)``): a tree of small
functions with the wire names, snake_case names, member paths, enums and limits already
worked out, so a request walks no botocore model objects. Blobs are decoded with
``binascii.a2b_base64(strict_mode=True)``, which accepts a subset of what
``base64.b64decode(validate=True)`` accepts with the same result; anything it refuses gets the
lenient decoder's verdict, so the accepted set is unchanged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from kmsgate.core.errors import SerializationError, UnknownOperationError, ValidationError
from kmsgate.kms import model_additions

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@cache
def service_model() -> ServiceModel:
    """botocore's KMS model, with the parts of the API it predates (``kmsgate.kms.model_additions``)."""
    raw = botocore.session.get_session().get_service_data("kms")
    return ServiceModel(model_additions.merged(raw), service_name="kms")


@cache
def operation(name: str) -> OperationModel:
    model = service_model()
    if name not in model.operation_names:
        raise UnknownOperationError(f"Unknown operation {name}")
    return model.operation_model(name)


def snake_case(name: str) -> str:
    """``NumberOfBytes`` -> ``number_of_bytes``; ``AWSAccountId`` -> ``aws_account_id``."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


# -- decoding ---------------------------------------------------------------------------------


class _Violations:
    __slots__ = ("messages",)

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


Decoder = Callable[[Any, str, _Violations], Any]
Encoder = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class OperationCodec:
    """One operation's compiled request decoder and response encoder."""

    name: str
    model: OperationModel
    decode: Callable[[Any], dict[str, Any]]
    encode: Callable[[Any], dict[str, Any]]


@cache
def codec(name: str) -> OperationCodec:
    """The compiled codec of an operation (``UnknownOperationError`` for an unknown name)."""
    op = operation(name)
    return OperationCodec(name=name, model=op, decode=_request_decoder(op), encode=_response_encoder(op))


def decode_request(op: OperationModel, document: Any) -> dict[str, Any]:
    """Validate a request document against the operation's input shape; return snake_case kwargs."""
    return codec(op.name).decode(document)


def _request_decoder(op: OperationModel) -> Callable[[Any], dict[str, Any]]:
    shape = op.input_shape
    if shape is None:
        return lambda document: {}
    structure = _decoder(shape, {})

    def decode(document: Any) -> dict[str, Any]:
        if not isinstance(document, dict):
            raise SerializationError("Request body must be a JSON object")
        violations = _Violations()
        decoded: dict[str, Any] = structure(document, "", violations)
        violations.raise_if_any()
        return decoded

    return decode


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _decoder(shape: Shape, compiled: dict[str, Decoder]) -> Decoder:
    """Compile ``shape``; ``compiled`` memoises by shape name, which also ends recursion."""
    key = f"{shape.type_name}:{shape.name}"
    found = compiled.get(key)
    if found is not None:
        return found
    slot: list[Decoder] = []
    compiled[key] = lambda value, path, violations: slot[0](value, path, violations)
    built = _build_decoder(shape, compiled)
    slot.append(built)
    compiled[key] = built
    return built


def _build_decoder(shape: Shape, compiled: dict[str, Decoder]) -> Decoder:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        return _structure_decoder(shape, compiled)
    if kind == "list":
        assert isinstance(shape, ListShape)
        item = _decoder(shape.member, compiled)
        check_list = _length_check(meta)

        def decode_list(value: Any, path: str, violations: _Violations) -> Any:
            if not isinstance(value, list):
                raise SerializationError(f"Expected a list at '{path}'")
            if check_list is not None:
                check_list(len(value), value, path, violations)
            member_path = f"{path}.member"
            return [item(entry, member_path, violations) for entry in value]

        return decode_list
    if kind == "map":
        assert isinstance(shape, MapShape)
        map_value = _decoder(shape.value, compiled)

        def decode_map(value: Any, path: str, violations: _Violations) -> Any:
            if not isinstance(value, dict):
                raise SerializationError(f"Expected a map at '{path}'")
            return {k: map_value(v, f"{path}.{k}", violations) for k, v in value.items()}

        return decode_map
    if kind == "string":
        enum = shape.enum
        allowed = frozenset(enum) if enum else None
        enum_message = f"Member must satisfy enum value set: [{', '.join(enum)}]" if enum else ""
        check_string = _length_check(meta)

        def decode_string(value: Any, path: str, violations: _Violations) -> Any:
            if not isinstance(value, str):
                raise SerializationError(f"Expected a string at '{path}'")
            if allowed is not None and value not in allowed:
                violations.add(value, path, enum_message)
            if check_string is not None:
                check_string(len(value), value, path, violations)
            return value

        return decode_string
    if kind == "blob":
        check_blob = _length_check(meta)

        def decode_blob(value: Any, path: str, violations: _Violations) -> Any:
            if not isinstance(value, str):
                raise SerializationError(f"Expected a base64 string at '{path}'")
            raw = _b64decode(value, path)
            if check_blob is not None:
                check_blob(len(raw), None, path, violations)
            return raw

        return decode_blob
    if kind in ("integer", "long"):
        low, high = meta.get("min"), meta.get("max")

        def decode_integer(value: Any, path: str, violations: _Violations) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SerializationError(f"Expected an integer at '{path}'")
            if low is not None and value < low:
                violations.add(value, path, f"Member must have value greater than or equal to {low}")
            if high is not None and value > high:
                violations.add(value, path, f"Member must have value less than or equal to {high}")
            return value

        return decode_integer
    if kind == "boolean":

        def decode_boolean(value: Any, path: str, violations: _Violations) -> Any:
            if not isinstance(value, bool):
                raise SerializationError(f"Expected a boolean at '{path}'")
            return value

        return decode_boolean
    if kind == "timestamp":

        def decode_timestamp(value: Any, path: str, violations: _Violations) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SerializationError(f"Expected a timestamp (epoch seconds) at '{path}'")
            return float(value)

        return decode_timestamp
    return lambda value, path, violations: value


def _structure_decoder(shape: StructureShape, compiled: dict[str, Decoder]) -> Decoder:
    required = tuple((name, _camel(name)) for name in shape.required_members)
    members = {
        name: (snake_case(name), _camel(name), _decoder(member, compiled)) for name, member in shape.members.items()
    }

    def decode_structure(value: Any, path: str, violations: _Violations) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise SerializationError(f"Expected an object at '{path or 'body'}'")
        for name, camel in required:
            if value.get(name) is None:
                violations.add(None, f"{path}.{camel}" if path else camel, "Member must not be null")
        result: dict[str, Any] = {}
        for name, member_value in value.items():
            entry = members.get(name)
            if entry is None or member_value is None:
                continue  # AWS ignores members it does not know
            snake, camel, decode = entry
            result[snake] = decode(member_value, f"{path}.{camel}" if path else camel, violations)
        return result

    return decode_structure


def _b64decode(value: str, path: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SerializationError(f"Value at '{path}' is not valid base64") from None


def _length_check(meta: Mapping[str, Any]) -> Callable[[int, Any, str, _Violations], None] | None:
    low, high = meta.get("min"), meta.get("max")
    if low is None and high is None:
        return None

    def check(length: int, value: Any, path: str, violations: _Violations) -> None:
        shown = value if isinstance(value, str) and length <= 256 else None
        if low is not None and length < low:
            violations.add(shown, path, f"Member must have length greater than or equal to {low}")
        if high is not None and length > high:
            violations.add(shown, path, f"Member must have length less than or equal to {high}")

    return check


# -- encoding ---------------------------------------------------------------------------------


def encode_response(op: OperationModel, result: Any) -> dict[str, Any]:
    """Render a service result (dataclass or snake_case dict) with the operation's wire names."""
    return codec(op.name).encode(result)


def _response_encoder(op: OperationModel) -> Callable[[Any], dict[str, Any]]:
    shape = op.output_shape
    if shape is None:
        return lambda result: {}
    structure = _encoder(shape, {})

    def encode(result: Any) -> dict[str, Any]:
        if result is None:
            return {}
        encoded: dict[str, Any] = structure(result)
        return encoded

    return encode


@lru_cache(maxsize=4096)
def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def _identity(value: Any) -> Any:
    return value


def _encode_blob(value: Any) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _encoder(shape: Shape, compiled: dict[str, Encoder]) -> Encoder:
    key = f"{shape.type_name}:{shape.name}"
    found = compiled.get(key)
    if found is not None:
        return found
    slot: list[Encoder] = []
    compiled[key] = lambda value: slot[0](value)
    built = _build_encoder(shape, compiled)
    slot.append(built)
    compiled[key] = built
    return built


def _build_encoder(shape: Shape, compiled: dict[str, Encoder]) -> Encoder:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        return _structure_encoder(shape, compiled)
    if kind == "list":
        assert isinstance(shape, ListShape)
        item = _encoder(shape.member, compiled)
        if item is _identity:
            return list
        return lambda value: [item(entry) for entry in value]
    if kind == "map":
        assert isinstance(shape, MapShape)
        map_value = _encoder(shape.value, compiled)
        return lambda value: {k: map_value(v) for k, v in value.items()}
    if kind == "blob":
        return _encode_blob
    return _identity


def _structure_encoder(shape: StructureShape, compiled: dict[str, Encoder]) -> Encoder:
    wire_names = {_squash(name): name for name in shape.members}
    encoders = {name: _encoder(member, compiled) for name, member in shape.members.items()}
    plans: dict[type, tuple[tuple[str, str, Encoder], ...]] = {}

    def plan(cls: type) -> tuple[tuple[str, str, Encoder], ...]:
        steps = []
        for field in dataclasses.fields(cls):
            wire = wire_names.get(_squash(field.name))
            if wire is not None:
                steps.append((field.name, wire, encoders[wire]))
        plans[cls] = tuple(steps)
        return plans[cls]

    def encode_structure(value: Any) -> dict[str, Any]:
        encoded: dict[str, Any] = {}
        if isinstance(value, Mapping):
            for field, field_value in value.items():
                wire = wire_names.get(_squash(field))
                if wire is None or field_value is None:
                    continue
                encoded[wire] = encoders[wire](field_value)
            return encoded
        steps = plans.get(type(value)) or plan(type(value))
        for field, wire, encode in steps:
            field_value = getattr(value, field)
            if field_value is not None:
                encoded[wire] = encode(field_value)
        return encoded

    return encode_structure
