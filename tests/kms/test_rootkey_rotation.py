"""The rotation's steps in process, on SQLite and on PostgreSQL: writers beside a rotation lose nothing,
and a process still holding the retired root key writes nothing once the store is switched."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kmsgate.core.errors import KmsInternalError
from kmsgate.kms.model import KeyMaterial
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.rootkey_rotation import Rotation, RotationError
from kmsgate.kms.snapshot import Alias
from kmsgate.kms.store import KeyStore
from kmsgate.kms.stores import parse_key_store


def _material(key_id: str, version: int) -> KeyMaterial:
    return KeyMaterial(key_id=key_id, version=version, material_id=os.urandom(32).hex(), secret=os.urandom(32),
                       created=1.0, rotation_type=None)


def _rotation(key_store_url: str | None, tmp_path: Path) -> Rotation:
    return Rotation(parse_key_store(key_store_url, tmp_path))


def _secrets(store: KeyStore) -> dict[tuple[str, int], bytes]:
    return {ref: material.secret for ref, material in store.load().snapshot.materials.items()}


def test_a_value_written_while_staging_is_rewrapped_by_the_switch(
    open_key_store: Callable[[RootKey], KeyStore], key_store_url: str | None, tmp_path: Path
) -> None:
    old, new = RootKey(os.urandom(32)), RootKey(os.urandom(32))
    node = open_key_store(old)
    for version in (1, 2):
        node.mutate(lambda tx, v=version: tx.put_material(_material("a", v)))
    rotation = _rotation(key_store_url, tmp_path)
    rotation.begin(old, new)
    rotation.stage(old, new)
    node.mutate(lambda tx: tx.put_material(_material("b", 1)))  # new since staging
    node.mutate(lambda tx: tx.put_material(_material("a", 2)))  # changed since staging
    written = _secrets(node)

    report = rotation.switch(old, new)
    rotation.cleanup()

    assert (report.rewrapped, report.caught_up) == (3, 2)
    assert _secrets(open_key_store(new)) == written


def test_a_process_still_on_the_retired_root_key_writes_nothing_after_the_switch(
    open_key_store: Callable[[RootKey], KeyStore], key_store_url: str | None, tmp_path: Path
) -> None:
    old, new = RootKey(os.urandom(32)), RootKey(os.urandom(32))
    node = open_key_store(old)
    node.mutate(lambda tx: tx.put_material(_material("a", 1)))
    rotation = _rotation(key_store_url, tmp_path)
    rotation.begin(old, new)
    rotation.stage(old, new)
    node.mutate(lambda tx: tx.put_alias(Alias("alias/while-staging", "a", 1.0, 1.0)))  # still its store's key
    rotation.switch(old, new)

    with pytest.raises(KmsInternalError, match="restart this node with the new root key"):
        node.mutate(lambda tx: tx.put_material(_material("a", 2)))
    with pytest.raises(KmsInternalError):
        node.mutate(lambda tx: tx.put_alias(Alias("alias/after", "a", 1.0, 1.0)))

    reopened = open_key_store(new).load().snapshot
    assert set(reopened.materials) == {("a", 1)}
    assert set(reopened.aliases) == {"alias/while-staging"}


def test_staging_towards_another_new_key_starts_again_and_only_that_key_opens_after(
    open_key_store: Callable[[RootKey], KeyStore], key_store_url: str | None, tmp_path: Path
) -> None:
    old, abandoned, new = (RootKey(os.urandom(32)) for _ in range(3))
    node = open_key_store(old)
    node.mutate(lambda tx: tx.put_material(_material("a", 1)))
    written = _secrets(node)
    rotation = _rotation(key_store_url, tmp_path)
    rotation.begin(old, abandoned)
    rotation.stage(old, abandoned)

    assert rotation.begin(old, new) is False  # not a resumption: the staged wraps were for another key
    with pytest.raises(RotationError):
        rotation.switch(old, abandoned)
    rotation.stage(old, new)
    rotation.switch(old, new)
    rotation.cleanup()

    assert _secrets(open_key_store(new)) == written
    for refused in (old, abandoned):
        with pytest.raises(RootKeyError):
            open_key_store(refused)


def test_a_rotation_with_a_wrong_current_key_is_refused_before_any_write(
    open_key_store: Callable[[RootKey], KeyStore], key_store_url: str | None, tmp_path: Path
) -> None:
    old = RootKey(os.urandom(32))
    open_key_store(old).mutate(lambda tx: tx.put_material(_material("a", 1)))
    rotation = _rotation(key_store_url, tmp_path)
    settings = rotation.settings()

    with pytest.raises(RotationError, match="does not open this key store"):
        rotation.begin(RootKey(os.urandom(32)), RootKey(os.urandom(32)))

    assert rotation.settings() == settings
