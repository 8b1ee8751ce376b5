"""The S3 error tree and error document, read back by boto3; KMS failures as S3 reports them."""

from __future__ import annotations

import botocore.exceptions
import pytest
from hypothesis import HealthCheck, given, settings

from kmsgate.s3 import errors
from kmsgate.s3.errors import S3_ERRORS, S3Error, error_document, error_for_kms
from tests.s3.conftest import S3Oracle
from tests.s3.strategies import xml_text

EXPECTED_STATUS = {
    "NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404, "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409, "BucketNotEmpty": 409, "InvalidPart": 400, "InvalidPartOrder": 400,
    "EntityTooSmall": 400, "EntityTooLarge": 400, "InvalidRange": 416, "InvalidPartNumber": 416, "AccessDenied": 403,
    "SignatureDoesNotMatch": 403, "RequestTimeTooSkewed": 403, "InvalidAccessKeyId": 403,
    "AuthorizationHeaderMalformed": 400, "MissingContentLength": 411, "BadDigest": 400,
    "InvalidDigest": 400, "InvalidRequest": 400, "InvalidArgument": 400, "InvalidBucketName": 400,
    "KeyTooLongError": 400, "MalformedXML": 400, "MaxMessageLengthExceeded": 400,
    "MetadataTooLarge": 400, "MethodNotAllowed": 405, "NotImplemented": 501,
    "PreconditionFailed": 412, "NotModified": 304, "SlowDown": 503, "ServiceUnavailable": 503,
    "InternalError": 500, "XAmzContentSHA256Mismatch": 400,
}


def _client_error(s3: S3Oracle, error: S3Error) -> botocore.exceptions.ClientError:
    s3.transport.respond(error_document(error, request_id="4442587FB7D0A2F9", host_id="host+id="), status=error.status)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.client.get_object(Bucket="bucket", Key="photos/a.jpg")
    return caught.value


def test_every_code_the_front_uses_has_s3s_status() -> None:
    assert {code: cls.status for code, cls in S3_ERRORS.items()} == EXPECTED_STATUS


@pytest.mark.parametrize("code", sorted(code for code in EXPECTED_STATUS if code != "NotModified"))
def test_boto3_reads_each_error_document_as_its_code_and_message(s3: S3Oracle, code: str) -> None:
    error = S3_ERRORS[code]()

    caught = _client_error(s3, error)

    assert caught.response["Error"]["Code"] == code
    assert caught.response["Error"]["Message"] == error.message
    assert caught.response["ResponseMetadata"]["HTTPStatusCode"] == EXPECTED_STATUS[code]
    # botocore takes the request id from the x-amz-request-id header and drops the body's copy
    assert set(caught.response["Error"]) == {"Code", "Message"}


def test_s3s_extra_error_fields_reach_the_client(s3: S3Oracle) -> None:
    cases: list[tuple[S3Error, dict[str, str]]] = [
        (errors.NoSuchKey(key="photos/a&b.jpg"), {"Key": "photos/a&b.jpg"}),
        (errors.NoSuchBucket(bucket_name="bucket"), {"BucketName": "bucket"}),
        (errors.NoSuchUpload(upload_id="VXBsb2FkIElE"), {"UploadId": "VXBsb2FkIElE"}),
        (
            errors.InvalidRange(range_requested="bytes=100-200", actual_object_size=50),
            {"RangeRequested": "bytes=100-200", "ActualObjectSize": "50"},
        ),
        (
            errors.InvalidArgument("Invalid Encoding Method", argument_name="encoding-type", argument_value="x"),
            {"ArgumentName": "encoding-type", "ArgumentValue": "x"},
        ),
        (errors.PreconditionFailed(condition="If-Match"), {"Condition": "If-Match"}),
    ]
    for error, extra in cases:
        caught = _client_error(s3, error)
        assert caught.response["Error"] == {"Code": error.code, "Message": error.message, **extra}


def test_the_error_document_is_s3s_shape_without_a_namespace() -> None:
    document = error_document(errors.NoSuchKey(key="k"), request_id="RID", resource="/b/k")
    assert document == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
        b"<Key>k</Key><Resource>/b/k</Resource><RequestId>RID</RequestId></Error>"
    )


def test_not_modified_has_no_body() -> None:
    assert error_document(errors.NotModified(), request_id="RID") == b""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=xml_text)
def test_any_message_reaches_boto3_unchanged(s3: S3Oracle, message: str) -> None:
    caught = _client_error(s3, errors.InvalidRequest(message))
    assert caught.response["Error"]["Message"] == (message or errors.InvalidRequest.default_message)


@pytest.mark.parametrize(
    ("kms_code", "s3_code", "status"),
    [
        ("DisabledException", "KMS.DisabledException", 400),
        ("NotFoundException", "KMS.NotFoundException", 400),
        ("KMSInvalidStateException", "KMS.KMSInvalidStateException", 400),
        ("InvalidKeyUsageException", "KMS.InvalidKeyUsageException", 400),
        ("ValidationException", "KMS.ValidationException", 400),
        ("AccessDeniedException", "AccessDenied", 403),
        ("ThrottlingException", "SlowDown", 503),
        ("DependencyTimeoutException", "ServiceUnavailable", 503),
        ("KMSInternalException", "InternalError", 500),
        ("InvalidCiphertextException", "InternalError", 500),
        ("IncorrectKeyException", "InternalError", 500),
        ("UnrecognizedClientException", "InternalError", 500),
        ("SomethingNew", "InternalError", 500),
    ],
)
def test_a_kms_failure_becomes_what_s3_returns(kms_code: str, s3_code: str, status: int) -> None:
    error = error_for_kms(kms_code, "arn:aws:kms:us-east-1:111122223333:key/k is disabled.")
    assert (error.code, error.status) == (s3_code, status)


def test_kms_client_faults_keep_their_message_and_server_faults_do_not(s3: S3Oracle) -> None:
    disabled = error_for_kms("DisabledException", "arn:aws:kms:us-east-1:111122223333:key/k is disabled.")
    assert disabled.message == "arn:aws:kms:us-east-1:111122223333:key/k is disabled."
    denied = error_for_kms("AccessDeniedException", "User: u is not authorized to perform: kms:Decrypt")
    assert denied.message == "User: u is not authorized to perform: kms:Decrypt"
    internal = error_for_kms("KMSInternalException", "stack trace with /var/lib/kmsgate/secret")
    assert "secret" not in internal.message
    assert internal.message == errors.InternalError.default_message

    caught = _client_error(s3, disabled)
    assert caught.response["Error"]["Code"] == "KMS.DisabledException"
    assert caught.response["ResponseMetadata"]["HTTPStatusCode"] == 400
