"""The S3 error tree, its XML error document, and KMS failures as S3 reports them.

Each class carries S3's error code and HTTP status as class attributes, plus the message
S3 uses when there is nothing more specific to say. Some codes carry extra elements that
S3 adds to the error document (``Key`` for ``NoSuchKey``, ``BucketName`` for
``NoSuchBucket``, ``UploadId`` for ``NoSuchUpload``, ...); those are ``details``, in the
order S3 writes them. The document (no namespace, as S3 sends it)::

    <?xml version="1.0" encoding="UTF-8"?>
    <Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>
    <Key>photos/a.jpg</Key><Resource>/bucket/photos/a.jpg</Resource>
    <RequestId>...</RequestId><HostId>...</HostId></Error>

``NotModified`` (304) has no body. Messages and details never carry secrets: a KMS
failure's own message is passed on only for the client faults S3 itself passes on, and
server-side faults are reported with S3's generic text.
"""

from __future__ import annotations

from collections.abc import Mapping

from kmsgate.s3.xmlwriter import Element, leaf, node, render_document


class S3Error(Exception):
    """Base of every error the S3 front reports to a client."""

    code: str = "InternalError"
    status: int = 500
    default_message: str = "We encountered an internal error. Please try again."
    has_body: bool = True

    def __init__(self, message: str | None = None, *, details: Mapping[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.details: tuple[tuple[str, str], ...] = tuple((details or {}).items())
        super().__init__(self.message)


def _only(**fields: str | int | None) -> dict[str, str]:
    """Details with the ``None`` ones left out, values as text."""
    return {name: str(value) for name, value in fields.items() if value is not None}


class NoSuchBucket(S3Error):
    code, status = "NoSuchBucket", 404
    default_message = "The specified bucket does not exist"

    def __init__(self, message: str | None = None, *, bucket_name: str | None = None) -> None:
        super().__init__(message, details=_only(BucketName=bucket_name))


class NoSuchKey(S3Error):
    code, status = "NoSuchKey", 404
    default_message = "The specified key does not exist."

    def __init__(self, message: str | None = None, *, key: str | None = None) -> None:
        super().__init__(message, details=_only(Key=key))


class NoSuchUpload(S3Error):
    code, status = "NoSuchUpload", 404
    default_message = (
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed."
    )

    def __init__(self, message: str | None = None, *, upload_id: str | None = None) -> None:
        super().__init__(message, details=_only(UploadId=upload_id))


class BucketAlreadyExists(S3Error):
    code, status = "BucketAlreadyExists", 409
    default_message = (
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again."
    )

    def __init__(self, message: str | None = None, *, bucket_name: str | None = None) -> None:
        super().__init__(message, details=_only(BucketName=bucket_name))


class BucketAlreadyOwnedByYou(S3Error):
    code, status = "BucketAlreadyOwnedByYou", 409
    default_message = "Your previous request to create the named bucket succeeded and you already own it."

    def __init__(self, message: str | None = None, *, bucket_name: str | None = None) -> None:
        super().__init__(message, details=_only(BucketName=bucket_name))


class BucketNotEmpty(S3Error):
    code, status = "BucketNotEmpty", 409
    default_message = "The bucket you tried to delete is not empty"

    def __init__(self, message: str | None = None, *, bucket_name: str | None = None) -> None:
        super().__init__(message, details=_only(BucketName=bucket_name))


class InvalidPart(S3Error):
    code, status = "InvalidPart", 400
    default_message = (
        "One or more of the specified parts could not be found.  The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag."
    )

    def __init__(
        self,
        message: str | None = None,
        *,
        upload_id: str | None = None,
        part_number: int | None = None,
        etag: str | None = None,
    ) -> None:
        super().__init__(message, details=_only(UploadId=upload_id, PartNumber=part_number, ETag=etag))


class InvalidPartOrder(S3Error):
    code, status = "InvalidPartOrder", 400
    default_message = (
        "The list of parts was not in ascending order. The parts list must be specified in "
        "order by part number."
    )


class EntityTooSmall(S3Error):
    code, status = "EntityTooSmall", 400
    default_message = "Your proposed upload is smaller than the minimum allowed object size."

    def __init__(
        self,
        message: str | None = None,
        *,
        proposed_size: int | None = None,
        min_size_allowed: int | None = None,
    ) -> None:
        super().__init__(message, details=_only(ProposedSize=proposed_size, MinSizeAllowed=min_size_allowed))


class EntityTooLarge(S3Error):
    code, status = "EntityTooLarge", 400
    default_message = "Your proposed upload exceeds the maximum allowed size"

    def __init__(
        self,
        message: str | None = None,
        *,
        proposed_size: int | None = None,
        max_size_allowed: int | None = None,
    ) -> None:
        super().__init__(message, details=_only(ProposedSize=proposed_size, MaxSizeAllowed=max_size_allowed))


class InvalidRange(S3Error):
    code, status = "InvalidRange", 416
    default_message = "The requested range is not satisfiable"

    def __init__(
        self,
        message: str | None = None,
        *,
        range_requested: str | None = None,
        actual_object_size: int | None = None,
    ) -> None:
        super().__init__(
            message, details=_only(RangeRequested=range_requested, ActualObjectSize=actual_object_size)
        )


class AccessDenied(S3Error):
    code, status = "AccessDenied", 403
    default_message = "Access Denied"


class SignatureDoesNotMatch(S3Error):
    code, status = "SignatureDoesNotMatch", 403
    default_message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


class RequestTimeTooSkewed(S3Error):
    code, status = "RequestTimeTooSkewed", 403
    default_message = "The difference between the request time and the current time is too large."


class InvalidAccessKeyId(S3Error):
    code, status = "InvalidAccessKeyId", 403
    default_message = "The AWS Access Key Id you provided does not exist in our records."


class AuthorizationHeaderMalformed(S3Error):
    code, status = "AuthorizationHeaderMalformed", 400
    default_message = "The authorization header you provided is invalid."


class MissingContentLength(S3Error):
    code, status = "MissingContentLength", 411
    default_message = "You must provide the Content-Length HTTP header."


class BadDigest(S3Error):
    code, status = "BadDigest", 400
    default_message = "The Content-MD5 you specified did not match what we received."


class InvalidDigest(S3Error):
    code, status = "InvalidDigest", 400
    default_message = "The Content-MD5 you specified is not valid."


class InvalidPartNumber(S3Error):
    code, status = "InvalidPartNumber", 416
    default_message = "The requested partnumber is not satisfiable"


class InvalidRequest(S3Error):
    code, status = "InvalidRequest", 400
    default_message = "Invalid Request"


class RequestHeaderSectionTooLarge(S3Error):
    code, status = "RequestHeaderSectionTooLarge", 400
    default_message = "Your request header section exceeds the maximum allowed size."


class InvalidArgument(S3Error):
    code, status = "InvalidArgument", 400
    default_message = "Invalid Argument"

    def __init__(
        self,
        message: str | None = None,
        *,
        argument_name: str | None = None,
        argument_value: str | None = None,
    ) -> None:
        super().__init__(message, details=_only(ArgumentName=argument_name, ArgumentValue=argument_value))


class InvalidBucketName(S3Error):
    code, status = "InvalidBucketName", 400
    default_message = "The specified bucket is not valid."

    def __init__(self, message: str | None = None, *, bucket_name: str | None = None) -> None:
        super().__init__(message, details=_only(BucketName=bucket_name))


class KeyTooLongError(S3Error):
    code, status = "KeyTooLongError", 400
    default_message = "Your key is too long"


class MalformedXML(S3Error):
    code, status = "MalformedXML", 400
    default_message = (
        "The XML you provided was not well-formed or did not validate against our published schema"
    )


class MaxMessageLengthExceeded(S3Error):
    code, status = "MaxMessageLengthExceeded", 400
    default_message = "Your request was too big."


class MetadataTooLarge(S3Error):
    code, status = "MetadataTooLarge", 400
    default_message = "Your metadata headers exceed the maximum allowed metadata size"


class MethodNotAllowed(S3Error):
    code, status = "MethodNotAllowed", 405
    default_message = "The specified method is not allowed against this resource."

    def __init__(
        self,
        message: str | None = None,
        *,
        method: str | None = None,
        resource_type: str | None = None,
    ) -> None:
        super().__init__(message, details=_only(Method=method, ResourceType=resource_type))


class NotImplementedFeature(S3Error):
    """S3's ``NotImplemented`` (named so as not to shadow Python's ``NotImplemented``)."""

    code, status = "NotImplemented", 501
    default_message = "A header you provided implies functionality that is not implemented"


class PreconditionFailed(S3Error):
    code, status = "PreconditionFailed", 412
    default_message = "At least one of the pre-conditions you specified did not hold"

    def __init__(self, message: str | None = None, *, condition: str | None = None) -> None:
        super().__init__(message, details=_only(Condition=condition))


class NotModified(S3Error):
    """304: not a failure, but carried the same way; the response has no body.

    ``headers`` are the validators the 304 carries so a cache can revalidate (RFC 9110
    section 15.4.5): ``ETag``, ``Last-Modified``, and ``Cache-Control`` / ``Expires`` when
    the object has them.
    """

    code, status = "NotModified", 304
    default_message = "Not Modified"
    has_body = False

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: Mapping[str, str] = dict(headers or {})


class SlowDown(S3Error):
    code, status = "SlowDown", 503
    default_message = "Please reduce your request rate."


class ServiceUnavailable(S3Error):
    code, status = "ServiceUnavailable", 503
    default_message = "Please reduce your request rate."


class InternalError(S3Error):
    code, status = "InternalError", 500


class XAmzContentSHA256Mismatch(S3Error):
    code, status = "XAmzContentSHA256Mismatch", 400
    default_message = "The provided 'x-amz-content-sha256' header does not match what was computed."


class KmsFailure(S3Error):
    """A client fault of the KMS, reported by S3 as ``KMS.<KMS error code>`` with status 400."""

    status = 400
    default_message = "The KMS request failed."

    def __init__(self, kms_code: str, message: str | None = None) -> None:
        self.code = f"KMS.{kms_code}"
        super().__init__(message)


S3_ERRORS: Mapping[str, type[S3Error]] = {
    cls.code: cls
    for cls in (
        NoSuchBucket, NoSuchKey, NoSuchUpload, BucketAlreadyExists, BucketAlreadyOwnedByYou,
        BucketNotEmpty, InvalidPart, InvalidPartOrder, EntityTooSmall, EntityTooLarge,
        InvalidRange, AccessDenied, SignatureDoesNotMatch, RequestTimeTooSkewed,
        InvalidAccessKeyId, AuthorizationHeaderMalformed, MissingContentLength, BadDigest,
        InvalidDigest, InvalidPartNumber, InvalidRequest, InvalidArgument, InvalidBucketName, KeyTooLongError,
        MalformedXML, MaxMessageLengthExceeded, MetadataTooLarge, MethodNotAllowed,
        NotImplementedFeature, PreconditionFailed, NotModified, SlowDown, ServiceUnavailable,
        InternalError, XAmzContentSHA256Mismatch,
    )
}
"""Every fixed-code error by its S3 code (``KMS.*`` codes are ``KmsFailure`` instances)."""

# KMS error codes whose meaning is the caller's to act on; S3 passes them on as KMS.<code>.
_KMS_CLIENT_FAULTS = frozenset({
    "DisabledException",
    "NotFoundException",
    "KMSInvalidStateException",
    "InvalidKeyUsageException",
    "InvalidGrantTokenException",
    "InvalidArnException",
    "ValidationException",
    "LimitExceededException",
    "UnsupportedOperationException",
})
# Throttling and unavailability are retryable by the client, as S3 signals them.
_KMS_RETRYABLE: Mapping[str, type[S3Error]] = {
    "ThrottlingException": SlowDown,
    "DependencyTimeoutException": ServiceUnavailable,
}


def error_for_kms(kms_code: str, message: str = "") -> S3Error:
    """What S3 returns when the KMS call behind a request fails with ``kms_code``.

    ``AccessDeniedException`` becomes ``AccessDenied`` (403) with the KMS message, which
    names the principal, action and key but nothing secret. The KMS client faults become
    ``KMS.<code>`` (400). Throttling becomes ``SlowDown`` and a KMS dependency timeout
    ``ServiceUnavailable`` (503, both retried by SDKs). Everything else is an
    ``InternalError`` with S3's generic message: the KMS's own internal errors, failures
    of the front's own credentials towards the KMS, and a stored data key that no longer
    decrypts (``InvalidCiphertextException``, ``IncorrectKeyException``) — none of which
    the client can fix, and whose details are not the client's to see.
    """
    if kms_code == "AccessDeniedException":
        return AccessDenied(message or None)
    if kms_code in _KMS_CLIENT_FAULTS:
        return KmsFailure(kms_code, message or None)
    retryable = _KMS_RETRYABLE.get(kms_code)
    if retryable is not None:
        return retryable()
    return InternalError()


def error_document(
    error: S3Error,
    *,
    request_id: str,
    host_id: str | None = None,
    resource: str | None = None,
) -> bytes:
    """The body S3 sends for ``error``: the XML error document, or ``b""`` for a 304."""
    if not error.has_body:
        return b""
    fields: list[Element | None] = [leaf("Code", error.code), leaf("Message", error.message)]
    fields.extend(Element(name, text=value) for name, value in error.details)
    fields.extend((leaf("Resource", resource), leaf("RequestId", request_id), leaf("HostId", host_id)))
    return render_document(node("Error", fields), namespace=None)
