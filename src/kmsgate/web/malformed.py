"""Requests that are not well-formed HTTP/1.1: answered in their front's error shape, logged without their bytes.

aiohttp's own answer to a request it cannot parse (a header line over 8,190 bytes, a control
character in a header value, a broken request line) is a plain-text 400 whose body quotes the
offending line, and it logs that line with a traceback: a malformed ``Authorization`` header would
put the caller's token in the server log. The connection handler (``kmsgate.web.connections``)
answers such a request with the ``MALFORMED`` function its application declares instead, and logs
one line naming only the kind of fault.

``MalformedAnswer`` is given what went wrong (``Malformed``) and the request target when the first
bytes of the request showed one (a server with several APIs on one port picks the shape by path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

HEAD_BYTES = 64
"""How much of a request's first bytes is kept to find its target (``/v1/...`` or ``/``)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """Why a request could not be parsed, in words that quote nothing of it."""

    too_long: bool
    """A request line or header field over aiohttp's limit (8,190 bytes)."""

    @property
    def message(self) -> str:
        if self.too_long:
            return "A request line or header field is longer than 8190 bytes."
        return "The request is not well-formed HTTP/1.1."


MalformedAnswer = Callable[[Malformed, str | None], web.Response]
MALFORMED: web.AppKey[MalformedAnswer] = web.AppKey("malformed_answer")


def classify(exc: BaseException | None) -> Malformed:
    return Malformed(too_long=isinstance(exc, LineTooLong))


def request_target(head: bytes) -> str | None:
    """The target of the request line that ``head`` (a request's first bytes) begins, if it shows one."""
    parts = head.split(b" ", 2)
    if len(parts) < 3 or not parts[1].startswith(b"/"):
        return None
    return parts[1].decode("latin-1")
