"""The auth pieces shaped for the service and protocol seams that call them.

* ``SigV4Authenticator`` — ``check_headers(request)`` (phase 1: headers only) returning what
  verifies the body (``verify_body``), for the KMS JSON adapter.
* ``GatewayAuthenticator`` — ``authenticate(request, body) -> Caller`` for gateway routes, also
  accepting ``Authorization: Bearer`` tokens declared in the identities file, and the same
  ``check_headers`` for SigV4 requests whose body must be read to verify them.
* ``KeyPolicyAuthorizer`` — ``authorize(caller, action, key, conditions)`` for ``KmsService``: key
  policies and grants for key actions, ``account_actions`` for account actions; plus
  ``check_new_policy`` for CreateKey/PutKeyPolicy.
* ``KmsAuditSink`` — ``record(entry)`` turning the adapter's audit dict into an ``AuditRecord``.

Requests are read duck-typed (``method``, ``raw_path``, ``headers``, ``remote``: what an aiohttp
``web.Request`` has), so this module does not depend on the web framework.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from kmsgate.auth.audit import AuditLog, AuditRecord, audit_line, outcome_of_code
from kmsgate.auth.authorizer import (
    Authorization,
    KeyAccess,
    RequestFacts,
    authorize,
    authorize_account_action,
    check_lockout,
)
from kmsgate.auth.grants import Grant, check_grant_tokens
from kmsgate.auth.identities import IdentityDirectory
from kmsgate.auth.policy import KeyPolicy, parse_policy
from kmsgate.auth.sigv4 import PendingSignature, SigV4Verifier
from kmsgate.core.errors import MissingAuthenticationTokenError, UnrecognizedClientError
from kmsgate.core.principal import Caller

POLICY_CACHE_ENTRIES = 1024
ROOT_AUTHORIZATION = Authorization("root")
BEARER_PREFIX = "bearer "


class ReceivedRequest(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def headers(self) -> Any: ...
    @property
    def remote(self) -> str | None: ...


class KeyLike(Protocol):
    """What the authorizer needs of a key: its ARN and key policy text."""

    @property
    def arn(self) -> str: ...
    @property
    def policy(self) -> str: ...


def _parts(request: ReceivedRequest) -> tuple[str, str, Iterable[tuple[str, str]]]:
    path, _, query = request.raw_path.partition("?")
    return path, query, request.headers.items()


class SigV4Authenticator:
    """Authenticates KMS API requests with SigV4 (service ``kms``)."""

    def __init__(self, verifier: SigV4Verifier) -> None:
        self._verifier = verifier

    def check_headers(self, request: ReceivedRequest) -> PendingSignature:
        path, query, headers = _parts(request)
        return self._verifier.check_headers(request.method, path, query, headers, source_ip=request.remote)

    def authenticate(self, request: ReceivedRequest, body: bytes) -> Caller:
        return self.check_headers(request).verify_body(body)


class GatewayAuthenticator:
    """Authenticates gateway requests: SigV4 (S3-style, unsigned payloads allowed) or a bearer token.

    Raises ``MissingAuthenticationTokenError`` without credentials (the gateway answers 401) and
    ``UnrecognizedClientError`` for an unknown token.
    """

    def __init__(self, directory: IdentityDirectory, verifier: SigV4Verifier) -> None:
        self._directory = directory
        self._verifier = verifier

    def authenticate(self, request: ReceivedRequest, body: bytes) -> Caller:
        authorization = request.headers.get("Authorization")
        if authorization is not None and authorization[: len(BEARER_PREFIX)].lower() == BEARER_PREFIX:
            principal = self._directory.lookup_token(authorization[len(BEARER_PREFIX) :].strip())
            if principal is None:
                raise UnrecognizedClientError("The security token included in the request is invalid.")
            return principal.caller(source_ip=request.remote)
        return self.check_headers(request).verify_body(body)

    def check_headers(self, request: ReceivedRequest) -> PendingSignature:
        """Phase 1 of a SigV4 request: its headers alone (``MissingAuthenticationTokenError`` without any)."""
        if request.headers.get("Authorization") is None:
            raise MissingAuthenticationTokenError("Missing Authentication Token")
        path, query, headers = _parts(request)
        return self._verifier.check_headers(request.method, path, query, headers, source_ip=request.remote)


class KeyPolicyAuthorizer:
    """Key policies, grants and account actions behind the service's ``Authorizer`` seam.

    ``grants_for(key_arn)`` returns the key's live grants (none until grants are stored).
    ``conditions`` may hold ``encryption_context``, ``request_alias``, ``grant_tokens``,
    ``grant_request`` (a ``Grant``, for CreateGrant) and ``extra`` (more condition keys).
    """

    def __init__(
        self,
        directory: IdentityDirectory,
        grants_for: Callable[[str], Sequence[Grant]] = lambda key_arn: (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._grants_for = grants_for
        self._clock = clock
        self._policies: OrderedDict[str, KeyPolicy] = OrderedDict()

    def policy(self, text: str) -> KeyPolicy:
        """The parsed policy, from a small LRU cache keyed by the policy text."""
        cached = self._policies.get(text)
        if cached is not None:
            self._policies.move_to_end(text)
            return cached
        parsed = parse_policy(text)
        self._policies[text] = parsed
        if len(self._policies) > POLICY_CACHE_ENTRIES:
            self._policies.popitem(last=False)
        return parsed

    def authorize(
        self, caller: Caller, action: str, key: KeyLike | None, conditions: Mapping[str, Any]
    ) -> Authorization:
        check_grant_tokens(tuple(conditions.get("grant_tokens") or ()))
        if key is None:
            return authorize_account_action(caller, action, self._directory.principal(caller.arn))
        if caller.is_account_root:
            return ROOT_AUTHORIZATION
        facts = RequestFacts(
            encryption_context=conditions.get("encryption_context"),
            request_alias=conditions.get("request_alias"),
            grant_request=conditions.get("grant_request"),
            now=self._clock(),
            extra=conditions.get("extra") or {},
        )
        access = KeyAccess(key.arn, self.policy(key.policy), tuple(self._grants_for(key.arn)))
        return authorize(caller, action, access, facts)

    def check_new_policy(self, caller: Caller, key_arn: str, policy: str, bypass: bool) -> KeyPolicy:
        """Validate a policy for CreateKey/PutKeyPolicy and apply the lockout safety check."""
        parsed = parse_policy(policy)
        check_lockout(parsed, caller, key_arn, bypass=bypass)
        return parsed


class KmsAuditSink:
    """Adapts the KMS adapter's audit dict to ``AuditLog.record``.

    Keys read: ``request_id``, ``operation``, ``caller`` (a ``Caller`` or ``None``), ``source_ip``,
    ``key_arn`` or ``key_id``, ``encryption_context``, ``error_code``, ``access_key_id``,
    ``authorized_by``, ``grant_id``. Nothing else in the dict is written.
    """

    def __init__(self, log: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self._log = log
        self._clock = clock

    @property
    def writable(self) -> bool:
        """Whether records are accepted now (see ``AuditLog.writable``)."""
        return self._log.writable

    @property
    def failed_writes(self) -> int:
        return self._log.failed_writes

    def to_record(self, entry: Mapping[str, Any]) -> AuditRecord:
        caller = entry.get("caller")
        context = entry.get("encryption_context")
        code = entry.get("error_code")
        return AuditRecord(
            time=self._clock(),
            request_id=str(entry.get("request_id", "")),
            operation=str(entry.get("operation", "")),
            outcome=outcome_of_code(code),
            error_code=code,
            principal_arn=caller.arn if isinstance(caller, Caller) else None,
            access_key_id=(caller.access_key_id if isinstance(caller, Caller) else None)
            or entry.get("access_key_id"),
            source_ip=entry.get("source_ip"),
            key_arn=entry.get("key_arn") or entry.get("key_id"),
            encryption_context=dict(context) if isinstance(context, Mapping) else None,
            authorized_by=entry.get("authorized_by"),
            grant_id=entry.get("grant_id"),
        )

    def record(self, entry: Mapping[str, Any]) -> None:
        # Per request on the event loop: the line straight from the entry, fields as in to_record.
        caller = entry.get("caller")
        context = entry.get("encryption_context")
        code = entry.get("error_code")
        principal_arn, access_key_id = (caller.arn, caller.access_key_id) if isinstance(caller, Caller) else (None, None)
        self._log.record_line(
            audit_line(
                self._clock(),
                str(entry.get("request_id", "")),
                str(entry.get("operation", "")),
                outcome_of_code(code),
                code,
                principal_arn,
                access_key_id or entry.get("access_key_id"),
                entry.get("source_ip"),
                entry.get("key_arn") or entry.get("key_id"),
                dict(context) if isinstance(context, Mapping) else None,
                entry.get("authorized_by"),
                entry.get("grant_id"),
            )
        )

    async def write(self, entry: Mapping[str, Any]) -> None:
        await self._log.write(self.to_record(entry))
