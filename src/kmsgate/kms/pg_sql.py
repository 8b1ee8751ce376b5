"""A psycopg connection speaking the ``?`` placeholders of ``kmsgate.kms.sql``, so the key store's SQL is written once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

Row = tuple[Any, ...]


class PgConnection:
    """``kmsgate.kms.sql.Connection`` over a psycopg connection (``?`` becomes ``%s``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    def execute(self, query: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Row]:
        return self._conn.execute(_translated(query), parameters)

    def executemany(self, query: str, parameters: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Row]:
        cursor = self._conn.cursor()
        cursor.executemany(_translated(query), parameters)
        return cursor


@lru_cache(maxsize=256)
def _translated(query: str) -> str:
    """The key store's statements hold no ``?`` or ``%`` inside literals, so a plain replacement is exact."""
    return query.replace("%", "%%").replace("?", "%s")
