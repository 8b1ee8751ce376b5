"""Ranged reads of stored messages: plaintext length, frame spans, and a frame-range decryptor.

Pure and synchronous. Applies to framed messages of unsigned suites (what the gateway
writes); for signed suites the footer's length is not implied by the header, so
``plaintext_length`` returns ``None`` and callers fall back to a full streaming decrypt.

Layout (see ``kmsgate.envelope.frames``), with H = header length, F = frame length,
n = plaintext length // F regular frames and a final frame of L = plaintext length % F::

    offset of frame i (0-based)  = H + i * (F + 32)          for i < n
    offset of the final frame    = H + n * (F + 32)
    message length               = H + n * (F + 32) + L + 40

so ``n`` and ``L`` follow from the stored length by division, and a length with
``L > F`` or a body shorter than one final frame is malformed.

``RangeDecryptor`` decrypts the contiguous frames ``first..last`` of such a message and
returns only the plaintext bytes of ``[start, end)``. Before any output it verifies the
data key against the header's key commitment and the header authentication tag, exactly
as the full decryptor does; every frame must carry the sequence number and IV its
position defines and its AES-GCM tag must verify with the AAD that binds message id,
sequence number, finality and length. So a range is released only from authenticated
frames of this message at this position. Every failure is a ``DecryptionError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope.derivation import check_commitment, derive_data_key
from kmsgate.envelope.errors import DecryptionError, FrameAuthenticationError, MalformedFrameError
from kmsgate.envelope.frames import (
    FINAL_FRAME_MARKER,
    FINAL_OVERHEAD,
    IV_BYTES,
    REGULAR_OVERHEAD,
    SEQ_BYTES,
    TAG_BYTES,
    frame_aad,
    frame_iv,
)
from kmsgate.envelope.header import MessageHeader, verify_header_auth

_U32 = struct.Struct(">I")


def plaintext_length(header: MessageHeader, message_length: int) -> int | None:
    """Plaintext bytes in a stored message of ``message_length`` bytes; ``None`` for signed suites."""
    if header.suite.signed:
        return None
    flen = header.frame_length
    body = message_length - header.length
    if body < FINAL_OVERHEAD or flen <= 0:
        raise MalformedFrameError("stored message is shorter than its framing")
    regular, remainder = divmod(body - FINAL_OVERHEAD, flen + REGULAR_OVERHEAD)
    if remainder > flen:
        raise MalformedFrameError("stored message length does not match its framing")
    return regular * flen + remainder


@dataclass(frozen=True, slots=True)
class FrameSpan:
    """The stored bytes ``[offset, end)`` holding frames ``first..last`` (0-based)."""

    first: int
    last: int
    offset: int
    end: int


def frame_span(header: MessageHeader, total_plaintext: int, start: int, end: int) -> FrameSpan:
    """The frames that hold plaintext ``[start, end)`` (``0 <= start < end <= total``)."""
    if not 0 <= start < end <= total_plaintext:
        raise ValueError("range outside the plaintext")
    flen = header.frame_length
    regular = total_plaintext // flen
    first, last = start // flen, (end - 1) // flen
    step = flen + REGULAR_OVERHEAD
    offset = header.length + first * step
    if last < regular:
        stop = header.length + (last + 1) * step
    else:
        stop = header.length + regular * step + (total_plaintext - regular * flen) + FINAL_OVERHEAD
    return FrameSpan(first, last, offset, stop)


class RangeDecryptor:
    """Sans-I/O: feed the stored bytes of ``span``; take the plaintext of ``[start, end)``."""

    def __init__(self, header: MessageHeader, data_key: bytes, total_plaintext: int,
                 start: int, end: int) -> None:
        suite = header.suite
        if suite.signed:
            raise DecryptionError("ranged reads need an unsigned suite")
        if len(data_key) != suite.data_key_length:
            raise DecryptionError("data key has the wrong length")
        check_commitment(suite, data_key, header.message_id, header.commitment_key)
        self._aead = AESGCM(derive_data_key(suite, data_key, header.message_id))
        verify_header_auth(self._aead, header)
        self.span = frame_span(header, total_plaintext, start, end)
        self._header = header
        self._flen = header.frame_length
        self._regular = total_plaintext // self._flen
        self._final_len = total_plaintext - self._regular * self._flen
        self._index = self.span.first
        self._skip = start - self.span.first * self._flen
        self._left = end - start
        self._buf = bytearray()
        self._failed = False

    @property
    def done(self) -> bool:
        return self._left == 0

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        if self._failed:
            raise DecryptionError("range decryption already failed")
        try:
            return self._update(data)
        except DecryptionError:
            self._failed = True
            self._buf = bytearray()
            raise

    def finalize(self) -> None:
        """Raise unless every byte of the range was produced."""
        if self._left:
            self._failed = True
            raise MalformedFrameError("stored message ended inside the requested range")

    def _frame_size(self, index: int) -> int:
        if index < self._regular:
            return self._flen + REGULAR_OVERHEAD
        return self._final_len + FINAL_OVERHEAD

    def _update(self, data: bytes | bytearray | memoryview) -> bytearray:
        self._buf += data
        out = bytearray()
        while self._left and self._index <= self.span.last:
            size = self._frame_size(self._index)
            if len(self._buf) < size:
                break
            frame = memoryview(self._buf)[:size]
            plain = self._open(frame, self._index)
            frame.release()
            del self._buf[:size]
            self._index += 1
            piece = plain[self._skip : self._skip + self._left]
            self._skip = max(0, self._skip - len(plain))
            self._left -= len(piece)
            out += piece
        if self._left == 0 and self._buf:
            raise MalformedFrameError("bytes after the requested frames")
        return out

    def _open(self, frame: memoryview, index: int) -> bytes:
        seq = index + 1
        final = index >= self._regular
        pos = 0
        if final:
            if _U32.unpack_from(frame, 0)[0] != FINAL_FRAME_MARKER:
                raise MalformedFrameError("final frame marker missing")
            pos = 4
        if _U32.unpack_from(frame, pos)[0] != seq:
            raise MalformedFrameError("frame out of sequence")
        pos += SEQ_BYTES
        iv = bytes(frame[pos : pos + IV_BYTES])
        if iv != frame_iv(seq):
            raise MalformedFrameError("frame IV does not match its sequence number")
        pos += IV_BYTES
        length = self._flen
        if final:
            length = _U32.unpack_from(frame, pos)[0]
            if length != self._final_len:
                raise MalformedFrameError("final frame length does not match the message length")
            pos += 4
        body = frame[pos : pos + length + TAG_BYTES]
        try:
            return self._aead.decrypt(iv, bytes(body), frame_aad(self._header.message_id, final, seq, length))
        except InvalidTag as exc:
            raise FrameAuthenticationError("frame authentication failed") from exc
