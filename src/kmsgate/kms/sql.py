"""The small slice of DB-API both key stores' SQL runs on: ``execute`` and ``executemany`` with ``?`` placeholders.

The key store's statements (``kmsgate.kms.transaction``, ``kmsgate.kms.loader``,
``kmsgate.kms.changelog``) are written once, in the SQL SQLite and PostgreSQL share (upserts as
``INSERT ... ON CONFLICT ... DO UPDATE``), with ``?`` placeholders. A ``sqlite3.Connection``
satisfies ``Connection`` as it is; the PostgreSQL store adapts psycopg's ``%s`` style.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
