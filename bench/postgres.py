"""A PostgreSQL database for the key-store scenario: ``KMSGATE_BENCH_POSTGRES_URL``, else a ``pgserver`` of its own.

With ``KMSGATE_BENCH_POSTGRES_URL`` (a server's maintenance database, e.g. ``…/postgres``) the
scenario creates a database of its own there and drops it afterwards; otherwise it starts a
throwaway server from the ``pgserver`` package (bundled binaries, a Unix socket in a temporary
directory) and stops it. Neither available: the scenario is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from bench.context import Skip

POSTGRES_URL_ENV = "KMSGATE_BENCH_POSTGRES_URL"


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of the one it names (host, credentials and parameters kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """The URL of an empty database for as long as the context lasts."""
    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        with _fresh_database(given) as url:
            yield url
        return
    try:
        import pgserver.postgres_server
    except ImportError as exc:
        raise Skip(f"no PostgreSQL: set {POSTGRES_URL_ENV} or install pgserver") from exc
    base = tempfile.mkdtemp(prefix="kmsgate-bench-pg-")
    try:
        server = pgserver.postgres_server.get_server(os.path.join(base, "pgdata"), cleanup_mode="stop")
        try:
            with _fresh_database(server.get_uri()) as url:
                yield url
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"kmsgate_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise Skip(f"cannot create a database on the PostgreSQL server: {type(exc).__name__}") from exc
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
