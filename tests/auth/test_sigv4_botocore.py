"""Differential tests: kmsgate's verifier against botocore's signers over random requests.

Whatever botocore signs (``SigV4Auth`` and ``S3SigV4Auth`` in headers, ``SigV4QueryAuth`` and
``S3SigV4QueryAuth`` as presigned URLs), the verifier accepts, and it derives the very canonical
request botocore signed. Paths hold unicode, reserved characters, dot segments and double
slashes; queries repeated keys, empty values and reserved characters; headers odd whitespace
and repeated names.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsgate.auth.sigv4 import SigV4Verifier

from .conftest import ALICE_AKID, ALICE_ARN, ALICE_SECRET, REGION, FakeClock

HOST = "127.0.0.1:8080"
SEGMENT_CHARS = st.characters(codec="utf-8", exclude_characters="/\x00")
RESERVED = "!$&'()*+,;=:@"
segments = st.lists(
    st.one_of(st.sampled_from([".", "..", "", "a b", "~x", "%", "+", "é", "\u1234", RESERVED]),
              st.text(SEGMENT_CHARS, max_size=8)),
    max_size=6,
)
query_text = st.one_of(st.sampled_from(["", "=", "&", "a b", "+", "%", "~", "/", "é", RESERVED]),
                       st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6))
queries = st.lists(st.tuples(st.sampled_from(["a", "b", "A", "key", "x-y"]) | query_text.filter(bool), query_text),
                   max_size=5)
header_names = st.sampled_from(["x-amz-target", "x-amz-meta-a", "content-type", "x-custom", "x-amz-meta-b"])
header_values = st.text(st.sampled_from(list("abcXYZ019;,=:/é \t")), max_size=12)
headers = st.lists(st.tuples(header_names, header_values), max_size=5)
methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Recorded:
    """Remembers the canonical request a botocore signer signs."""

    canonical: str

    def string_to_sign(self, request: Any, canonical_request: str) -> str:
        self.canonical = canonical_request
        return super().string_to_sign(request, canonical_request)  # type: ignore[misc, no-any-return]


class RecordedSigV4(Recorded, SigV4Auth): ...
class RecordedS3SigV4(Recorded, S3SigV4Auth): ...
class RecordedSigV4Query(Recorded, SigV4QueryAuth): ...
class RecordedS3SigV4Query(Recorded, S3SigV4QueryAuth): ...


def wire_path(parts: list[str], service: str) -> str:
    """The path as an SDK sends it: S3 keys URI-encoded (``/`` kept); other services may also send
    reserved characters raw (the path is encoded again when signing)."""
    if service == "s3":
        return "/" + "/".join(quote(part, safe="~") for part in parts)
    return "/" + "/".join(quote(part, safe="~" + RESERVED) for part in parts)


def request_for(method: str, path: str, query: list[tuple[str, str]], extra: list[tuple[str, str]],
                body: bytes) -> AWSRequest:
    request = AWSRequest(method=method, url=f"http://{HOST}{path}", data=body)
    request.params = list(query)
    for name, value in extra:
        request.headers[name] = value  # HTTPHeaders appends: repeated names keep every value in order
    return request


def encoded_query(query: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in query)


def sent_headers(request: AWSRequest) -> list[tuple[str, str]]:
    return [*request.headers.items(), ("Host", HOST)]


@SETTINGS
@given(method=methods, parts=segments, query=queries, extra=headers, body=st.binary(max_size=64),
       service=st.sampled_from(["kms", "s3"]))
def test_header_signatures_from_botocore_are_accepted_with_the_same_canonical_request(
        directory: Any, method: str, parts: list[str], query: list[tuple[str, str]],
        extra: list[tuple[str, str]], body: bytes, service: str) -> None:
    path = wire_path(parts, service)
    request = request_for(method, path, query, extra, body)
    signer = (RecordedS3SigV4 if service == "s3" else RecordedSigV4)(Credentials(ALICE_AKID, ALICE_SECRET),
                                                                       service, REGION)
    signer.add_auth(request)
    verifier = SigV4Verifier(directory, REGION, service, FakeClock())
    pending = verifier.check_headers(method, path, encoded_query(query), sent_headers(request))
    payload_hash = pending.declared_payload_hash or hashlib.sha256(body).hexdigest()
    assert pending.canonical_request(payload_hash) == signer.canonical
    assert pending.verify_body(body).arn == ALICE_ARN


@SETTINGS
@given(method=methods, parts=segments, query=queries, extra=headers, service=st.sampled_from(["kms", "s3"]),
       expires=st.integers(min_value=1, max_value=604800))
def test_presigned_urls_from_botocore_are_accepted_with_the_same_canonical_request(
        directory: Any, method: str, parts: list[str], query: list[tuple[str, str]],
        extra: list[tuple[str, str]], service: str, expires: int) -> None:
    request = request_for(method, wire_path(parts, service), query, extra, b"")
    signer_class = RecordedS3SigV4Query if service == "s3" else RecordedSigV4Query
    signer = signer_class(Credentials(ALICE_AKID, ALICE_SECRET), service, REGION, expires=expires)
    signer.add_auth(request)
    url = urlsplit(request.url)
    # Checked at the second it was signed in: a URL valid for one second must not expire while the test runs.
    amz_date = parse_qs(url.query)["X-Amz-Date"][0]
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    verifier = SigV4Verifier(directory, REGION, service, lambda: signed_at)
    pending = verifier.check_presigned(method, url.path, url.query, sent_headers(request))
    payload_hash = pending.declared_payload_hash or hashlib.sha256(b"").hexdigest()
    assert pending.canonical_request(payload_hash) == signer.canonical
    assert pending.verify_body(b"").arn == ALICE_ARN
