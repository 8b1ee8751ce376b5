"""``kill -9`` of the server while ``PUT /v1/objects`` bodies stream in: after the restart no
partial object is visible (404, or the version acknowledged before) and the objects directory
holds no temporary file and no data file beyond the acknowledged objects'."""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any

from tests.conftest import ROOT_TOKEN, start_server

from .conftest import files_under, start_half_sent_put, wait_until

IN_FLIGHT = 4
DECLARED_BYTES = 64 * 1024 * 1024
SENT_BYTES = 3 * 1024 * 1024  # past the storage's write buffer: on disk in a temporary file


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_puts_cut_by_kill_9_leave_no_partial_object_and_no_leftover_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server: Any = start_server(data_dir, "--workers", "2")
    try:
        previous = os.urandom(200_000)
        assert request(server.port, "PUT", "/v1/objects/kept", previous)[0] == 201
        tmp_dir = data_dir / "objects" / "tmp"
        sockets = [start_half_sent_put(server.port, f"/v1/objects/{name}", DECLARED_BYTES, SENT_BYTES)
                   for name in ["kept", *(f"new-{i}" for i in range(IN_FLIGHT - 1))]]
        try:
            wait_until(lambda: len(list(tmp_dir.glob("*.part"))) == IN_FLIGHT, "every PUT to reach its temporary file")
            server.kill()
        finally:
            for sock in sockets:
                sock.close()

        server.start()
        assert request(server.port, "GET", "/v1/objects/kept") == (200, previous)
        for i in range(IN_FLIGHT - 1):
            assert request(server.port, "GET", f"/v1/objects/new-{i}")[0] == 404
        assert list(tmp_dir.iterdir()) == []
        # One data file: the acknowledged version of "kept".
        assert len(files_under(data_dir / "objects" / "data")) == 1
    finally:
        server.stop()
