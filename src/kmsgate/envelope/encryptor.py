"""Sans-I/O streaming encryptor: feed plaintext in pieces of any size, take message bytes out.

The output is an AWS Encryption SDK message, format version 2, framed (see header.py
and frames.py). The encryptor holds less than one frame of plaintext between calls;
each ``update`` returns the header (first call) and every frame completed by the
input so far, and ``finalize`` returns the final frame (holding the remainder,
possibly empty) and, for signing suites, the signature footer. A plaintext that is an
exact multiple of the frame length ends with an empty final frame, as the reference
writers do.

Frame length: 64 KiB by default. Each frame costs a fixed Python overhead of a few
microseconds besides AES-GCM; at 64 KiB that is a few percent of the AES-GCM time on
one core, while a frame is still small enough that a ranged read decrypts at most
64 KiB of unwanted plaintext at each end and a stream buffers only 64 KiB.
Output is written with ``AESGCM.encrypt_into`` straight into one buffer per call, so
plaintext is copied only when a frame straddles two ``update`` calls.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import signing
from .data_keys import EncryptionMaterials
from .derivation import derive_committed_keys
from .errors import EncryptionError
from .frames import (
    FINAL_FRAME_AAD,
    FINAL_FRAME_MARKER,
    FINAL_OVERHEAD,
    MAX_SEQUENCE_NUMBER,
    REGULAR_FRAME_AAD,
    REGULAR_OVERHEAD,
)
from .header import MessageHeader, header_auth_tag, serialize_header
from .suites import ENCRYPT_SUITES

FRAME_LENGTH = 64 * 1024
MAX_WRITE_FRAME_LENGTH = 2**31 - 1

_SEQ_IV = struct.Struct(">I8xI")  # sequence number, then the IV: 8 zero bytes || sequence number
_SEQ_LEN = struct.Struct(">IQ")
_FINAL_HEAD = struct.Struct(">II8xII")  # marker, sequence number, IV, content length


class Encryptor:
    """Encrypts one message. Not thread-safe; use one per message."""

    __slots__ = (
        "header", "_aead", "_frame_length", "_regular_aad", "_final_aad", "_pending_head",
        "_buf", "_seq", "_digest", "_signing_key", "_on_plaintext", "_done", "plaintext_length",
    )

    def __init__(
        self,
        materials: EncryptionMaterials,
        *,
        frame_length: int = FRAME_LENGTH,
        on_plaintext: Callable[[int], None] | None = None,
        message_id: bytes | None = None,
    ) -> None:
        """``on_plaintext(n)`` is told of every ``n`` plaintext bytes taken in (the data-key
        cache counts bytes through it). ``message_id`` is for known-answer tests only."""
        suite = materials.suite
        if suite.suite_id not in ENCRYPT_SUITES:
            raise EncryptionError("kmsgate encrypts with suites 0x0478 and 0x0578 only")
        if not 0 < frame_length <= MAX_WRITE_FRAME_LENGTH:
            raise EncryptionError("frame length must be between 1 and 2**31 - 1")
        if len(materials.data_key) != suite.data_key_length:
            raise EncryptionError("data key has the wrong length for the suite")
        if suite.signed != (materials.signing_key is not None):
            raise EncryptionError("signing key presence does not match the suite")
        if message_id is None:
            message_id = os.urandom(suite.message_id_length)
        derived, commitment = derive_committed_keys(suite, materials.data_key, message_id)
        self._aead = AESGCM(derived)
        header_bytes = serialize_header(suite, message_id, materials.header_fields, frame_length, commitment)
        tag = header_auth_tag(self._aead, suite, header_bytes)
        self.header = MessageHeader(
            suite=suite,
            message_id=message_id,
            encryption_context=materials.encryption_context,
            encrypted_data_keys=materials.encrypted_data_keys,
            frame_length=frame_length,
            commitment_key=commitment,
            header_bytes=header_bytes,
            auth_iv=bytes(suite.iv_length),
            auth_tag=tag,
        )
        self._frame_length = frame_length
        self._regular_aad = message_id + REGULAR_FRAME_AAD
        self._final_aad = message_id + FINAL_FRAME_AAD
        self._pending_head = header_bytes + tag
        self._buf = bytearray()
        self._seq = 1
        self._digest = signing.new_digest() if suite.signed else None
        self._signing_key = materials.signing_key
        self._on_plaintext = on_plaintext
        self._done = False
        self.plaintext_length = 0

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Take plaintext; return the message bytes completed so far (may be empty)."""
        return self._update(data, finish=False)

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytearray:
        """``update(data)`` and ``finalize()`` in one call, into one buffer: the rest of the message."""
        return self._update(data, finish=True)

    def _update(self, data: bytes | bytearray | memoryview, finish: bool) -> bytearray:
        if self._done:
            raise EncryptionError("encryptor already finalized")
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        size = len(view)
        self.plaintext_length += size
        if self._on_plaintext is not None and size:
            self._on_plaintext(size)
        flen = self._frame_length
        have = len(self._buf)
        frames = (have + size) // flen
        head = self._pending_head
        self._pending_head = b""
        if self._seq + frames - 1 > MAX_SEQUENCE_NUMBER:
            raise EncryptionError("message exceeds the maximum number of frames")
        body = len(head) + frames * (flen + REGULAR_OVERHEAD)
        tail = FINAL_OVERHEAD + (have + size) % flen if finish else 0
        out = bytearray(body + tail)
        out[: len(head)] = head
        mv_out = memoryview(out)
        pos = len(head)
        src = 0
        if have and frames:
            src = flen - have
            self._buf += view[:src]
            pos = self._frame(mv_out, pos, self._buf)
            self._buf = bytearray()
            frames -= 1
        for _ in range(frames):
            pos = self._frame(mv_out, pos, view[src : src + flen])
            src += flen
        if src < size:
            if finish and not self._buf:
                self._final(mv_out, pos, view[src:])
            else:
                self._buf += view[src:]
        if finish and (src == size or self._buf):
            self._final(mv_out, pos, self._buf)
        mv_out.release()
        view.release()
        if finish:
            self._done = True
            self._buf = bytearray()
            self._digest_update(out)
            self._sign_into(out)
        else:
            self._digest_update(out)
        return out

    def _final(self, out: memoryview, pos: int, plaintext: bytes | bytearray | memoryview) -> None:
        seq = self._seq
        length = len(plaintext)
        _FINAL_HEAD.pack_into(out, pos, FINAL_FRAME_MARKER, seq, seq, length)
        self._aead.encrypt_into(
            out[pos + 8 : pos + 20], plaintext, self._final_aad + _SEQ_LEN.pack(seq, length),
            out[pos + 24 : pos + 24 + length + 16],
        )

    def _sign_into(self, out: bytearray) -> None:
        if self._digest is not None and self._signing_key is not None:
            signature = signing.sign(self._signing_key, self._digest.finalize())
            out += struct.pack(">H", len(signature)) + signature

    def _frame(self, out: memoryview, pos: int, plaintext: bytes | bytearray | memoryview) -> int:
        seq = self._seq
        _SEQ_IV.pack_into(out, pos, seq, seq)
        end = pos + 16 + self._frame_length + 16
        self._aead.encrypt_into(
            out[pos + 4 : pos + 16], plaintext, self._regular_aad + _SEQ_LEN.pack(seq, self._frame_length),
            out[pos + 16 : end],
        )
        self._seq = seq + 1
        return end

    def finalize(self) -> bytearray:
        """Return the final frame (and the signature footer for signing suites)."""
        return self._update(b"", finish=True)

    def _digest_update(self, data: bytes | bytearray) -> None:
        if self._digest is not None:
            self._digest.update(data)
