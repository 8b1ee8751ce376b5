"""The AWS KMS wire protocol (JSON 1.1 over ``POST /``) as a thin adapter over ``KmsService``.

Request path: operation from ``X-Amz-Target`` -> authentication from the headers alone (a
pluggable ``Authenticator``: an unknown access key, a bad scope or date is answered without
reading the body) -> the body, capped -> its signature -> JSON decode -> validation against the service model -> the service method
(which authorizes per key) -> JSON encode. Every ``KmsError`` is rendered here and only here, as
``{"__type": code, "message": message}`` with its HTTP status; anything else is a logged
``KMSInternalException`` that tells the caller nothing about internals.

Per operation, everything that does not depend on the request (the compiled codec, the bound
service method, its required and accepted arguments) is looked up once and kept. Request ids
are UUID-shaped: a random prefix drawn when the adapter is built (so every worker process has
its own) followed by a 48-bit counter, unique without a ``uuid4()`` per request.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import orjson
from aiohttp import web

from kmsgate.auth.authorizer import Authorization
from kmsgate.core.errors import (
    KmsError,
    KmsInternalError,
    RequestTimeoutError,
    SerializationError,
    UnknownOperationError,
    UnsupportedMediaTypeError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller, account_root
from kmsgate.gateway.connections import BodyReadTimeout, uncompressed
from kmsgate.kms import differences
from kmsgate.kms.audit_context import REQUEST_AUTHORIZATION, REQUEST_KEY_ARN
from kmsgate.web import awsjson

log = logging.getLogger("kmsgate.kms")

TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_REQUEST_BYTES = 256 * 1024  # the largest valid KMS request is far smaller (6 KiB blobs, 32 KiB policies)
_IGNORED_WHEN_FALSE = frozenset({"dry_run"})
_ACCESS_KEY_ID_RE = re.compile(r"[A-Z0-9]{16,128}")


class PendingAuthentication(Protocol):
    """A request whose headers passed authentication; the body decides the rest."""

    def verify_body(self, body: bytes) -> Caller: ...


class Authenticator(Protocol):
    """Turns a received request into the principal it acts as, or raises a ``KmsError``.

    ``check_headers`` reads nothing but the request line and headers; only when it passes is the
    body read and handed to ``verify_body`` of what it returned.
    """

    def check_headers(self, request: web.Request) -> PendingAuthentication: ...


@dataclass(frozen=True, slots=True)
class Trusted:
    """A caller known from the headers alone, whatever the body."""

    caller: Caller

    def verify_body(self, body: bytes) -> Caller:
        return self.caller

    def verify_declared_payload(self) -> Caller:
        return self.caller


class TrustingAuthenticator:
    """Every request acts as the account root. For ``--insecure-no-auth`` only."""

    def __init__(self, account_id: str) -> None:
        self._caller = account_root(account_id)

    def check_headers(self, request: web.Request) -> Trusted:
        return Trusted(Caller(arn=self._caller.arn, account_id=self._caller.account_id, source_ip=request.remote))

    def authenticate(self, request: web.Request, body: bytes) -> Caller:
        return self.check_headers(request).caller


class AuditSink(Protocol):
    @property
    def writable(self) -> bool:
        """False while the audit log cannot be written: requests are then refused, not served unaudited."""
        ...

    def record(self, entry: dict[str, Any]) -> None: ...


@cache
def _accepted(method: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(method).parameters) - {"caller"}


@cache
def _required(method: Callable[..., Any]) -> tuple[str, ...]:
    """Arguments the service cannot do without, even where the service model marks them optional
    (the model leaves Decrypt's CiphertextBlob optional for asymmetric and dry-run uses)."""
    return tuple(
        name
        for name, parameter in inspect.signature(method).parameters.items()
        if name != "caller" and parameter.default is inspect.Parameter.empty
    )


def _wire_name(snake: str) -> str:
    """``ciphertext_blob`` -> ``ciphertextBlob``, the member path AWS puts in validation messages."""
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True, slots=True)
class _Operation:
    """What the adapter needs of one operation, resolved once."""

    name: str
    codec: awsjson.OperationCodec
    method: Callable[..., Any] | None  # None: the service does not implement it
    required: tuple[str, ...]
    accepted: frozenset[str]


def _request_id_prefix() -> str:
    """Random ``xxxxxxxx-xxxx-4xxx-yxxx`` (UUID version 4 and variant bits), drawn once."""
    value = bytearray(os.urandom(10))
    value[6] = (value[6] & 0x0F) | 0x40
    value[8] = (value[8] & 0x3F) | 0x80
    text = value.hex()
    return f"{text[0:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}"


class KmsApi:
    """The aiohttp handler for ``POST /``."""

    def __init__(self, service: Any, authenticator: Authenticator, audit: AuditSink | None = None) -> None:
        self._service = service
        self._authenticator = authenticator
        self._audit = audit
        self._operations: dict[str, _Operation] = {}
        self._id_prefix = _request_id_prefix()
        self._id_counter = itertools.count(int.from_bytes(os.urandom(6), "big"))

    def _next_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter) & 0xFFFFFFFFFFFF:012x}"

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        request_id = self._next_request_id()
        target = request.headers.get("X-Amz-Target", "")
        operation_name = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else target
        caller: Caller | None = None
        kwargs: dict[str, Any] = {}
        REQUEST_KEY_ARN.set(None)
        REQUEST_AUTHORIZATION.set(None)
        try:
            if not target.startswith(TARGET_PREFIX):
                raise UnknownOperationError(f"Unknown operation {target or '(missing X-Amz-Target)'}")
            op = self._operations.get(operation_name) or self._operation(operation_name)
            pending = self._authenticator.check_headers(request)
            body = await _read_body(request)
            caller = pending.verify_body(body)
            try:
                document = orjson.loads(body) if body and not body.isspace() else {}
            except orjson.JSONDecodeError:
                raise SerializationError("Request body is not valid JSON") from None
            kwargs = op.codec.decode(document)
            method = op.method
            if method is None:
                raise UnsupportedOperationError(differences.unsupported_operation_message(operation_name))
            missing = [name for name in op.required if name not in kwargs]
            if missing:
                count = len(missing)
                raise ValidationError(
                    f"{count} validation error{'s' if count > 1 else ''} detected: "
                    + "; ".join(
                        f"Value null at '{_wire_name(name)}' failed to satisfy constraint: Member must not be null"
                        for name in missing
                    )
                )
            accepted = op.accepted
            for name in list(kwargs):
                if name not in accepted:
                    if name in _IGNORED_WHEN_FALSE and kwargs[name] is False:
                        del kwargs[name]
                        continue
                    raise UnsupportedOperationError(f"kmsgate does not support the {name} parameter of {operation_name}")
            if self._audit is not None and not self._audit.writable:
                raise KmsInternalError("The audit log cannot be written; the request was not carried out.")
            result = await method(caller=caller, **kwargs)
            response = _response(200, orjson.dumps(op.codec.encode(result)), request_id)
            code = None
        except KmsError as exc:
            response = _error_response(exc, request_id)
            code = exc.code
        except Exception:
            log.exception("internal error", extra={"request_id": request_id, "operation": operation_name})
            exc_internal = KmsInternalError("An internal error occurred; see the server log for the request id")
            response = _error_response(exc_internal, request_id)
            code = exc_internal.code
        # Per-request lines are debug: the audit log is the record of every KMS call, and an
        # info line per request would cost more than the cryptography it describes.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "kms request",
                extra={
                    "request_id": request_id,
                    "operation": operation_name,
                    "status": response.status,
                    "error_code": code,
                    "principal": caller.arn if caller else None,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
        if self._audit is not None:
            authorization = REQUEST_AUTHORIZATION.get()
            try:
                self._audit_record(request, request_id, operation_name, caller, kwargs, code, authorization)
            except KmsError as exc:  # the log failed meanwhile: the answer is withheld, as for a refusal
                response = _error_response(exc, request_id)
        return response

    def _audit_record(self, request: web.Request, request_id: str, operation_name: str, caller: Caller | None,
                      kwargs: dict[str, Any], code: str | None, authorization: Authorization | None) -> None:
        if self._audit is not None:
            self._audit.record(
                {
                    "request_id": request_id,
                    "operation": operation_name,
                    "caller": caller,
                    "source_ip": request.remote,
                    "key_arn": REQUEST_KEY_ARN.get(),
                    "key_id": kwargs.get("key_id") or kwargs.get("destination_key_id") or kwargs.get("target_key_id"),
                    "encryption_context": kwargs.get("encryption_context"),
                    "error_code": code,
                    "access_key_id": _claimed_access_key_id(request) if caller is None else None,
                    "authorized_by": authorization.basis if authorization is not None else None,
                    "grant_id": authorization.grant_id if authorization is not None else None,
                }
            )

    def _operation(self, operation_name: str) -> _Operation:
        """Resolve and keep an operation (``UnknownOperationError`` for a name AWS does not have)."""
        codec = awsjson.codec(operation_name)
        method = getattr(self._service, awsjson.snake_case(operation_name), None)
        if method is None or not inspect.iscoroutinefunction(method):
            op = _Operation(operation_name, codec, None, (), frozenset())
        else:
            op = _Operation(operation_name, codec, method, _required(method), _accepted(method))
        self._operations[operation_name] = op
        return op


async def _read_body(request: web.Request) -> bytes:
    """The whole request body, however many reads it arrives in; at most ``MAX_REQUEST_BYTES``.

    A compressed body is refused unread (its inflated size would escape the cap), and a body that
    stops arriving fails with ``RequestTimeoutException`` (each read has a deadline, see
    ``kmsgate.gateway.connections``).
    """
    if not uncompressed(request.headers):
        raise UnsupportedMediaTypeError("Compressed request bodies (Content-Encoding) are not accepted.")
    try:
        return await _read_capped(request)
    except BodyReadTimeout:
        raise RequestTimeoutError(BodyReadTimeout.MESSAGE) from None


async def _read_capped(request: web.Request) -> bytes:
    declared = request.content_length
    if declared is not None and declared > MAX_REQUEST_BYTES:
        raise ValidationError(f"Request body is larger than {MAX_REQUEST_BYTES} bytes")
    content = request.content
    body = await content.read(MAX_REQUEST_BYTES + 1)
    if declared is not None and len(body) == declared:
        return body  # the usual case: it came in one piece
    parts = [body]
    size = len(body)
    while body and size <= MAX_REQUEST_BYTES:
        body = await content.read(MAX_REQUEST_BYTES + 1 - size)
        parts.append(body)
        size += len(body)
    if size > MAX_REQUEST_BYTES:
        raise ValidationError(f"Request body is larger than {MAX_REQUEST_BYTES} bytes")
    return b"".join(parts)


def _claimed_access_key_id(request: web.Request) -> str | None:
    """The access key id an unauthenticated request claimed (``Credential=<id>/...``), for the
    audit entry of a failed authentication; only well-formed ids, so no secret pasted into the
    header by mistake is ever written."""
    authorization = request.headers.get("Authorization", "")
    start = authorization.find("Credential=")
    if start < 0:
        return None
    candidate = authorization[start + len("Credential=") :].split("/", 1)[0]
    return candidate if _ACCESS_KEY_ID_RE.fullmatch(candidate) else None


def _response(status: int, body: bytes, request_id: str) -> web.Response:
    # Headers given whole: cheaper than aiohttp parsing a content_type argument per response.
    return web.Response(
        body=body, status=status, headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}
    )


def _error_response(exc: KmsError, request_id: str) -> web.Response:
    return _response(exc.status, orjson.dumps({"__type": exc.code, "message": exc.message}), request_id)
