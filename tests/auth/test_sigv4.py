"""SigV4 verification: requests signed by botocore's signer, and every failure mode."""

from __future__ import annotations

import datetime
import email.utils

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.core.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

from .conftest import ALICE_AKID, ALICE_ARN, ALICE_SECRET, REGION, ROOT_AKID, ROOT_SECRET

BODY = b'{"KeyId": "alias/app", "Plaintext": "aGVsbG8="}'
HOST = "127.0.0.1:8080"


def sign(
    *,
    akid: str = ALICE_AKID,
    secret: str = ALICE_SECRET,
    body: bytes = BODY,
    method: str = "POST",
    path: str = "/",
    query: str = "",
    headers: dict[str, str] | None = None,
    region: str = REGION,
    service: str = "kms",
    token: str | None = None,
    unsigned_payload: bool = False,
) -> dict[str, str]:
    """Headers as a client signed them (botocore's signer, as boto3 and the aws CLI use it)."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    base = {"X-Amz-Target": "TrentService.Encrypt", "Content-Type": "application/x-amz-json-1.1"}
    request = AWSRequest(method=method, url=url, data=body, headers=headers if headers is not None else base)
    if unsigned_payload:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    # "s3-generic": S3's signing name with the generic signer, which keeps a given payload header.
    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
    service = "s3" if service == "s3-generic" else service
    signer_class(Credentials(akid, secret, token), service, region).add_auth(request)
    signed = dict(request.headers.items())
    signed["Host"] = HOST
    return signed


@pytest.fixture
def verifier(directory, clock):
    return SigV4Verifier(directory, REGION, "kms", clock)


def test_valid_request_yields_caller(verifier):
    caller = verifier.verify("POST", "/", "", sign(), BODY, source_ip="127.0.0.1")
    assert caller.arn == ALICE_ARN
    assert caller.access_key_id == ALICE_AKID
    assert caller.source_ip == "127.0.0.1"


def test_root_signature_yields_root(verifier):
    caller = verifier.verify("POST", "/", "", sign(akid=ROOT_AKID, secret=ROOT_SECRET), BODY)
    assert caller.is_account_root


def test_header_names_are_case_insensitive(verifier):
    headers = {k.upper(): v for k, v in sign().items()}
    assert verifier.verify("POST", "/", "", headers, BODY).arn == ALICE_ARN


def test_unknown_access_key_is_unrecognized_client(verifier):
    with pytest.raises(UnrecognizedClientError, match="security token included in the request is invalid"):
        verifier.verify("POST", "/", "", sign(akid="AKIANOBODY0000000000"), BODY)


def test_wrong_secret_is_invalid_signature(verifier):
    with pytest.raises(InvalidSignatureError, match="does not match the signature you provided"):
        verifier.verify("POST", "/", "", sign(secret="x" * 40), BODY)


def test_other_body_than_signed_fails(verifier):
    with pytest.raises(InvalidSignatureError):
        verifier.verify("POST", "/", "", sign(), BODY.replace(b"app", b"ap2"))


def test_other_operation_than_signed_fails(verifier):
    headers = sign()
    headers["X-Amz-Target"] = "TrentService.Decrypt"
    with pytest.raises(InvalidSignatureError):
        verifier.verify("POST", "/", "", headers, BODY)


def test_other_method_path_or_query_than_signed_fails(verifier):
    headers = sign(path="/a", query="x=1")
    assert verifier.verify("POST", "/a", "x=1", headers, BODY)
    for method, path, query in [("PUT", "/a", "x=1"), ("POST", "/b", "x=1"), ("POST", "/a", "x=2")]:
        with pytest.raises(InvalidSignatureError):
            verifier.verify(method, path, query, headers, BODY)


def test_query_parameters_in_any_order_and_encoding(verifier):
    headers = sign(method="GET", path="/", query="b=2&a=x%2Fy&c=", body=b"")
    assert verifier.verify("GET", "/", "c=&a=x/y&b=2", headers, b"").arn == ALICE_ARN


def test_unsigned_amz_header_is_refused(verifier):
    headers = sign(headers={"Content-Type": "application/x-amz-json-1.1"})
    headers["X-Amz-Target"] = "TrentService.ScheduleKeyDeletion"
    with pytest.raises(IncompleteSignatureError, match="not signed: x-amz-target"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_host_must_be_signed(verifier):
    headers = sign()
    headers["Authorization"] = headers["Authorization"].replace("host;", "")
    with pytest.raises(IncompleteSignatureError, match="'Host' must be a 'SignedHeader'"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_signed_header_missing_from_request_fails(verifier):
    headers = sign()
    del headers["Content-Type"]
    with pytest.raises(InvalidSignatureError):
        verifier.verify("POST", "/", "", headers, BODY)


def test_missing_authorization_is_missing_token(verifier):
    headers = sign()
    del headers["Authorization"]
    with pytest.raises(MissingAuthenticationTokenError):
        verifier.verify("POST", "/", "", headers, BODY)


@pytest.mark.parametrize(
    "authorization, message",
    [
        ("Bearer abc", "Unsupported AWS 'algorithm'"),
        ("AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20240101/us-east-1/kms/aws4_request",
         "requires 'Signature' parameter"),
        ("AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20240101/us-east-1/kms/aws4_request, "
         "SignedHeaders=host, Signature=", "requires 'Signature' parameter"),
        ("AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=00", "requires 'Credential' parameter"),
        ("AWS4-HMAC-SHA256 Credential=AKIA/x, SignedHeaders=host, Signature=00", "5 slash-delimited"),
        ("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=Host;X, Signature=00", "lowercase"),
        ("AWS4-HMAC-SHA256 " + "x" * 9000, "too long"),
    ],
)
def test_garbled_authorization_is_incomplete_signature(verifier, authorization, message):
    headers = sign()
    headers["Authorization"] = authorization
    with pytest.raises(IncompleteSignatureError, match=message):
        verifier.verify("POST", "/", "", headers, BODY)


def test_two_authorization_headers_are_refused(verifier):
    headers = list(sign().items()) + [("authorization", sign()["Authorization"])]
    with pytest.raises(IncompleteSignatureError):
        verifier.verify("POST", "/", "", headers, BODY)


def test_expired_signature(verifier, clock):
    headers = sign()
    clock.offset = 5 * 60 + 10
    with pytest.raises(InvalidSignatureError, match="^Signature expired: .* - 5 min"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_signature_from_the_future(verifier, clock):
    headers = sign()
    clock.offset = -(5 * 60 + 10)
    with pytest.raises(InvalidSignatureError, match="^Signature not yet current"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_skew_within_five_minutes_is_accepted(verifier, clock):
    headers = sign()
    clock.offset = 4 * 60
    assert verifier.verify("POST", "/", "", headers, BODY).arn == ALICE_ARN
    clock.offset = -4 * 60
    assert verifier.verify("POST", "/", "", headers, BODY).arn == ALICE_ARN


def test_garbled_date_is_incomplete(verifier):
    headers = sign()
    headers["X-Amz-Date"] = "yesterday"
    with pytest.raises(IncompleteSignatureError, match="ISO-8601"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_date_header_instead_of_x_amz_date(verifier):
    now = datetime.datetime.now(datetime.timezone.utc)
    headers = {"X-Amz-Target": "TrentService.Encrypt",
               "Date": email.utils.format_datetime(now, usegmt=True)}
    signed = sign(headers=headers)
    assert "X-Amz-Date" not in signed
    assert verifier.verify("POST", "/", "", signed, BODY).arn == ALICE_ARN


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"region": "eu-west-1"}, "valid region"),
        ({"service": "dynamodb"}, "correct service: 'kms'"),
    ],
)
def test_wrong_credential_scope(verifier, kwargs, message):
    with pytest.raises(InvalidSignatureError, match=message):
        verifier.verify("POST", "/", "", sign(**kwargs), BODY)


def test_scope_day_must_match_request_day(verifier):
    headers = sign()
    headers["Authorization"] = headers["Authorization"].replace(
        headers["X-Amz-Date"][:8], "20000101"
    )
    with pytest.raises(InvalidSignatureError, match="Date in Credential scope"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_session_token_is_refused(verifier):
    with pytest.raises(UnrecognizedClientError):
        verifier.verify("POST", "/", "", sign(token="session"), BODY)


def test_content_sha256_must_match_body(verifier):
    import hashlib

    good = hashlib.sha256(BODY).hexdigest()
    headers = sign(headers={"X-Amz-Target": "TrentService.Encrypt", "X-Amz-Content-SHA256": good})
    assert verifier.verify("POST", "/", "", headers, BODY).arn == ALICE_ARN
    bad = hashlib.sha256(b"other").hexdigest()
    forged = sign(headers={"X-Amz-Target": "TrentService.Encrypt", "X-Amz-Content-SHA256": bad},
                  body=b"other")
    with pytest.raises(InvalidSignatureError, match="x-amz-content-sha256"):
        verifier.verify("POST", "/", "", forged, BODY)


def test_unsigned_payload_refused_by_kms_verifier(verifier):
    headers = sign(headers={"X-Amz-Target": "TrentService.Encrypt", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(InvalidSignatureError, match="signed payload"):
        verifier.verify("POST", "/", "", headers, BODY)


def test_streaming_payload_refused(directory, clock):
    s3 = SigV4Verifier(directory, REGION, "s3", clock, allow_unsigned_payload=True)
    headers = sign(service="s3-generic", method="PUT", path="/v1/o",
                   headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    with pytest.raises(IncompleteSignatureError, match="Streaming"):
        s3.verify("PUT", "/v1/o", "", headers, BODY)


def test_s3_style_unsigned_payload_and_encoded_path(directory, clock):
    s3 = SigV4Verifier(directory, REGION, "s3", clock, allow_unsigned_payload=True)
    headers = sign(service="s3", method="PUT", path="/v1/objects/a%20b", headers={},
                   unsigned_payload=True)
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    caller = s3.verify("PUT", "/v1/objects/a%20b", "", headers, b"any body at all")
    assert caller.arn == ALICE_ARN
    signed_body = sign(service="s3", method="PUT", path="/v1/objects/x", headers={})
    assert s3.verify("PUT", "/v1/objects/x", "", signed_body, BODY).arn == ALICE_ARN
    with pytest.raises(InvalidSignatureError):
        s3.verify("PUT", "/v1/objects/y", "", signed_body, BODY)


def test_kms_signature_not_valid_for_s3_verifier(directory, clock):
    s3 = SigV4Verifier(directory, REGION, "s3", clock)
    with pytest.raises(InvalidSignatureError, match="correct service: 's3'"):
        s3.verify("POST", "/", "", sign(), BODY)


def test_errors_never_contain_secret(verifier):
    headers = sign(secret="y" * 40)
    with pytest.raises(InvalidSignatureError) as info:
        verifier.verify("POST", "/", "", headers, BODY)
    assert ALICE_SECRET not in str(info.value) and "y" * 40 not in str(info.value)


@pytest.mark.parametrize("path, query", [("/#x", ""), ("/", "a=1#x"), ("/%FF", ""), ("/a%G1", ""), ("/", "a=%E1%88"),
                                         ("/%", "")])
def test_a_fragment_or_invalid_escape_in_the_target_is_refused_before_anything_else(verifier, path, query):
    from kmsgate.core.errors import InvalidUriError

    with pytest.raises(InvalidUriError) as info:
        verifier.verify("POST", path, query, {}, BODY)  # not even an Authorization header
    assert info.value.status == 400 and info.value.code == "InvalidURI"
