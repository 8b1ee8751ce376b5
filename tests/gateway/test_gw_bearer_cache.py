"""Bearer callers remembered per (token digest, source address): hits, misses and failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kmsgate.core.errors import UnrecognizedClientError
from kmsgate.core.principal import Caller
from kmsgate.gateway.auth import BearerCallers, authenticate
from kmsgate.gateway.errors import GatewayError

ARN = "arn:aws:iam::111122223333:user/alice"
TOKEN = "a" * 40


@dataclass
class Request:
    """The request attributes authentication reads (no network needed for this unit)."""

    headers: dict[str, str]
    remote: str | None = "127.0.0.1"
    raw_path: str = "/v1/objects/k"
    content_length: int | None = None


@dataclass
class CountingAuthenticator:
    """Knows one token; counts how often it is asked."""

    asked: list[str | None] = field(default_factory=list)

    def authenticate(self, request: Request, body: bytes) -> Caller:
        self.asked.append(request.remote)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise UnrecognizedClientError("The security token included in the request is invalid.")
        return Caller(ARN, "111122223333", source_ip=request.remote)


async def test_repeated_token_and_address_is_answered_from_the_cache() -> None:
    inner, cache = CountingAuthenticator(), BearerCallers()
    first = await authenticate(inner, Request({"Authorization": f"Bearer {TOKEN}"}), cache)
    second = await authenticate(inner, Request({"Authorization": f"Bearer {TOKEN}"}), cache)
    assert second.caller == first.caller and first.caller.arn == ARN
    assert inner.asked == ["127.0.0.1"]
    other = await authenticate(inner, Request({"Authorization": f"Bearer {TOKEN}"}, remote="127.0.0.2"), cache)
    assert other.caller.source_ip == "127.0.0.2"
    assert inner.asked == ["127.0.0.1", "127.0.0.2"]


async def test_failures_are_never_remembered() -> None:
    inner, cache = CountingAuthenticator(), BearerCallers()
    for _ in range(2):
        with pytest.raises(GatewayError) as raised:
            await authenticate(inner, Request({"Authorization": "Bearer " + "b" * 40}), cache)
        assert raised.value.status == 401
    assert len(inner.asked) == 2


async def test_cache_is_bounded() -> None:
    inner, cache = CountingAuthenticator(), BearerCallers(capacity=2)
    for i in range(5):
        await authenticate(inner, Request({"Authorization": f"Bearer {TOKEN}"}, remote=f"127.0.0.{i}"), cache)
    assert len(cache._known) <= 2
