"""``kmsgate store migrate`` and ``kmsgate store copy``: maintain a key store without serving.

``kmsgate serve`` applies missing migrations itself at start (under an advisory lock, so nodes
starting together do not collide); this command does it alone, e.g. before a rolling upgrade::

    kmsgate store migrate --key-store postgresql://kmsgate@db.internal/kmsgate

A SQLite store creates or updates its schema the same way. ``copy`` moves an installation from
one key store to another (``kmsgate.kms.store_copy``), with every node stopped::

    kmsgate store copy --from sqlite:///var/lib/kmsgate/kms.sqlite3 --to postgresql://kmsgate@db.internal/kmsgate

Nothing here needs the root key: migrations touch no key material, and a copy moves material
still wrapped under it.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from kmsgate.config import OPTIONS, ConfigError, load_config
from kmsgate.config_flags import add_config_flag, add_option_flags, given_flags
from kmsgate.kms.stores import KeyStoreUrlError, parse_key_store

STORE_OPTIONS = tuple(opt for opt in OPTIONS if opt.name in ("key_store", "data_dir"))
"""The options of ``kmsgate store migrate``, as ``kmsgate serve`` declares them."""


def add_store_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``store migrate`` to a ``kmsgate`` sub-command set; returns the ``store`` parser."""
    store: argparse.ArgumentParser = subparsers.add_parser("store", help="maintain the key store")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate", help="create the key store's schema or apply its missing migrations, then exit"
    )
    add_config_flag(migrate)
    add_option_flags(migrate, STORE_OPTIONS)
    copy = actions.add_parser(
        "copy", help="copy every key, material version, alias and grant of one key store into another, then exit"
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="sqlite:///path or postgresql://…")
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="sqlite:///path or postgresql://… (created if need be; must hold no keys, aliases or "
                      "grants unless --force)")
    copy.add_argument("--force", action="store_true", help="replace whatever the target holds")
    return store


def run_store_command(args: argparse.Namespace, out: TextIO = sys.stdout,
                      environ: Mapping[str, str] | None = None) -> int:
    if args.store_command == "copy":
        return _run_copy(args, out)
    env = os.environ if environ is None else environ
    try:
        config = load_config(given_flags(args, STORE_OPTIONS), env, args.config, options=STORE_OPTIONS).config
    except ConfigError as exc:
        print(f"kmsgate: {exc}", file=sys.stderr)
        return 2
    location = parse_key_store(config.key_store, config.data_dir)
    if location.sqlite_path is not None:
        from kmsgate.kms.sqlite_store import create_schema

        location.sqlite_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not location.sqlite_path.exists():
            os.close(os.open(location.sqlite_path, os.O_WRONLY | os.O_CREAT, 0o600))
        database = sqlite3.connect(location.sqlite_path, isolation_level=None)
        try:
            create_schema(database)
        finally:
            database.close()
        print(f"{location.describe()}: schema up to date", file=out)
        return 0
    import psycopg

    from kmsgate.kms.pg_schema import SchemaError, migrate

    try:
        with psycopg.connect(location.postgres_url or "", autocommit=True) as conn:
            version, applied = migrate(conn)
    except (psycopg.Error, SchemaError) as exc:
        raise SystemExit(f"kmsgate: {location.describe()}: {_one_line(exc)}") from None
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    print(f"{location.describe()}: schema version {version} ({done})", file=out)
    return 0


def _run_copy(args: argparse.Namespace, out: TextIO) -> int:
    from kmsgate.kms.store_copy import StoreCopyError, copy_store

    try:
        source, target = (parse_key_store(url, Path(".")) for url in (args.source, args.target))
    except KeyStoreUrlError as exc:
        raise SystemExit(f"kmsgate: {exc}") from None
    try:
        report = copy_store(source, target, replace=args.force)
    except StoreCopyError as exc:
        raise SystemExit(f"kmsgate: {exc}") from None
    rows = report.rows
    print(f"{source.describe()} -> {target.describe()}: {rows['keys']} keys, {rows['materials']} material versions, "
          f"{rows['aliases']} aliases, {rows['grants']} grants copied", file=out)
    return 0


def _one_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
