"""botocore's own S3 protocol code as the oracle for the wire format.

``s3`` is a real boto3 S3 client whose transport is replaced, at botocore's
``before-send`` event, by ``CannedTransport``: every request the client builds (signed,
serialised, with the checksums botocore adds) is kept, and the client receives the
response the test set — so our documents go through boto3's complete response path
(parser, error handling, the ListObjects URL-decoding and GetBucketLocation handlers)
and botocore's request bodies come to our parsers exactly as a server would get them.
Nothing is sent over any network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.parsers
import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

S3_MODEL = botocore.session.get_session().get_service_model("s3")


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@dataclass
class CannedTransport:
    """Answers each request with ``status``/``headers``/``body`` and records the request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    body: bytes = field(default=b"", repr=False)
    requests: list[AWSPreparedRequest] = field(default_factory=list, repr=False)

    def respond(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body, self.status, self.headers = body, status, headers or {}

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.requests.append(request)
        return AWSResponse(request.url, self.status, self.headers, _RawBody(self.body))

    @property
    def last_body(self) -> bytes:
        body = self.requests[-1].body
        if body is None:
            return b""
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        data = body.read()
        body.seek(0)
        return bytes(data)

    @property
    def last_headers(self) -> dict[str, str]:
        return {
            name: value.decode("latin-1") if isinstance(value, bytes) else value
            for name, value in self.requests[-1].headers.items()
        }


@dataclass
class S3Oracle:
    client: Any
    transport: CannedTransport


@pytest.fixture
def s3() -> S3Oracle:
    transport = CannedTransport()
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    client.meta.events.register("before-send.s3", transport)
    return S3Oracle(client, transport)


def parse_with_botocore(operation: str, body: bytes, status: int = 200) -> dict[str, Any]:
    """botocore's rest-xml parse of ``body`` as ``operation``'s response (no handlers)."""
    parser = botocore.parsers.create_parser("rest-xml")
    shape = S3_MODEL.operation_model(operation).output_shape
    parsed: dict[str, Any] = parser.parse({"status_code": status, "headers": {}, "body": body}, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}
