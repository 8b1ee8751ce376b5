"""AWS's SigV4 test suite (``tests/vectors/sigv4``): every case, header-signed and presigned.

A verifier is correct on a case when it accepts the signed request, derives the same canonical
request and string to sign, and refuses the request after any single change to a signed part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from kmsgate.auth.identities import AccessKey
from kmsgate.auth.sigv4 import PendingSignature, SigV4Verifier
from kmsgate.auth.sigv4_canonical import PathRules
from kmsgate.core.errors import AccessDeniedError, KmsError, UnrecognizedClientError
from kmsgate.core.principal import Caller
from tests.vectors.loader import HttpRequest, Sigv4Case, load_sigv4_cases

ACCOUNT = "111122223333"
CASES = load_sigv4_cases()
FORMS = ("header", "query")
WITHOUT_TOKEN = [case for case in CASES if case.session_token is None]
WITH_TOKEN = [case for case in CASES if case.session_token is not None]


class SuiteDirectory:
    """The one access key of the suite (``AKIDEXAMPLE`` is shorter than kmsgate's own ids allow)."""

    arn = f"arn:aws:iam::{ACCOUNT}:user/example"

    def __init__(self, case: Sigv4Case) -> None:
        self._key = AccessKey(case.access_key_id, case.secret_access_key)

    def lookup_access_key(self, access_key_id: str) -> tuple[SuiteDirectory, AccessKey] | None:
        return (self, self._key) if access_key_id == self._key.access_key_id else None

    def caller(self, access_key_id: str | None = None, source_ip: str | None = None) -> Caller:
        return Caller(arn=self.arn, account_id=ACCOUNT, access_key_id=access_key_id, source_ip=source_ip)


def verifier_for(case: Sigv4Case, offset: float = 0.0) -> SigV4Verifier:
    rules = PathRules.STANDARD if case.normalize else PathRules.S3
    return SigV4Verifier(SuiteDirectory(case), case.region, case.service,  # type: ignore[arg-type]
                         lambda: case.timestamp + offset, path_rules=rules)


def check(verifier: SigV4Verifier, form: str, request: HttpRequest) -> PendingSignature:
    check_form = verifier.check_headers if form == "header" else verifier.check_presigned
    return check_form(request.method, request.path, request.query, request.headers)


def accept(case: Sigv4Case, form: str, request: HttpRequest) -> str:
    return check(verifier_for(case), form, request).verify_body(request.body).arn


def test_the_whole_suite_is_here() -> None:
    assert len(CASES) == 38 and len(WITH_TOKEN) == 3


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", WITHOUT_TOKEN, ids=lambda case: case.name)
def test_suite_request_is_accepted_with_the_same_canonical_request_and_string_to_sign(case: Sigv4Case,
                                                                                        form: str) -> None:
    signed = getattr(case, form)
    pending = check(verifier_for(case), form, signed.request)
    payload_hash = hashlib.sha256(signed.request.body).hexdigest()
    assert pending.canonical_request(payload_hash) == signed.canonical_request
    assert pending.string_to_sign(payload_hash) == signed.string_to_sign
    assert pending.verify_body(signed.request.body).arn == SuiteDirectory.arn


def mutations(request: HttpRequest, form: str) -> Iterator[tuple[str, HttpRequest]]:
    """Every single change to a signed part of ``request``."""
    yield "method", replace(request, method="PUT" if request.method != "PUT" else "GET")
    yield "path", replace(request, path=request.path + "x")
    yield "extra query parameter", replace(request, query=request.query + ("&" if request.query else "") + "x=1")
    pairs = request.query.split("&") if request.query else []
    for index, pair in enumerate(pairs):
        if pair.startswith("X-Amz-Signature=") or pair.startswith("X-Amz-Algorithm="):
            continue
        changed = [*pairs[:index], pair + "x", *pairs[index + 1 :]]
        yield f"query parameter {pair[:30]}", replace(request, query="&".join(changed))
    signed_names = set()
    for name, value in request.headers:
        if name.lower() == "authorization":
            signed_names = set(value.split("SignedHeaders=")[1].split(",")[0].split(";"))
    for index, (name, value) in enumerate(request.headers):
        if name.lower() in signed_names:
            changed_headers = list(request.headers)
            changed_headers[index] = (name, value + "x")
            yield f"header {name}", replace(request, headers=tuple(changed_headers))
            dropped = request.headers[:index] + request.headers[index + 1 :]
            yield f"no header {name}", replace(request, headers=dropped)
    yield "body", replace(request, body=request.body + b"x")
    if form == "header":
        headers = [(n, v[:-1] + ("0" if v[-1] != "0" else "1")) if n.lower() == "authorization" else (n, v)
                   for n, v in request.headers]
        yield "signature", replace(request, headers=tuple(headers))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", WITHOUT_TOKEN, ids=lambda case: case.name)
def test_suite_request_is_refused_after_any_single_change_to_a_signed_part(case: Sigv4Case, form: str) -> None:
    signed = getattr(case, form)
    tried = 0
    for what, changed in mutations(signed.request, form):
        if what == "body" and form == "query" and case.service == "s3":
            continue  # an S3 presigned URL never covers the body
        with pytest.raises(KmsError):
            accept(case, form, changed)
            pytest.fail(f"accepted after changing the {what}")
        tried += 1
    assert tried >= 5


@pytest.mark.parametrize("case", WITHOUT_TOKEN[:3], ids=lambda case: case.name)
def test_suite_presigned_request_is_refused_once_expired(case: Sigv4Case) -> None:
    request = case.query.request
    assert check(verifier_for(case, case.expires_seconds), "query", request).verify_body(request.body)
    with pytest.raises(AccessDeniedError, match="expired"):
        check(verifier_for(case, case.expires_seconds + 1), "query", request)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", WITH_TOKEN, ids=lambda case: case.name)
def test_suite_requests_with_session_tokens_are_refused(case: Sigv4Case, form: str) -> None:
    # kmsgate issues no session tokens, so none is ever valid (signed or not).
    with pytest.raises(UnrecognizedClientError):
        check(verifier_for(case), form, getattr(case, form).request)
