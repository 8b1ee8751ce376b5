"""The gateway's signature covers exactly the routed path, and bad credentials are answered from headers.

A ``#`` fragment or an invalid percent-escape makes the routed path differ from any canonical
form of it (aiohttp routes ``/K#y`` as ``/K`` and keeps ``%FF`` as three characters), so such a
request target is refused 400 before anything else. Requests whose SigV4 credential, scope or
date fail are answered without their body being read.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import socket
from urllib.parse import urlsplit

import pytest

from .conftest import REGION, AuthGateway, sigv4_headers

HEADERS_ONLY_TIMEOUT_S = 30  # generous: the answer is due at once, the body never comes


def unique(name: str) -> str:
    return f"{name}-{os.urandom(6).hex()}"


def send_raw_target(gw: AuthGateway, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict]:
    """One request with ``target`` put on the request line exactly as given."""
    parts = urlsplit(gw.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else {}
    finally:
        conn.close()


def test_a_signature_for_object_k_hash_y_replayed_with_a_raw_fragment_is_refused_400(gw: AuthGateway) -> None:
    key = unique("K")
    assert gw.as_(gw.root, "PUT", f"/v1/objects/{key}", b"the content of K").status == 201
    # Signed for the object named "<key>#y" (sent as %23), then replayed with a raw '#'.
    signed = sigv4_headers(gw.root, "GET", f"{gw.url}/v1/objects/{key}%23y", b"")
    signed["Host"] = urlsplit(gw.url).netloc
    status, document = send_raw_target(gw, "GET", f"/v1/objects/{key}#y", signed)
    assert (status, document.get("error")) == (400, "InvalidURI")


@pytest.mark.parametrize("suffix", ["#y", "%FF", "%G1"])
def test_a_bearer_request_with_an_ambiguous_target_is_refused_too(gw: AuthGateway, suffix: str) -> None:
    key = unique("K")
    assert gw.as_(gw.root, "PUT", f"/v1/objects/{key}", b"the content of K").status == 201
    headers = {"Host": urlsplit(gw.url).netloc, "Authorization": f"Bearer {gw.root.token}"}
    for method in ("GET", "DELETE"):
        status, document = send_raw_target(gw, method, f"/v1/objects/{key}{suffix}", headers)
        assert (status, document.get("error")) == (400, "InvalidURI"), method
    assert gw.as_(gw.root, "GET", f"/v1/objects/{key}").body == b"the content of K"


def test_an_invalid_percent_escape_in_the_path_is_refused(gw: AuthGateway) -> None:
    # %FF is no UTF-8: a decoder reads it as U+FFFD, while the router keeps the three characters.
    signed = sigv4_headers(gw.root, "GET", f"{gw.url}/v1/objects/%EF%BF%BD", b"")
    signed["Host"] = urlsplit(gw.url).netloc
    status, document = send_raw_target(gw, "GET", "/v1/objects/%FF", signed)
    assert (status, document.get("error")) == (400, "InvalidURI")
    for target in ("/v1/objects/a%G1", "/v1/objects/a%FF", "/v1/objects/a%E1%88", "/v1/objects/a?x=%FF"):
        status, document = send_raw_target(gw, "GET", target, signed)
        assert (status, document.get("error")) == (400, "InvalidURI"), target


def headers_only(gw: AuthGateway, authorization: str, amz_date: str) -> tuple[int, dict]:
    """A PUT's headers with Content-Length: 1000 and no body (and no declared payload hash)."""
    parts = urlsplit(gw.url)
    head = (
        f"PUT /v1/objects/{unique('never')} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"X-Amz-Date: {amz_date}\r\nAuthorization: {authorization}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=HEADERS_ONLY_TIMEOUT_S) as sock:
        sock.sendall(head.encode())
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, json.loads(reader.read(length))


def stamp(days: int = 0) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")


def authorization(access_key_id: str, day: str, region: str = REGION, service: str = "s3") -> str:
    return (f"AWS4-HMAC-SHA256 Credential={access_key_id}/{day}/{region}/{service}/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}")


def test_an_unknown_access_key_is_refused_before_the_body_is_read(gw: AuthGateway) -> None:
    now = stamp()
    status, document = headers_only(gw, authorization("AKIANOBODY0000000001", now[:8]), now)
    assert (status, document["error"]) == (401, "UnrecognizedClientException")


@pytest.mark.parametrize("region, service, days", [("eu-west-1", "s3", 0), (REGION, "kms", 0), (REGION, "s3", -1)],
                         ids=["region", "service", "stale-date"])
def test_a_bad_scope_or_date_is_refused_before_the_body_is_read(gw: AuthGateway, region: str, service: str,
                                                                 days: int) -> None:
    now = stamp(days)
    status, document = headers_only(gw, authorization(gw.root.access_key_id, now[:8], region, service), now)
    assert (status, document["error"]) == (401, "InvalidSignatureException")
