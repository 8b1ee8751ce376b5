"""SigV4 verification's caches: signing keys per secret and day, parsed timestamps and headers."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.credentials import Credentials

from kmsgate.auth import sigv4_authorization
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.auth.sigv4_canonical import SigningKeys, signature
from kmsgate.core.errors import IncompleteSignatureError, InvalidSignatureError

from .conftest import ALICE_AKID, ALICE_ARN, ALICE_SECRET, REGION
from .test_sigv4 import BODY, sign


class _Stamped:
    """The one attribute ``SigV4Auth.signature`` reads of a request."""

    def __init__(self, stamp: str) -> None:
        self.context = {"timestamp": stamp}


@pytest.mark.parametrize("service_name", ["kms", "s3"])
def test_cached_signing_keys_give_botocore_signatures(service_name):
    keys = SigningKeys(capacity=3)
    stock = SigV4Auth(Credentials(ALICE_AKID, ALICE_SECRET), service_name, REGION)
    for day in range(1, 10):
        stamp = f"202601{day:02d}T120000Z"
        for string_to_sign in ("a", "AWS4-HMAC-SHA256\n20260101T120000Z\nscope\nhash"):
            for _ in range(2):  # derived, then from the cache
                key = keys.get(ALICE_SECRET, stamp[:8], REGION, service_name)
                assert signature(key, string_to_sign) == stock.signature(string_to_sign, _Stamped(stamp))
        assert len(keys) <= 3


def test_one_signing_key_per_secret_day_region_and_service():
    keys = SigningKeys()
    first = keys.get(ALICE_SECRET, "20260101", REGION, "kms")
    assert keys.get(ALICE_SECRET, "20260101", REGION, "kms") is first
    for other in (("another-secret", "20260101", REGION, "kms"), (ALICE_SECRET, "20260102", REGION, "kms"),
                  (ALICE_SECRET, "20260101", "eu-west-1", "kms"), (ALICE_SECRET, "20260101", REGION, "s3")):
        assert keys.get(*other) != first


def test_signing_key_cache_is_bounded():
    keys = SigningKeys(capacity=100)
    for n in range(250):
        keys.get(f"secret-{n}", "20260101", REGION, "kms")
        assert len(keys) <= 100


def test_repeated_requests_verify_with_cached_state(directory, clock):
    verifier = SigV4Verifier(directory, REGION, "kms", clock)
    headers = sign()
    for _ in range(3):
        assert verifier.verify("POST", "/", "", headers, BODY).arn == ALICE_ARN
    tampered = dict(headers, Authorization=headers["Authorization"][:-1] + ("0" if headers["Authorization"][-1] != "0" else "1"))
    with pytest.raises(InvalidSignatureError):
        verifier.verify("POST", "/", "", tampered, BODY)


@pytest.mark.parametrize("stamp", ["20261340T000000Z", "20260230T000000Z", "20260101T250000Z", "2026010AT000000Z"])
def test_invalid_timestamps_stay_invalid_when_seen_again(verifier_factory, stamp):
    verifier = verifier_factory()
    headers = sign(headers={"X-Amz-Date": stamp, "Content-Type": "application/x-amz-json-1.1"})
    headers["X-Amz-Date"] = stamp
    for _ in range(2):
        with pytest.raises(IncompleteSignatureError, match="ISO-8601"):
            verifier.verify("POST", "/", "", headers, BODY)


def test_clock_skew_limits_are_exact(directory):
    headers = sign()
    signed_at = datetime.datetime.strptime(headers["X-Amz-Date"], sigv4_authorization.SIGV4_TIMESTAMP).replace(
        tzinfo=datetime.timezone.utc
    ).timestamp()
    for offset, accepted in ((300, True), (300.5, False), (-300, True), (-300.5, False)):
        verifier = SigV4Verifier(directory, REGION, "kms", lambda: signed_at + offset)
        if accepted:
            assert verifier.verify("POST", "/", "", headers, BODY).arn == ALICE_ARN
        else:
            with pytest.raises(InvalidSignatureError, match="Signature expired" if offset > 0 else "not yet current"):
                verifier.verify("POST", "/", "", headers, BODY)


@pytest.fixture
def verifier_factory(directory, clock):
    return lambda: SigV4Verifier(directory, REGION, "kms", clock)


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms/aws4_request,SignedHeaders=host,Signature=ab",
        "AWS4-HMAC-SHA256  Credential=AKIA/20260101/us-east-1/kms/aws4_request , SignedHeaders=host, Signature=ab ",
        "AWS4-HMAC-SHA256 Signature=ab, SignedHeaders=host, Credential=AKIA/20260101/us-east-1/kms/aws4_request",
        "AWS4-HMAC-SHA256 Credential=a=b/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=ab=",
    ],
)
def test_usual_and_general_authorization_parsing_agree(value):
    assert sigv4_authorization.parse_authorization(value) == sigv4_authorization.parse_authorization_fields(value)


@pytest.mark.parametrize(
    "value, message",
    [
        ("AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms, SignedHeaders=host, Signature=ab", "5 slash"),
        ("AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms/aws4_request, SignedHeaders=Host, Signature=ab",
         "lowercase"),
        ("AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms/aws4_request, Signature=ab", "SignedHeaders"),
    ],
)
def test_malformed_authorization_keeps_its_message(value, message):
    with pytest.raises(IncompleteSignatureError, match=message):
        sigv4_authorization.parse_authorization(value)
