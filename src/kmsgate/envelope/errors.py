"""The envelope exception tree: one decryption error with documented subclasses.

Every way a message can fail to decrypt raises a subclass of ``DecryptionError``.
Callers catch that one type; an HTTP edge reports it with ``PUBLIC_MESSAGE`` and
nothing else, so a client learns only that decryption failed, never which check
failed (no padding-oracle-style side channel). The subclasses exist for logs and
tests. No message in this module ever contains key material or plaintext.
"""

from __future__ import annotations


class EnvelopeError(Exception):
    """Base of every error raised by the envelope core."""


class EncryptionError(EnvelopeError):
    """A request to encrypt could not be honoured (bad context, bad settings)."""


class DecryptionError(EnvelopeError):
    """A message could not be decrypted. The edge reports only ``PUBLIC_MESSAGE``."""

    PUBLIC_MESSAGE = "The message could not be decrypted."


class MalformedHeaderError(DecryptionError):
    """The header does not follow the message format (bad version, type, lengths)."""


class HeaderLimitError(MalformedHeaderError):
    """An attacker-controlled header size or count exceeds its configured cap
    (header bytes, encrypted data keys, encryption context bytes, frame length)."""


class UnsupportedSuiteError(DecryptionError):
    """The algorithm suite id is unknown to kmsgate."""


class ForbiddenSuiteError(DecryptionError):
    """The suite is known but the decrypt policy forbids it (non-committing suites)."""


class DataKeyUnavailableError(DecryptionError):
    """No encrypted data key in the header could be decrypted by the key provider."""


class CommitmentMismatchError(DecryptionError):
    """The header's commitment key does not match the one derived from the data key."""


class HeaderAuthenticationError(DecryptionError):
    """The header authentication tag did not verify."""


class FrameAuthenticationError(DecryptionError):
    """A frame's AES-GCM tag did not verify (wrong key, tampered bytes or AAD)."""


class MalformedFrameError(DecryptionError):
    """A frame is out of sequence, has the wrong IV or an impossible length."""


class SignatureError(DecryptionError):
    """The ECDSA footer is missing, malformed or does not verify."""


class TrailingDataError(DecryptionError):
    """Bytes follow the end of the message."""


class TruncatedMessageError(DecryptionError):
    """The input ended before the final frame (and footer) arrived."""
