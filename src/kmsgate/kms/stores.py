"""Choosing the key store from its ``--key-store`` URL: ``sqlite:///path`` or ``postgresql://…``.

- none (the default): SQLite at ``<data-dir>/kms.sqlite3``;
- ``sqlite:///var/lib/kmsgate/kms.sqlite3`` (absolute; ``sqlite:///./relative/path`` is relative to
  the working directory): SQLite there;
- ``postgresql://user:password@host:port/db?sslmode=verify-full&sslrootcert=…`` (or
  ``postgres://``): PostgreSQL, every parameter as libpq takes it.

A URL may hold a password: ``redacted`` is what may be logged or shown in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.sqlite_store import DB_FILENAME, SqliteKeyStore
from kmsgate.kms.store import KeyStore

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class KeyStoreUrlError(ValueError):
    """A ``--key-store`` value kmsgate cannot use."""


@dataclass(frozen=True, slots=True)
class KeyStoreLocation:
    kind: str  # SQLITE or POSTGRESQL
    sqlite_path: Path | None = None
    postgres_url: str | None = None

    def describe(self) -> str:
        """The location without secrets, for logs."""
        if self.kind == SQLITE:
            return f"sqlite:///{self.sqlite_path}"
        return redacted(self.postgres_url or "")


def parse_key_store(url: str | None, data_dir: Path) -> KeyStoreLocation:
    if not url:
        return KeyStoreLocation(SQLITE, sqlite_path=data_dir / DB_FILENAME)
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        path = url[len("sqlite://") :]
        if not path.startswith("/") or path.endswith("/"):
            raise KeyStoreUrlError("a SQLite key store is sqlite:///<path of the database file>")
        relative = path.startswith(("/./", "/../"))
        return KeyStoreLocation(SQLITE, sqlite_path=Path(path[1:] if relative else path))
    if scheme in ("postgresql", "postgres"):
        return KeyStoreLocation(POSTGRESQL, postgres_url=url)
    raise KeyStoreUrlError(f"the key store must be a sqlite:/// or postgresql:// URL, not {scheme[:20]!r}")


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (in the authority and in a ``password=`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item for item in parts.query.split("&") if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def open_store(url: str | None, data_dir: Path, root_key: RootKey) -> KeyStore:
    """Open (and on first use create) the key store ``url`` names; blocking."""
    location = parse_key_store(url, data_dir)
    if location.sqlite_path is not None:
        return SqliteKeyStore(location.sqlite_path.parent, root_key, location.sqlite_path.name)
    from kmsgate.kms.pg_store import PgKeyStore  # psycopg is loaded only where PostgreSQL is used

    return PgKeyStore(location.postgres_url or "", root_key)
