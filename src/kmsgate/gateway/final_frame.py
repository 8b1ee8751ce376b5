"""Vouching for a stored object's size: its final frame, authenticated where the stored length puts it.

The plaintext length of an unsigned stored message follows from its stored length
(``kmsgate.envelope.ranges``), and so does a length for a damaged one: cut at a frame
boundary, a message is as regular as an intact one, with its last regular frame where
the final frame should be. So before the gateway states a size (HEAD, the Content-Length
of a streamed GET) or serves any range, it decrypts the final frame where the stored
length puts it: that frame must be a final frame, with the sequence number and length the
layout gives, whose tag verifies under the data key and the message's AAD. Only the
original final frame passes, and only when the object ends right after it.

Cost: nothing to read when the final frame came with the header (the object was read
whole); otherwise one ranged read of at most one frame (256 KiB + 40 bytes). Either way
one frame is decrypted.

Signed messages (suite 0x0578) are not handled here: their footer's length is not fixed
by the format, so their size cannot be vouched for short of verifying the signature over
the whole message (see ``kmsgate.gateway.objects``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmsgate.envelope.header import MessageHeader
from kmsgate.envelope.ranges import FrameSpan, RangeDecryptor, final_frame_span
from kmsgate.gateway.errors import RETRY_AFTER_SECONDS, GatewayError
from kmsgate.gateway.storage.base import ObjectReader, StoredObject

if TYPE_CHECKING:
    from kmsgate.gateway.service import Gateway


@dataclass(frozen=True, slots=True)
class FinalFrame:
    """The final frame of a stored object, verified: where it is, and its plaintext."""

    span: FrameSpan
    plaintext: bytes


async def open_same_object(gateway: Gateway, key: str, info: StoredObject, start: int, end: int) -> ObjectReader:
    """Open ``[start, end)`` of the object version ``info`` describes; 503 ``SlowDown`` when
    the key now holds another version (its frames would not fit what was read before)."""
    reader = await gateway.storage.open_read(info.bucket, key, start, end)
    if reader.info.etag != info.etag or reader.info.size != info.size:
        await reader.aclose()
        raise GatewayError(503, "SlowDown", "The object changed during the read; retry.",
                           retry_after=RETRY_AFTER_SECONDS)
    return reader


async def verified_final_frame(gateway: Gateway, key: str, info: StoredObject, header: MessageHeader,
                               data_key: bytes, buffered: bytes | bytearray) -> FinalFrame:
    """The final frame of the stored object ``info``, once it authenticated where the object's
    length puts it. ``buffered`` holds the object's first bytes, already read: the frame is
    taken from there when they include it.

    Raises ``DecryptionError`` when the object is not an intact message of its length
    (``RangeUnsupportedError``, a ``ValueError``, for a signed message)."""
    span = final_frame_span(header, info.size)
    decryptor = RangeDecryptor(header, data_key, span, gateway.settings.decrypt_policy)
    if len(buffered) >= span.end:
        stored = bytes(buffered[span.start : span.end])
    else:
        reader = await open_same_object(gateway, key, info, span.start, span.end)
        try:
            stored = b"".join([chunk async for chunk in reader])
        finally:
            await reader.aclose()
    plaintext = await gateway.pool.run(decryptor.update, stored)
    return FinalFrame(span, plaintext + decryptor.finalize())
