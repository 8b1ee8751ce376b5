"""Where the root key comes from: an environment value, a file, or a new file in the data dir.

A rotation (``kmsgate root-key rotate``) of the data dir's own ``root.key`` stages the new key
in ``root.key.new``; once the key store is switched, ``install_new_root_key`` keeps the old one
as ``root.key.old`` (a hard link) and renames ``root.key.new`` over ``root.key``, each step
durable before the next, so at every instant the directory holds a file with each key.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from pathlib import Path

from kmsgate.kms.rootkey import ROOT_KEY_BYTES, RootKey, RootKeyError
from kmsgate.private_files import refusal, shared_mode

ROOT_KEY_FILENAME = "root.key"
NEW_ROOT_KEY_FILENAME = "root.key.new"
OLD_ROOT_KEY_FILENAME = "root.key.old"


def load_root_key(*, env_value: str | None, path: Path | None, data_dir: Path) -> tuple[RootKey, str]:
    """Return the root key and a description of its source (for the start-up log, never the key).

    Order: ``env_value`` (base64 of 32 bytes), else ``path`` (a file holding the base64 text), else
    ``<data_dir>/root.key``, created with mode 0600 on first start. A root key file that group or
    others may read is refused (``RootKeyError``) before it is read.
    """
    if env_value:
        return RootKey(_decode(env_value, "KMSGATE_ROOT_KEY")), "environment"
    if path is not None:
        return _read_private(path), str(path)
    default = data_dir / ROOT_KEY_FILENAME
    if not default.exists():
        _create(default)
        return _read_private(default), f"{default} (created)"
    return _read_private(default), str(default)


def _read_private(path: Path) -> RootKey:
    """``read_root_key_file``, refusing first a file that group or others may read."""
    mode = shared_mode(path)
    if mode is not None:
        raise RootKeyError(refusal("root key file", path, mode))
    return read_root_key_file(path)


def read_root_key_file(path: Path) -> RootKey:
    """The root key in ``path``; a file that cannot be read or is not base64 text is a ``RootKeyError``."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:  # its message would quote a byte of the file
        raise RootKeyError(f"root key from {path} is not valid base64") from None
    except OSError as exc:
        raise RootKeyError(f"root key file {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    return RootKey(_decode(text, str(path)))


def read_or_create_root_key_file(path: Path) -> tuple[RootKey, bool]:
    """The root key in ``path``, created first (a new random key, mode 0600, synced) if there is none; and whether it was."""
    created = not path.exists()
    if created:
        _create(path)
    return read_root_key_file(path), created


def install_new_root_key(data_dir: Path, after_keeping_old: Callable[[], None] = lambda: None) -> None:
    """``root.key.new`` becomes ``root.key``; the old ``root.key`` stays as ``root.key.old`` until removed."""
    current, new, old = (data_dir / name for name in (ROOT_KEY_FILENAME, NEW_ROOT_KEY_FILENAME, OLD_ROOT_KEY_FILENAME))
    linking = data_dir / (OLD_ROOT_KEY_FILENAME + ".tmp")
    linking.unlink(missing_ok=True)
    # An earlier run may have linked it already: renaming a link over another of the same file does nothing.
    if not (old.exists() and os.path.samefile(old, current)):
        os.link(current, linking)
        os.replace(linking, old)
    _sync_dir(data_dir)
    after_keeping_old()
    os.replace(new, current)
    _sync_dir(data_dir)


def remove_old_root_key(data_dir: Path) -> bool:
    """Remove ``root.key.old``; returns whether there was one."""
    old = data_dir / OLD_ROOT_KEY_FILENAME
    if not old.exists():
        return False
    old.unlink()
    _sync_dir(data_dir)
    return True


def _decode(text: str, source: str) -> bytes:
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RootKeyError(f"root key from {source} is not valid base64") from exc
    if len(secret) != ROOT_KEY_BYTES:
        raise RootKeyError(f"root key from {source} must decode to {ROOT_KEY_BYTES} bytes")
    return secret


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = base64.b64encode(os.urandom(ROOT_KEY_BYTES)) + b"\n"
    # O_EXCL: two workers starting together cannot both create (and disagree on) the root key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, encoded)
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
