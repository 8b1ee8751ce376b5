"""What kmsgate does not do that AWS KMS does, and what to use instead: one message per feature.

The messages answer requests for the features below with ``UnsupportedOperationException``
(the service for parameters, the protocol adapter for whole operations), so a caller learns
both that the feature is absent and how to get the same result with kmsgate.
"""

from __future__ import annotations

MULTI_REGION = (
    "Multi-Region keys are not supported by kmsgate: create a single-Region key (MultiRegion false) and, "
    "to use it in several places, run kmsgate nodes that share one PostgreSQL key store"
)
CUSTOM_KEY_STORE = (
    "Custom key stores (CloudHSM and external key stores) are not supported by kmsgate: keys are kept in "
    "kmsgate's own key store (--key-store), wrapped under its root key; create keys with Origin AWS_KMS, "
    "or EXTERNAL to import your own key material"
)

# Whole operations kmsgate does not serve, with the advice for each.
UNSUPPORTED_OPERATIONS: dict[str, str] = {
    "ReplicateKey": MULTI_REGION,
    "UpdatePrimaryRegion": MULTI_REGION,
    "CreateCustomKeyStore": CUSTOM_KEY_STORE,
    "DescribeCustomKeyStores": CUSTOM_KEY_STORE,
    "UpdateCustomKeyStore": CUSTOM_KEY_STORE,
    "DeleteCustomKeyStore": CUSTOM_KEY_STORE,
    "ConnectCustomKeyStore": CUSTOM_KEY_STORE,
    "DisconnectCustomKeyStore": CUSTOM_KEY_STORE,
}


def unsupported_operation_message(operation_name: str) -> str:
    """Why ``operation_name`` is not served, and what to use instead where there is something."""
    return UNSUPPORTED_OPERATIONS.get(operation_name, f"kmsgate does not implement {operation_name}")
