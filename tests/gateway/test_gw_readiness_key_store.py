"""``/readyz`` of a server with the embedded KMS checks its key store too (here the default, SQLite)."""

from __future__ import annotations

import http.client
import json

from tests.conftest import KmsgateServer


def test_readyz_reports_the_sqlite_key_store_reachable(fresh_server: KmsgateServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", fresh_server.port, timeout=30)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 200
    assert body["checks"]["key_store"] == "ok"
    assert set(body["checks"]) >= {"storage", "kms", "key_store"}
