"""Sealed object metadata: opens only under its own message's data key, message id and object ARN."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.gateway.sealed_metadata import OVERHEAD_BYTES, MetadataError, open_sealed, seal

ARN = "arn:aws:s3:::bucket/key"
KEY, MESSAGE_ID = os.urandom(32), os.urandom(32)


@given(st.binary(max_size=4096))
def test_sealed_metadata_opens_to_what_was_sealed(metadata: bytes) -> None:
    blob = seal(metadata, data_key=KEY, message_id=MESSAGE_ID, arn=ARN)
    assert len(blob) == len(metadata) + OVERHEAD_BYTES
    assert open_sealed(blob, data_key=KEY, message_id=MESSAGE_ID, arn=ARN) == metadata


def test_metadata_is_not_stored_in_the_clear() -> None:
    metadata = b'{"content-type": "text/plain", "x-amz-meta-owner": "alice"}'
    assert b"alice" not in seal(metadata, data_key=KEY, message_id=MESSAGE_ID, arn=ARN)


@pytest.mark.parametrize("change", ["data key", "message id", "arn", "bit"])
def test_sealed_metadata_does_not_open_for_another_message_or_object_or_after_a_flip(change: str) -> None:
    blob = seal(b"metadata", data_key=KEY, message_id=MESSAGE_ID, arn=ARN)
    key, message_id, arn = KEY, MESSAGE_ID, ARN
    if change == "data key":
        key = os.urandom(32)
    elif change == "message id":
        message_id = os.urandom(32)
    elif change == "arn":
        arn = "arn:aws:s3:::bucket/other"
    else:
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(MetadataError):
        open_sealed(blob, data_key=key, message_id=message_id, arn=arn)


def test_every_bit_flip_is_refused() -> None:
    blob = seal(b"meta", data_key=KEY, message_id=MESSAGE_ID, arn=ARN)
    for i in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(MetadataError):
            open_sealed(bytes(flipped), data_key=KEY, message_id=MESSAGE_ID, arn=ARN)


def test_an_empty_blob_is_empty_metadata_and_a_short_one_is_refused() -> None:
    assert open_sealed(b"", data_key=KEY, message_id=MESSAGE_ID, arn=ARN) == b""
    with pytest.raises(MetadataError):
        open_sealed(b"\x01" + b"x" * (OVERHEAD_BYTES - 2), data_key=KEY, message_id=MESSAGE_ID, arn=ARN)
