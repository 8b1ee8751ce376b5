"""Object-key validation (pure: no event loop)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmsgate.gateway.keys import MAX_OBJECT_KEY_BYTES, InvalidObjectKey, validate_object_key


@pytest.mark.parametrize("key", ["a", "a/b/c", "dir/", "/leading", "a//b", "x.y", "...", ".hidden",
                                 "ünï/кл/键", "sp ace", "é" * 512, "a" * MAX_OBJECT_KEY_BYTES])
def test_valid_keys_pass(key: str) -> None:
    assert validate_object_key(key) == key


@pytest.mark.parametrize("key", ["", ".", "..", "a/./b", "a/../b", "../x", "x/..", "a\x00b",
                                 "a" * (MAX_OBJECT_KEY_BYTES + 1), "é" * 513, "bad\udc80surrogate"])
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidObjectKey):
        validate_object_key(key)


def test_error_message_does_not_echo_the_key() -> None:
    with pytest.raises(InvalidObjectKey) as info:
        validate_object_key("secret-name/../x")
    assert "secret-name" not in str(info.value)


@given(st.text(min_size=1, max_size=300))
def test_accepted_keys_satisfy_every_rule(key: str) -> None:
    try:
        validate_object_key(key)
    except InvalidObjectKey:
        return
    assert len(key.encode("utf-8")) <= MAX_OBJECT_KEY_BYTES
    assert "\x00" not in key
    assert not {".", ".."} & set(key.split("/"))
