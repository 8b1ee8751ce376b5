"""Ranged reads: which stored bytes hold a plaintext byte range, and decrypting only those.

With frame length F and header length H (header plus authentication), a message
written by kmsgate (or any writer of this format) stores regular frame i (0-based)
at ``H + i * (F + 32)`` holding plaintext ``[i*F, (i+1)*F)``, and the final frame after
the ``n`` regular frames, holding the last ``L`` bytes (0 <= L <= F). Given the total
message length, ``n`` and ``L`` follow uniquely, because regular frames are 32 bytes
longer than their plaintext and the final frame 40. ``frame_span`` maps an inclusive
plaintext range (as in an HTTP ``Range`` header) to the span of whole frames to
fetch; ``RangeDecryptor`` decrypts that span and trims it to the range. Every frame
decrypted still has its tag, sequence number and IV checked, so a spliced span fails.

The length of a damaged message implies a layout too: truncated at a frame boundary,
its last complete frame is a regular one where the layout puts the final frame (with
the final frame's sequence number, since the final frame follows the last regular one).
So neither the plaintext length nor any range of a stored message is vouched for
until its final frame authenticated where the length puts it: ``final_frame_span``
is that frame, which a ``RangeDecryptor`` accepts only as a final frame with the
sequence number and length the layout gives. ``plan_range`` then serves a range
from the regular frames it needs plus the final frame's plaintext, already verified.

Only unsigned suites are supported: the footer signature covers the whole message,
so a ranged read could not check it, and its length is not fixed by the format.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decryptor import Decryptor
from .errors import MalformedFrameError, TrailingDataError, TruncatedMessageError
from .frames import FINAL_OVERHEAD, REGULAR_OVERHEAD
from .header import DecryptPolicy, MessageHeader


class RangeNotSatisfiableError(ValueError):
    """The requested range lies outside the plaintext (HTTP 416 at the edge)."""


class RangeUnsupportedError(ValueError):
    """Ranged reads of signed messages are not supported; read the whole message."""


@dataclass(frozen=True, slots=True)
class FrameSpan:
    """The stored bytes ``[start, end)`` to fetch for plaintext bytes ``first..first+length-1``."""

    start: int
    end: int
    first_sequence: int
    skip: int  # plaintext bytes to drop from the start of the decrypted span
    length: int  # plaintext bytes of the range
    first: int  # first plaintext byte of the range
    plaintext_length: int  # of the whole message
    final_sequence: int | None = None  # of the final frame, when the span ends with it


def _layout(header: MessageHeader, message_length: int) -> tuple[int, int]:
    """(regular frame count, final frame plaintext length) of a stored message."""
    if header.suite.signed:
        raise RangeUnsupportedError("ranged reads of signed messages are not supported")
    body = message_length - header.length
    if body < FINAL_OVERHEAD:
        raise MalformedFrameError("message too short for its header")
    regular, final_length = divmod(body - FINAL_OVERHEAD, header.frame_length + REGULAR_OVERHEAD)
    if final_length > header.frame_length:
        raise MalformedFrameError("message length does not match its frame layout")
    return regular, final_length


def plaintext_length(header: MessageHeader, message_length: int) -> int:
    """Plaintext bytes of a stored message of ``message_length`` bytes, as that length
    implies: vouched for only once ``final_frame_span`` decrypted."""
    regular, final_length = _layout(header, message_length)
    return regular * header.frame_length + final_length


def frame_span(header: MessageHeader, message_length: int, first: int, last: int | None = None) -> FrameSpan:
    """The frames holding plaintext bytes ``first..last`` (inclusive; ``None`` = to the end).
    ``last`` beyond the end is clamped, as HTTP ranges are."""
    regular, final_length = _layout(header, message_length)
    flen = header.frame_length
    total = regular * flen + final_length
    if first < 0 or first >= total or (last is not None and last < first):
        raise RangeNotSatisfiableError("range outside the plaintext")
    last = total - 1 if last is None else min(last, total - 1)
    first_index, last_index = first // flen, last // flen
    frame_size = flen + REGULAR_OVERHEAD
    start = header.length + first_index * frame_size
    if last_index < regular:
        end = header.length + (last_index + 1) * frame_size
        final_sequence = None
    else:
        end = header.length + regular * frame_size + FINAL_OVERHEAD + final_length
        final_sequence = regular + 1
    return FrameSpan(start, end, first_index + 1, first - first_index * flen, last - first + 1, first, total,
                     final_sequence)


def final_frame_span(header: MessageHeader, message_length: int) -> FrameSpan:
    """The final frame of a stored message (all of its plaintext, possibly none), where
    ``message_length`` puts it: read and decrypt it to vouch for that length."""
    regular, final_length = _layout(header, message_length)
    start = header.length + regular * (header.frame_length + REGULAR_OVERHEAD)
    first = regular * header.frame_length
    return FrameSpan(start, message_length, regular + 1, 0, final_length, first, first + final_length, regular + 1)


@dataclass(frozen=True, slots=True)
class RangePlan:
    """How to serve one plaintext range once the final frame verified: decrypt ``frames``
    (``None`` when the range lies in the final frame), then append the final frame's
    plaintext ``[tail_start, tail_end)``."""

    frames: FrameSpan | None
    tail_start: int
    tail_end: int


def plan_range(final: FrameSpan, header: MessageHeader, message_length: int, first: int, last: int) -> RangePlan:
    """The regular frames and the part of the final frame (``final``, from
    ``final_frame_span``) that hold plaintext bytes ``first..last`` (inclusive, within the
    plaintext: as ``frame_span`` clamps them)."""
    end = min(last, final.plaintext_length - 1) + 1
    frames = None
    if first < final.first:
        frames = frame_span(header, message_length, first, min(end, final.first) - 1)
    return RangePlan(frames, max(first - final.first, 0), max(end - final.first, 0))


class RangeDecryptor:
    """Decrypts the bytes of one ``FrameSpan`` (fed in pieces of any size) and releases
    exactly the plaintext of the range."""

    def __init__(self, header: MessageHeader, data_key: bytes, span: FrameSpan,
                 policy: DecryptPolicy | None = None) -> None:
        self.span = span
        self._decryptor = Decryptor.for_frames(header, data_key, span.first_sequence, policy,
                                               final_sequence=span.final_sequence)
        self._remaining_in = span.end - span.start
        self._skip = span.skip
        self._remaining_out = span.length

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if len(data) > self._remaining_in:
            raise TrailingDataError("more bytes than the frame span")
        self._remaining_in -= len(data)
        return self._trim(self._decryptor.update(data))

    def finalize(self) -> bytes:
        if self._remaining_in:
            raise TruncatedMessageError("frame span ended early")
        out = self._trim(self._decryptor.update(b""))
        if self._remaining_out:
            raise TruncatedMessageError("frame span ended early")
        if self.span.final_sequence is not None and not self._decryptor.done:
            raise TruncatedMessageError("frame span ended before its final frame")
        return out

    def _trim(self, plaintext: bytearray) -> bytes:
        view = memoryview(plaintext)
        if self._skip:
            dropped = min(self._skip, len(view))
            view = view[dropped:]
            self._skip -= dropped
        view = view[: self._remaining_out]
        self._remaining_out -= len(view)
        return bytes(view)
