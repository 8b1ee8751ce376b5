"""Raw HTTP/1.1 over a loopback socket, for requests no client library would send (lying lengths,
malformed headers): send bytes as given, take everything the server answers until it closes."""

from __future__ import annotations

import socket


def exchange(port: int, data: bytes, *, close_write: bool = False) -> bytes:
    """Send ``data`` and return all the server answered until it closed the connection.
    ``close_write`` ends our side after sending (a body that stops short of its length: the
    server sees the connection end mid-body, and has no one left to answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
        return bytes(answer)


def statuses(answer: bytes) -> list[int]:
    """Every status line's code (aiohttp answers a request line it cannot parse in HTTP/1.0)."""
    return [int(line.split(b" ")[1]) for line in answer.split(b"\r\n") if line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))]
