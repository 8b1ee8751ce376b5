"""The gateway's expected-context check against a message header (no server, no event loop)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from kmsgate.envelope.header import MessageHeader
from kmsgate.envelope.suites import AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
from kmsgate.gateway.encryption import check_context
from kmsgate.gateway.errors import GatewayError


def header(context: Mapping[str, str]) -> MessageHeader:
    return MessageHeader(
        suite=AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, message_id=bytes(32), encryption_context=context,
        encrypted_data_keys=(), frame_length=4096, commitment_key=bytes(32), header_bytes=b"",
        auth_iv=bytes(12), auth_tag=bytes(16),
    )


@pytest.mark.parametrize(
    "stored, expected",
    [
        ({"tenant": "bob", "TENANT": "alice"}, {"tenant": "bob"}),
        ({"TENANT": "alice", "tenant": "bob"}, {"tenant": "bob"}),
        ({"tenant": "bob"}, {"Tenant": "bob"}),
        ({"tenant": "bob"}, {"tenant": "Bob"}),
        ({"tenant": "bob", "app": "x"}, {"tenant": "bob"}),
        ({"tenant": "bob"}, {"tenant": "bob", "app": "x"}),
    ],
)
def test_the_expected_context_must_be_exactly_the_messages(stored: dict[str, str], expected: dict[str, str]) -> None:
    with pytest.raises(GatewayError) as raised:
        check_context(header(stored), expected)
    assert (raised.value.status, raised.value.code) == (400, "EncryptionContextMismatch")


def test_the_formats_own_keys_are_not_part_of_the_callers_context() -> None:
    check_context(header({"tenant": "bob", "aws-crypto-public-key": "A1B2"}), {"tenant": "bob"})


def test_naming_no_context_checks_nothing() -> None:
    check_context(header({"tenant": "bob"}), {})
