"""IAM policy ``Condition`` blocks: operators, set qualifiers and their evaluation against a request.

A block is ``{"<Qualifier>:<Operator>IfExists": {"<context key>": value | [values]}}``: every
operator and every key inside it must hold (AND); the values of one key are alternatives (OR).

* Keys are case-insensitive (``kms:CallerAccount`` = ``KMS:calleraccount``); so is the
  ``<context-key>`` part of ``kms:EncryptionContext:<context-key>``. Values are compared as the
  operator says (``StringEquals`` case-sensitively, ``StringEqualsIgnoreCase`` not).
* A request context maps lowercase keys to a tuple of string values; single-valued keys hold one.
* An encryption context may hold keys that differ only in case (``tenant`` and ``TENANT``), as
  AWS allows. ``kms:EncryptionContext:tenant`` then has one value per such pair, and a condition
  on it holds only if it holds for each pair on its own (qualifier and negation included): a
  caller cannot satisfy ``tenant = alice`` with ``TENANT: alice`` beside ``tenant: bob``.
  ``kms:EncryptionContextKeys`` lists every key as sent.
* Missing key: a negated operator (``StringNotEquals``…) holds, a positive one does not; ``IfExists``
  makes any operator hold; ``ForAllValues:`` holds and ``ForAnyValue:`` does not; ``Null`` tests it.
* Without a qualifier a multi-valued key matches when any of its values matches (negated: none).
* ``ForAnyValue:`` holds when some request value matches some policy value; ``ForAllValues:`` when
  every request value does (an empty set holds). With negated operators, "matches" reads "matches no
  policy value".

Supported operators: String(Not)Equals[IgnoreCase], String(Not)Like, Numeric*, Date*, Bool, Null,
Arn(Not)Equals, Arn(Not)Like, (Not)IpAddress. Policy variables (``${aws:username}``) are not expanded.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kmsgate.auth.wildcards import glob_match as glob_match  # also part of this module's interface
from kmsgate.core.errors import MalformedPolicyDocumentError

Context = Mapping[str, tuple[str, ...]]
MAX_CONDITION_VALUES = 1024
PER_PAIR_PREFIX = "kms:encryptioncontext:"  # one value per context pair, never a set


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> float | None:
    number = _number(text)
    if number is not None:
        return number
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def _compare(
    convert: Callable[[str], float | None], test: Callable[[float, float], bool]
) -> Callable[[str, str], bool]:
    def match(actual: str, wanted: str) -> bool:
        a, w = convert(actual), convert(wanted)
        return a is not None and w is not None and test(a, w)

    return match


def _arn_like(actual: str, pattern: str) -> bool:
    actual_parts = actual.split(":", 5)
    pattern_parts = pattern.split(":", 5)
    if len(actual_parts) != 6 or len(pattern_parts) != 6:
        return False
    return all(glob_match(p, a) for p, a in zip(pattern_parts, actual_parts))


def _ip_in(actual: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _valid_net(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _bool(actual: str, wanted: str) -> bool:
    return actual.lower() == wanted.lower()


@dataclass(frozen=True, slots=True)
class _Operator:
    match: Callable[[str, str], bool]
    negated: bool = False
    validate: Callable[[str], bool] = lambda value: True


_STRING = {
    "StringEquals": _Operator(lambda a, w: a == w),
    "StringNotEquals": _Operator(lambda a, w: a == w, negated=True),
    "StringEqualsIgnoreCase": _Operator(lambda a, w: a.casefold() == w.casefold()),
    "StringNotEqualsIgnoreCase": _Operator(lambda a, w: a.casefold() == w.casefold(), negated=True),
    "StringLike": _Operator(lambda a, w: glob_match(w, a)),
    "StringNotLike": _Operator(lambda a, w: glob_match(w, a), negated=True),
}
_ORDERED: dict[str, Callable[[float, float], bool]] = {
    "Equals": lambda a, w: a == w,
    "NotEquals": lambda a, w: a == w,
    "LessThan": lambda a, w: a < w,
    "LessThanEquals": lambda a, w: a <= w,
    "GreaterThan": lambda a, w: a > w,
    "GreaterThanEquals": lambda a, w: a >= w,
}
OPERATORS: dict[str, _Operator] = dict(_STRING)
for _suffix, _test in _ORDERED.items():
    OPERATORS["Numeric" + _suffix] = _Operator(
        _compare(_number, _test), _suffix == "NotEquals", lambda v: _number(v) is not None
    )
    OPERATORS["Date" + _suffix] = _Operator(
        _compare(_date, _test), _suffix == "NotEquals", lambda v: _date(v) is not None
    )
OPERATORS.update(
    {
        "Bool": _Operator(_bool, validate=lambda v: v.lower() in ("true", "false")),
        "ArnEquals": _Operator(_arn_like),
        "ArnLike": _Operator(_arn_like),
        "ArnNotEquals": _Operator(_arn_like, negated=True),
        "ArnNotLike": _Operator(_arn_like, negated=True),
        "IpAddress": _Operator(_ip_in, validate=_valid_net),
        "NotIpAddress": _Operator(_ip_in, negated=True, validate=_valid_net),
    }
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One key of one operator in a Condition block."""

    operator: str
    key: str
    values: tuple[str, ...]
    qualifier: str | None = None
    if_exists: bool = False

    def holds(self, context: Context) -> bool:
        actual = context.get(self.key)
        if self.operator == "Null":
            present = actual is not None
            return any((v.lower() == "true") != present for v in self.values)
        if actual is None:
            if self.if_exists or self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return OPERATORS[self.operator].negated
        if self.key.startswith(PER_PAIR_PREFIX):
            # One value per context pair whose key matches ignoring case: each pair must pass.
            return all(self._holds_on((value,)) for value in actual)
        return self._holds_on(actual)

    def _holds_on(self, actual: tuple[str, ...]) -> bool:
        op = OPERATORS[self.operator]

        def matches(value: str) -> bool:
            found = any(op.match(value, wanted) for wanted in self.values)
            return not found if op.negated else found

        if self.qualifier == "ForAllValues":
            return all(matches(v) for v in actual)
        if self.qualifier == "ForAnyValue":
            return any(matches(v) for v in actual)
        found = any(op.match(v, wanted) for v in actual for wanted in self.values)
        return not found if op.negated else found


def _policy_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedPolicyDocumentError("Condition values must be strings, numbers or booleans.")


def parse_conditions(block: Any) -> tuple[Condition, ...]:
    """Validate and flatten a statement's Condition block."""
    if not isinstance(block, dict):
        raise MalformedPolicyDocumentError("Condition must be an object of operators.")
    conditions = []
    for full_name, keys in block.items():
        name = full_name
        qualifier = None
        if ":" in name:
            qualifier, _, name = name.partition(":")
            if qualifier not in ("ForAllValues", "ForAnyValue"):
                raise MalformedPolicyDocumentError(f"Unknown condition set operator: {qualifier[:64]}.")
        if_exists = name.endswith("IfExists")
        if if_exists:
            name = name[: -len("IfExists")]
        if name != "Null" and name not in OPERATORS:
            raise MalformedPolicyDocumentError(f"Unsupported condition operator: {full_name[:64]}.")
        if name == "Null" and (if_exists or qualifier):
            raise MalformedPolicyDocumentError("The Null operator takes no qualifier or IfExists.")
        if not isinstance(keys, dict) or not keys:
            raise MalformedPolicyDocumentError(f"Condition operator {full_name[:64]} needs keys.")
        for key, raw in keys.items():
            if not isinstance(key, str) or ":" not in key or len(key) > 256:
                raise MalformedPolicyDocumentError(f"Invalid condition key: {str(key)[:64]}.")
            items: Sequence[Any] = raw if isinstance(raw, list) else [raw]
            if not items or len(items) > MAX_CONDITION_VALUES:
                raise MalformedPolicyDocumentError(
                    f"Condition key {key[:64]} needs 1..{MAX_CONDITION_VALUES} values."
                )
            values = tuple(_policy_value(item) for item in items)
            validate = (
                (lambda v: v.lower() in ("true", "false")) if name == "Null" else OPERATORS[name].validate
            )
            bad = [v for v in values if not validate(v)]
            if bad:
                raise MalformedPolicyDocumentError(
                    f"Condition {full_name[:64]} has an invalid value for {key[:64]}: {bad[0][:64]!r}."
                )
            conditions.append(Condition(name, key.lower(), values, qualifier, if_exists))
    return tuple(conditions)


ContextValue = str | bool | int | Sequence[str] | None


def normalize_context(context: Mapping[str, ContextValue]) -> dict[str, tuple[str, ...]]:
    """Lowercase keys and make every value a tuple of strings; ``None`` values are left out.

    Keys that differ only in case (``kms:EncryptionContext:tenant`` and ``…:TENANT``) share one
    entry holding all their values: none is dropped.
    """
    normalized: dict[str, tuple[str, ...]] = {}
    for key, value in context.items():
        if value is None:
            continue
        if isinstance(value, bool):
            values: tuple[str, ...] = ("true" if value else "false",)
        elif isinstance(value, (str, int)):
            values = (str(value),)
        else:
            values = tuple(str(v) for v in value)
        name = key.lower()
        normalized[name] = normalized.get(name, ()) + values
    return normalized
