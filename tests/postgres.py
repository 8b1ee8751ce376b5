"""A real PostgreSQL server for the tests: ``KMSGATE_TEST_POSTGRES_URL`` when set, else one ``pgserver`` starts.

``pgserver`` (from PyPI) bundles the server binaries, so nobody installs PostgreSQL to run the
tests. The server lives for the whole session, its data directory in the session's temporary
directory, and is stopped at the end. Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

TEST_POSTGRES_URL = "KMSGATE_TEST_POSTGRES_URL"


@contextmanager
def postgres_server(base_dir: Path) -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database, for as long as the context lasts."""
    given = os.environ.get(TEST_POSTGRES_URL)
    if given:
        yield given
        return
    import pgserver

    server = pgserver.get_server(base_dir / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server; dropped (whoever is still connected) when the context ends."""
    name = f"kmsgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class RestartablePostgres:
    """A PostgreSQL server of the caller's own (``pgserver``), which a test may stop and start again.

    Its socket lives in its own data directory and the URL stays the same across restarts, as a
    database behind a fixed address does when it is restarted or fails over.
    """

    def __init__(self, base_dir: Path) -> None:
        import pgserver

        self._pgdata = base_dir / "pgdata"
        self._server = pgserver.get_server(self._pgdata, cleanup_mode="stop")
        self.url = self._server.get_uri()

    def stop(self) -> None:
        """Shut the server down now (``pg_ctl stop -m fast``: every connection is cut)."""
        import pgserver

        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._pgdata, user=self._server.system_user, timeout=60)

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        self._server.cleanup()
