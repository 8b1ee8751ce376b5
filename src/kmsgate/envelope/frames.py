"""Framed message body: frame layout, deterministic IVs and the frame AAD.

Regular frame (plaintext exactly F bytes, F = header frame length)::

    offset  size  field
    0       4     sequence number (1, 2, 3, ...)
    4       12    IV = 8 zero bytes || sequence number (4 bytes)
    16      F     AES-GCM ciphertext
    16+F    16    AES-GCM tag

Final frame (plaintext L bytes, 0 <= L <= F; always present, possibly empty)::

    0       4     0xFFFFFFFF (final-frame marker)
    4       4     sequence number
    8       12    IV, as above
    20      4     L (encrypted content length)
    24      L     AES-GCM ciphertext
    24+L    16    AES-GCM tag

AAD of every frame: message id || body AAD string || sequence number (4 bytes) ||
plaintext length (8 bytes), with the string ``AWSKMSEncryptionClient Frame`` or
``AWSKMSEncryptionClient Final Frame``. Binding the message id, position and
finality into the tag makes reordered, dropped, duplicated or spliced frames fail
authentication, and a truncated stream lacks its final frame.

Footer (signing suites only): 2-byte signature length S, then S bytes of DER
ECDSA P-384 signature over the SHA-384 digest of every message byte before it.
"""

from __future__ import annotations

import struct

REGULAR_FRAME_AAD = b"AWSKMSEncryptionClient Frame"
FINAL_FRAME_AAD = b"AWSKMSEncryptionClient Final Frame"
FINAL_FRAME_MARKER = 0xFFFFFFFF
MAX_SEQUENCE_NUMBER = 0xFFFFFFFE  # the marker value is never a sequence number

SEQ_BYTES = 4
IV_BYTES = 12
TAG_BYTES = 16
REGULAR_OVERHEAD = SEQ_BYTES + IV_BYTES + TAG_BYTES  # 32
FINAL_OVERHEAD = 4 + SEQ_BYTES + IV_BYTES + 4 + TAG_BYTES  # 40

_IV_PAD = bytes(IV_BYTES - 4)
_SEQ_LEN = struct.Struct(">IQ")


def frame_iv(sequence_number: int) -> bytes:
    """The deterministic IV of a frame."""
    return _IV_PAD + sequence_number.to_bytes(4, "big")


def frame_aad(message_id: bytes, final: bool, sequence_number: int, length: int) -> bytes:
    """The associated data of a frame."""
    label = FINAL_FRAME_AAD if final else REGULAR_FRAME_AAD
    return message_id + label + _SEQ_LEN.pack(sequence_number, length)


def regular_frame_size(frame_length: int) -> int:
    """Bytes a regular frame occupies in the message."""
    return frame_length + REGULAR_OVERHEAD


def final_frame_size(content_length: int) -> int:
    """Bytes the final frame occupies in the message."""
    return content_length + FINAL_OVERHEAD


def body_size(plaintext_length: int, frame_length: int) -> int:
    """Bytes of the framed body for a plaintext of this length (the writer's layout:
    full frames are regular; the final frame holds the remainder, possibly 0)."""
    regular, remainder = divmod(plaintext_length, frame_length)
    return regular * regular_frame_size(frame_length) + final_frame_size(remainder)
