"""The AWS KMS wire protocol (JSON 1.1 over ``POST /``) as a thin adapter over ``KmsService``.

The route is a front of the shared request wrapper (``kmsgate.web.exchange``), like the gateway's:
a compressed body is refused, the request is authenticated (a pluggable ``Authenticator``: its
headers alone first, so an unknown access key, a bad scope or date is answered without reading
the body; then the body, capped, and its signature), shed with ``ThrottlingException`` when the
worker already serves ``--max-in-flight`` authenticated requests, counted in the worker's
in-flight count, metrics (route ``kms``) and access log. Then ``KmsApi.respond``: operation from
``X-Amz-Target`` -> JSON decode -> validation against the service model -> the service method
(which authorizes per key) -> JSON encode. Every ``KmsError`` is rendered here and only here, as
``{"__type": code, "message": message}`` with its HTTP status; anything else is a logged
``KMSInternalException`` that tells the caller nothing about internals. Every request, answered
by the service or refused before it, leaves one audit entry (``AuditSink``); a request whose
entry cannot be written is answered ``KMSInternalException`` instead.

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
import uuid
from collections.abc import Awaitable, Callable
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
    ThrottlingError,
    UnknownOperationError,
    UnsupportedMediaTypeError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller, account_root
from kmsgate.kms import differences
from kmsgate.kms.audit_context import REQUEST_AUTHORIZATION, REQUEST_KEY_ARN
from kmsgate.web import awsjson
from kmsgate.web.connections import BodyReadTimeout
from kmsgate.web.exchange import Authenticated, Exchange, Failure, endpoint
from kmsgate.web.inflight import counted_by_handlers
from kmsgate.web.malformed import Malformed

log = logging.getLogger("kmsgate.kms")

ROUTE = "kms"
TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_REQUEST_BYTES = 256 * 1024  # the largest valid KMS request is far smaller (6 KiB blobs, 32 KiB policies)
INTERNAL_ERROR_MESSAGE = "An internal error occurred; see the server log for the request id"
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


def _target(request: web.Request) -> str:
    """The ``X-Amz-Target`` header as text that any JSON encoder takes. aiohttp hands over header
    bytes that are not UTF-8 as lone surrogates (``surrogateescape``), which JSON cannot carry, and
    the target is quoted in error messages and audit entries: such bytes are shown escaped (``\\x8a``)."""
    target = request.headers.get("X-Amz-Target", "")
    if target.isascii():
        return target
    return target.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _operation_name(target: str) -> str:
    return target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else target


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
        self.authenticator = authenticator
        self._audit = audit
        self._operations: dict[str, _Operation] = {}
        self._id_prefix = _request_id_prefix()
        self._id_counter = itertools.count(int.from_bytes(os.urandom(6), "big"))

    def _next_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter) & 0xFFFFFFFFFFFF:012x}"

    async def respond(self, request: web.Request, exchange: Exchange) -> web.Response:
        """The answer to an authenticated request (``exchange.body`` is its whole body)."""
        request_id = self._next_request_id()
        target = _target(request)
        operation_name = _operation_name(target)
        caller = exchange.caller
        body = exchange.body or b""
        exchange.bytes_in = len(body)
        kwargs: dict[str, Any] = {}
        REQUEST_KEY_ARN.set(None)
        REQUEST_AUTHORIZATION.set(None)
        try:
            if not target.startswith(TARGET_PREFIX):
                raise UnknownOperationError(f"Unknown operation {target or '(missing X-Amz-Target)'}")
            op = self._operations.get(operation_name) or self._operation(operation_name)
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
            exc_internal = KmsInternalError(INTERNAL_ERROR_MESSAGE)
            response = _error_response(exc_internal, request_id)
            code = exc_internal.code
        return self._audited(response, request, request_id, operation_name, caller, kwargs, code,
                             REQUEST_KEY_ARN.get(), REQUEST_AUTHORIZATION.get())

    def refuse(self, error: KmsError, request: web.Request, caller: Caller | None) -> web.Response:
        """The answer to a request refused before ``respond`` (authentication, compressed body,
        shed), audited as every request is."""
        request_id = self._next_request_id()
        operation_name = _operation_name(_target(request))
        return self._audited(_error_response(error, request_id), request, request_id, operation_name, caller, {},
                             error.code, None, None)

    def _audited(self, response: web.Response, request: web.Request, request_id: str, operation_name: str,
                 caller: Caller | None, kwargs: dict[str, Any], code: str | None, key_arn: str | None,
                 authorization: Authorization | None) -> web.Response:
        """``response``, once its audit entry is written; if the log failed meanwhile, the answer is
        withheld, as for a refusal."""
        if self._audit is None:
            return response
        entry = {
            "request_id": request_id,
            "operation": operation_name,
            "caller": caller,
            "source_ip": request.remote,
            "key_arn": key_arn,
            "key_id": kwargs.get("key_id") or kwargs.get("destination_key_id") or kwargs.get("target_key_id"),
            "encryption_context": kwargs.get("encryption_context"),
            "error_code": code,
            "access_key_id": _claimed_access_key_id(request) if caller is None else None,
            "authorized_by": authorization.basis if authorization is not None else None,
            "grant_id": authorization.grant_id if authorization is not None else None,
        }
        try:
            self._audit.record(entry)
        except KmsError as exc:
            return _error_response(exc, request_id)
        return response

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


KMS_API: web.AppKey[KmsApi] = web.AppKey("kms_api", KmsApi)


def _compressed_body() -> KmsError:
    return UnsupportedMediaTypeError("Compressed request bodies (Content-Encoding) are not accepted.")


class KmsFront:
    """The KMS API as a front of the request wrapper: SigV4 (service ``kms``) over the whole body,
    failures as ``{"__type", "message"}`` with the ``KmsError``'s status, each one audited."""

    compressed_body_refusal = staticmethod(_compressed_body)

    async def authenticate(self, request: web.Request, api: KmsApi) -> Authenticated:
        pending = api.authenticator.check_headers(request)  # nothing of the body is read before this passes
        try:
            body = await _read_capped(request)
        except BodyReadTimeout:
            raise RequestTimeoutError(BodyReadTimeout.MESSAGE) from None
        return Authenticated(pending.verify_body(body), body=body)

    def failure(self, exc: BaseException) -> Failure:
        error = exc if isinstance(exc, KmsError) else KmsInternalError(INTERNAL_ERROR_MESSAGE)
        return Failure(error.status, error.code, error)

    def saturated(self) -> Failure:
        return self.failure(ThrottlingError("Rate exceeded; retry later."))

    def render(self, failure: Failure, request: web.Request, exchange: Exchange) -> web.Response:
        error = failure.error
        if not isinstance(error, KmsError):
            error = KmsInternalError(INTERNAL_ERROR_MESSAGE)
        return request.app[KMS_API].refuse(error, request, exchange.authenticated)


def serve(request: web.Request, api: KmsApi, exchange: Exchange) -> Awaitable[web.StreamResponse]:
    """The wrapper's handler: ``api.respond`` (its coroutine, awaited by the wrapper)."""
    return api.respond(request, exchange)


def add_kms_route(app: web.Application) -> None:
    """Serve the KMS API at ``POST /`` of ``app`` over the ``KmsApi`` it keeps under ``KMS_API``
    (and the ``Load`` under ``kmsgate.web.exchange.LOAD``, shared with the gateway's fronts)."""
    counted_by_handlers(app)
    app.router.add_post("/", endpoint(ROUTE, serve, service=KMS_API, front=KmsFront()))


async def _read_capped(request: web.Request) -> bytes:
    """The whole request body, however many reads it arrives in; at most ``MAX_REQUEST_BYTES``
    (each read has a deadline, see ``kmsgate.web.connections``)."""
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


def malformed_response(malformed: Malformed) -> web.Response:
    """A request that is not well-formed HTTP/1.1, in the KMS's error shape (``kmsgate.web.malformed``)."""
    return _response(400, orjson.dumps({"__type": "ValidationException", "message": malformed.message}),
                     str(uuid.uuid4()))


def _error_response(exc: KmsError, request_id: str) -> web.Response:
    return _response(exc.status, orjson.dumps({"__type": exc.code, "message": exc.message}), request_id)
