"""The KMS exception tree: each class carries its AWS error code and HTTP status.

The protocol edge renders any ``KmsError`` as ``{"__type": code, "message": message}``
with ``status``; nothing else in the code base formats an AWS error.
Messages never contain key material, plaintext or credentials.
"""

from __future__ import annotations


class KmsError(Exception):
    """Base of every error the KMS API reports to a caller."""

    code: str = "KMSInternalException"
    status: int = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class ClientError(KmsError):
    """A fault of the caller: always HTTP 400, as AWS JSON services answer."""

    status = 400


class NotFoundError(ClientError):
    code = "NotFoundException"


class DisabledError(ClientError):
    code = "DisabledException"


class KmsInvalidStateError(ClientError):
    code = "KMSInvalidStateException"


class InvalidCiphertextError(ClientError):
    code = "InvalidCiphertextException"


class IncorrectKeyError(ClientError):
    code = "IncorrectKeyException"


class InvalidKeyUsageError(ClientError):
    code = "InvalidKeyUsageException"


class KmsInvalidSignatureError(ClientError):
    """Verify: the signature is not valid for the message under the key."""

    code = "KMSInvalidSignatureException"


class KmsInvalidMacError(ClientError):
    """VerifyMac: the MAC is not valid for the message under the key."""

    code = "KMSInvalidMacException"


class ValidationError(ClientError):
    code = "ValidationException"


class AlreadyExistsError(ClientError):
    code = "AlreadyExistsException"


class InvalidAliasNameError(ClientError):
    code = "InvalidAliasNameException"


class InvalidArnError(ClientError):
    code = "InvalidArnException"


class InvalidMarkerError(ClientError):
    code = "InvalidMarkerException"


class InvalidImportTokenError(ClientError):
    code = "InvalidImportTokenException"


class IncorrectKeyMaterialError(ClientError):
    code = "IncorrectKeyMaterialException"


class ExpiredImportTokenError(ClientError):
    code = "ExpiredImportTokenException"


class UnsupportedOperationError(ClientError):
    code = "UnsupportedOperationException"


class LimitExceededError(ClientError):
    code = "LimitExceededException"


class TagError(ClientError):
    code = "TagException"


class MalformedPolicyDocumentError(ClientError):
    code = "MalformedPolicyDocumentException"


class AccessDeniedError(ClientError):
    code = "AccessDeniedException"


class InvalidGrantTokenError(ClientError):
    code = "InvalidGrantTokenException"


class InvalidGrantIdError(ClientError):
    code = "InvalidGrantIdException"


class UnrecognizedClientError(ClientError):
    code = "UnrecognizedClientException"


class InvalidSignatureError(ClientError):
    code = "InvalidSignatureException"


class MissingAuthenticationTokenError(ClientError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureError(ClientError):
    code = "IncompleteSignatureException"


class InvalidUriError(ClientError):
    """A request target that cannot be routed unambiguously (a fragment, a bad percent-escape)."""

    code = "InvalidURI"


class SerializationError(ClientError):
    code = "SerializationException"


class UnknownOperationError(ClientError):
    code = "UnknownOperationException"


class DryRunOperationError(ClientError):
    code = "DryRunOperationException"


class RequestTimeoutError(ClientError):
    """The client stopped sending its request body (see ``kmsgate.web.connections``)."""

    code = "RequestTimeoutException"
    status = 408


class UnsupportedMediaTypeError(ClientError):
    """A compressed request body: kmsgate reads bodies as sent and never inflates them."""

    code = "UnsupportedMediaTypeException"
    status = 415


class ThrottlingError(KmsError):
    """A request shed because the worker already serves ``--max-in-flight`` requests: 400, as AWS
    answers it, and retried by AWS SDKs (not a fault of the request itself, hence no ``ClientError``)."""

    code = "ThrottlingException"
    status = 400


class KmsInternalError(KmsError):
    code = "KMSInternalException"
    status = 500


class DependencyTimeoutError(KmsError):
    code = "DependencyTimeoutException"
    status = 503
