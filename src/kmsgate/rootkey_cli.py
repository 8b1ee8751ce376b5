"""``kmsgate root-key rotate``: rewrap everything in a key store under a new root key, crash-safe.

Stop every node first. The current root key is found as ``serve`` finds it (``KMSGATE_ROOT_KEY``,
else ``--root-key-file``, else ``<data-dir>/root.key``); the new one is ``KMSGATE_NEW_ROOT_KEY``
(base64), else ``--new-root-key-file`` (read if it exists, else created with a new random key,
mode 0600). With neither, and the current key in ``<data-dir>/root.key``, the new key is created
as ``<data-dir>/root.key.new`` and, once the store is switched, installed as ``root.key`` (the
old one kept as ``root.key.old`` until the clean-up removes it)::

    kmsgate root-key rotate --data-dir /var/lib/kmsgate
    kmsgate root-key rotate --key-store postgresql://kmsgate@db/kmsgate \\
        --root-key-file /etc/kmsgate/root.key --new-root-key-file /etc/kmsgate/root.key.2027

Interrupted (``kill -9``, a power cut), the store opens with the old key or with the new one,
and running the same command again finishes the rotation. No key is ever printed.

``KMSGATE_TEST_ROTATE_KILL_AT`` (tests only) names a point (``kmsgate.kms.rootkey_rotation``'s
``STAGING``, ``STAGED``, ``SWITCHING``, ``SWITCHED``, or ``OLD_KEY_KEPT``, ``KEY_FILE_REPLACED``
here) where the command kills itself with SIGKILL, to prove the above.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from kmsgate.config import OPTIONS, ConfigError, load_config
from kmsgate.config_flags import add_config_flag, add_option_flags, given_flags
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.rootkey_rotation import BATCH_ROWS, SWITCHED_STATE, Rotation, RotationError, StopAt
from kmsgate.kms.rootkey_source import (
    NEW_ROOT_KEY_FILENAME,
    OLD_ROOT_KEY_FILENAME,
    ROOT_KEY_FILENAME,
    install_new_root_key,
    read_or_create_root_key_file,
    read_root_key_file,
    remove_old_root_key,
)
from kmsgate.kms.rootkey_state import ROOT_KEY_CHECK, ROOT_KEY_PREVIOUS_CHECK
from kmsgate.kms.stores import KeyStoreLocation, KeyStoreUrlError, parse_key_store

OLD_KEY_KEPT = "old-key-kept"  # root.key.old written, root.key still the old key
KEY_FILE_REPLACED = "key-file-replaced"  # root.key is the new key, before the clean-up
KILL_AT_VARIABLE = "KMSGATE_TEST_ROTATE_KILL_AT"


ROOT_KEY_OPTIONS = tuple(opt for opt in OPTIONS if opt.name in ("key_store", "data_dir", "root_key_file"))
"""The options ``kmsgate root-key rotate`` shares with ``kmsgate serve``, as serve declares them."""


def add_root_key_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``root-key rotate`` to a ``kmsgate`` sub-command set; returns the ``root-key`` parser."""
    root_key: argparse.ArgumentParser = subparsers.add_parser("root-key", help="manage the root key")
    actions = root_key.add_subparsers(dest="root_key_command", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate",
        help="rewrap every wrapped value of the key store under a new root key (stop every node first)",
        description="Rewrap every wrapped value of the key store under a new root key, crash-safe: if interrupted, "
        "the store opens with the old or the new key, and running the same command again finishes the rotation.",
    )
    add_config_flag(rotate)
    add_option_flags(rotate, ROOT_KEY_OPTIONS)
    rotate.add_argument("--new-root-key-file", type=Path, default=None,
                        help="the NEW root key: read if the file exists, else created (mode 0600) with a new random "
                        "key; KMSGATE_NEW_ROOT_KEY (base64) takes precedence. Without either, and with the current "
                        "key in <data-dir>/root.key, a new key replaces that file (the old one is removed)")
    rotate.add_argument("--batch-rows", type=int, default=BATCH_ROWS,
                        help="values rewrapped per staging transaction (default: %(default)s)")
    return root_key


def run_root_key_command(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    try:
        config = load_config(given_flags(args, ROOT_KEY_OPTIONS), environ, args.config, options=ROOT_KEY_OPTIONS).config
    except ConfigError as exc:
        print(f"kmsgate: {exc}", file=sys.stderr)
        return 2
    args.key_store, args.data_dir, args.root_key_file = config.key_store, config.data_dir, config.root_key_file
    try:
        location = parse_key_store(args.key_store, args.data_dir)
    except KeyStoreUrlError as exc:
        raise SystemExit(f"kmsgate: {exc}") from None
    failures: tuple[type[BaseException], ...] = (RotationError, RootKeyError, OSError, sqlite3.Error)
    if location.postgres_url is not None:
        import psycopg

        from kmsgate.kms.pg_schema import SchemaError

        failures += (psycopg.Error, SchemaError)
    try:
        return _rotate(args, environ, location, out)
    except failures as exc:  # one line, without the URL's secrets
        raise SystemExit(f"kmsgate: {location.describe()}: {_one_line(exc)}") from None


def _rotate(args: argparse.Namespace, environ: Mapping[str, str], location: KeyStoreLocation, out: TextIO) -> int:
    if args.batch_rows < 1:
        raise RotationError("--batch-rows must be at least 1")
    data_dir: Path = args.data_dir
    current, current_source, in_data_dir = _current_key(args, environ)
    new_given = bool(environ.get("KMSGATE_NEW_ROOT_KEY")) or args.new_root_key_file is not None
    replaces_file = in_data_dir and not new_given
    stop_at = _kill_at(environ)
    rotation = Rotation(location, stop_at)
    where = location.describe()

    settings = rotation.settings()
    if Rotation.state(settings) == SWITCHED_STATE:
        if current.matches_check(settings.get(ROOT_KEY_CHECK, "")):
            # Switched, and the current key is already the new one: only the clean-up is left.
            rotation.cleanup()
            removed = replaces_file and remove_old_root_key(data_dir)
            print(f"{where}: the interrupted root key rotation is finished (clean-up done"
                  f"{f'; {data_dir / OLD_ROOT_KEY_FILENAME} removed' if removed else ''}).", file=out)
            return 0
        new, new_source, _created = _new_key(args, environ, data_dir, replaces_file, create=False)
        if not (current.matches_check(settings.get(ROOT_KEY_PREVIOUS_CHECK, ""))
                and new.matches_check(settings.get(ROOT_KEY_CHECK, ""))):
            raise RotationError("the key store was switched to a root key other than the new one given; "
                                "give the root key it was rotated to")
        print(f"{where}: resuming: the key store is already under the new root key", file=out)
        return _finish(rotation, data_dir, replaces_file, new_source, current_source, stop_at, out)

    rotation.require_opens(current, current_source)
    new, new_source, created = _new_key(args, environ, data_dir, replaces_file, create=True)
    if created:
        print(f"generated a new root key in {new_source} (mode 0600)", file=out)
    resumed = rotation.begin(current, new)
    if resumed:
        print(f"{where}: resuming an interrupted rotation to this new root key", file=out)
    staged = rotation.stage(current, new, args.batch_rows)
    print(f"{where}: {staged} wrapped values staged under the new root key", file=out)
    report = rotation.switch(current, new)
    print(f"{where}: switched: {report.rewrapped} wrapped values now under the new root key "
          f"({report.caught_up} rewrapped during the switch); the old root key no longer opens it", file=out)
    return _finish(rotation, data_dir, replaces_file, new_source, current_source, stop_at, out)


def _finish(rotation: Rotation, data_dir: Path, replaces_file: bool, new_source: str, current_source: str,
            stop_at: StopAt, out: TextIO) -> int:
    """Install the new key file (when the rotation replaces ``root.key``), clean up, and say what is next."""
    if replaces_file:
        install_new_root_key(data_dir, lambda: stop_at(OLD_KEY_KEPT))
        stop_at(KEY_FILE_REPLACED)
        rotation.cleanup()
        remove_old_root_key(data_dir)
        print(f"{data_dir / ROOT_KEY_FILENAME} now holds the new root key; the old one was removed.", file=out)
        print("Next: start every node (kmsgate serve, as before). Back up the new root.key now; backups of the key "
              "store taken before this rotation open only with the old root key.", file=out)
        return 0
    rotation.cleanup()
    print(f"Next: start every node with the new root key ({new_source}) in place of the old one "
          f"({current_source}), as KMSGATE_ROOT_KEY or --root-key-file; the old key no longer opens this key "
          "store: destroy its copies, except one kept with backups of the key store taken before this rotation.",
          file=out)
    return 0


def _current_key(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[RootKey, str, bool]:
    """The current root key as ``serve`` finds it (without creating one), its source, and whether it is ``root.key``."""
    if environ.get("KMSGATE_ROOT_KEY"):
        from kmsgate.kms.rootkey_source import load_root_key

        return load_root_key(env_value=environ["KMSGATE_ROOT_KEY"], path=None, data_dir=args.data_dir)[0], \
            "KMSGATE_ROOT_KEY", False
    path: Path = args.root_key_file or args.data_dir / ROOT_KEY_FILENAME
    if not path.is_file():
        raise RotationError(f"no current root key: {path} does not exist (give KMSGATE_ROOT_KEY or --root-key-file)")
    return read_root_key_file(path), str(path), args.root_key_file is None


def _new_key(args: argparse.Namespace, environ: Mapping[str, str], data_dir: Path, replaces_file: bool,
             create: bool) -> tuple[RootKey, str, bool]:
    if environ.get("KMSGATE_NEW_ROOT_KEY"):
        from kmsgate.kms.rootkey_source import load_root_key

        return load_root_key(env_value=environ["KMSGATE_NEW_ROOT_KEY"], path=None, data_dir=data_dir)[0], \
            "KMSGATE_NEW_ROOT_KEY", False
    path: Path | None = args.new_root_key_file
    if path is None:
        if not replaces_file:
            raise RotationError("give the new root key: --new-root-key-file PATH (created if missing) or "
                                "KMSGATE_NEW_ROOT_KEY")
        path = data_dir / NEW_ROOT_KEY_FILENAME
    if not create:
        if not path.is_file():
            raise RotationError(f"the key store is under a new root key, but {path} does not exist: give the root "
                                "key it was rotated to")
        return read_root_key_file(path), str(path), False
    key, created = read_or_create_root_key_file(path)
    return key, str(path), created


def _kill_at(environ: Mapping[str, str]) -> StopAt:
    """The test-only hook: SIGKILL this process at the named point."""
    point = environ.get(KILL_AT_VARIABLE, "")

    def stop_at(reached: str) -> None:
        if point and reached == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return stop_at


def _one_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
