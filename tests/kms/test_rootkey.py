"""The root key's wrapping, pure: import tokens sealed before a rotation open with the retired token key."""

from __future__ import annotations

import os

import pytest

from kmsgate.kms.rootkey import RootKey, RootKeyError

AD = b"kmsgate-import-token-v1" + b"some-key-id"


def test_a_token_sealed_under_a_retired_root_key_opens_with_its_kept_token_key() -> None:
    old, new = RootKey(os.urandom(32)), RootKey(os.urandom(32))
    token = old.seal_token(b"payload", AD)
    kept = new.wrap_retired_token_key(old)

    widened = new.with_retired_token_keys([new.unwrap_retired_token_key(kept)])

    assert widened.open_token(token, AD) == b"payload"
    assert widened.open_token(new.seal_token(b"fresh", AD), AD) == b"fresh"
    with pytest.raises(RootKeyError):
        new.open_token(token, AD)
    with pytest.raises(RootKeyError):
        widened.open_token(token, AD + b"-another-key")


def test_a_kept_token_key_opens_only_under_the_root_key_that_wrapped_it_and_rewraps_to_the_next() -> None:
    old, new, newer = (RootKey(os.urandom(32)) for _ in range(3))
    token = old.seal_token(b"payload", AD)
    kept = new.wrap_retired_token_key(old)

    with pytest.raises(RootKeyError):
        newer.unwrap_retired_token_key(kept)
    with pytest.raises(RootKeyError):  # not interchangeable with wrapped material
        new.unwrap_material("some-key-id", 1, kept)
    rewrapped = newer.rewrap_retired_token_key(new, kept)

    assert newer.with_retired_token_keys([newer.unwrap_retired_token_key(rewrapped)]).open_token(token, AD) == b"payload"
