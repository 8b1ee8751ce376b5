"""What a KMS request concerned and what allowed it, handed from the service to the protocol adapter's audit entry.

The service sets ``REQUEST_KEY_ARN`` to the resolved key ARN (never an alias) each time it
authorizes a key action, and ``REQUEST_AUTHORIZATION`` to what allowed that action (the account
root, a key-policy statement, a grant or the identity's account actions; ``None`` while an
authorization is pending or after a denial). The adapter clears both before calling the service
and reads them after, allowed or denied. A ``ContextVar`` keeps concurrent requests apart: the
service method runs in the adapter's task, and concurrent requests run in different tasks (one
task may serve several requests in turn on a keep-alive connection, hence the clearing).
"""

from __future__ import annotations

from contextvars import ContextVar

from kmsgate.auth.authorizer import Authorization

REQUEST_KEY_ARN: ContextVar[str | None] = ContextVar("kmsgate_request_key_arn", default=None)
REQUEST_AUTHORIZATION: ContextVar[Authorization | None] = ContextVar("kmsgate_request_authorization", default=None)
