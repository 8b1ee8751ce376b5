"""The key a KMS request concerned, handed from the service to the protocol adapter's audit entry.

The service sets ``REQUEST_KEY_ARN`` to the resolved key ARN (never an alias) each time it
authorizes a key action; the adapter clears it before calling the service and reads it after,
allowed or denied. A ``ContextVar`` keeps concurrent requests apart: the service method runs in
the adapter's task, and concurrent requests run in different tasks (one task may serve several
requests in turn on a keep-alive connection, hence the clearing).
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_KEY_ARN: ContextVar[str | None] = ContextVar("kmsgate_request_key_arn", default=None)
