"""Sans-I/O streaming encryptor: feed plaintext in pieces of any size, take message bytes out.

The output is an AWS Encryption SDK message, format version 2, framed (see header.py
and frames.py). The encryptor holds less than one frame of plaintext between calls;
each ``update`` returns the header (first call) and every frame completed by the
input so far, and ``finalize`` returns the final frame (holding the remainder,
possibly empty) and, for signing suites, the signature footer. A plaintext that is an
exact multiple of the frame length ends with an empty final frame, as the reference
writers do.

Frame length: 256 KiB by default. Each frame costs 1.5-2 us besides AES-GCM (one
``encrypt_into``/``decrypt_into`` call into pyca, its argument slices and the AAD), and
AES-GCM runs at about 10 GB/s on one core, so at 64 KiB frames that is over a tenth of
the work and a 1 MiB message reached only 0.76 (encrypt) / 0.73 (decrypt) of one raw
AES-GCM call over the same bytes; at 256 KiB it is 0.86 / 0.84, at 1 MiB 0.89 / 0.86
(``bench/envelope_throughput.py --frame-length``). 256 KiB keeps what a frame bounds
small: a ranged read decrypts at most 256 KiB of unwanted plaintext at each end (about
25 us), and a stream buffers at most one frame.

Copies: output is written with ``AESGCM.encrypt_into`` straight into one buffer per
call (``buffers.new_buffer``, sized exactly, not zero-filled), or into the caller's
buffer with ``update_into``; plaintext is read through memoryview slices and copied
only when a frame straddles two calls. The frame AAD lives in one buffer per message
whose last 12 bytes (sequence number, length) are rewritten per frame, made only when a
regular frame is written; a message shorter than one frame (``encrypt`` of it in one call)
goes straight to its final frame. The header is the per-(materials, frame length) template
of ``header.header_template`` with the message id and commitment key put in.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import signing
from .buffers import new_buffer
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
from .header import MessageHeader, header_template
from .suites import ENCRYPT_SUITES

FRAME_LENGTH = 256 * 1024
MAX_WRITE_FRAME_LENGTH = 2**31 - 1

_SEQ_IV = struct.Struct(">I8xI")  # sequence number, then the IV: 8 zero bytes || sequence number
_SEQ_LEN = struct.Struct(">IQ")  # the last 12 bytes of the frame AAD
_FINAL_HEAD = struct.Struct(">II8xII")  # marker, sequence number, IV, content length
_SIG_LEN = struct.Struct(">H")
_FOOTER_BYTES = 2 + signing.SIGNATURE_LENGTH
_ZERO_IV = bytes(12)
Buffer = bytes | bytearray | memoryview


class Encryptor:
    """Encrypts one message. Not thread-safe; use one per message."""

    __slots__ = (
        "_header", "_header_bytes", "_materials", "_message_id", "_commitment", "_header_tag", "_aead", "_frame_length",
        "_aad", "_pending_head", "_buf", "_seq", "_digest", "_signing_key", "_on_plaintext",
        "_done", "plaintext_length",
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
            message_id = os.urandom(32)  # suite.message_id_length of every suite kmsgate writes
        derived, commitment = derive_committed_keys(suite, materials.data_key, message_id)
        aead = self._aead = AESGCM(derived)
        prefix, middle = header_template(suite.suite_id, materials.header_fields, frame_length)
        header_bytes = prefix + message_id + middle + commitment  # the layout serialize_header writes
        tag = aead.encrypt(_ZERO_IV, b"", header_bytes)
        self._header: MessageHeader | None = None  # built on first use of .header
        self._header_bytes = header_bytes
        self._materials = materials
        self._message_id = message_id
        self._commitment = commitment
        self._header_tag = tag
        self._frame_length = frame_length
        self._aad: bytearray | None = None  # built when the first regular frame is written
        self._pending_head = header_bytes + tag
        self._buf = bytearray()
        self._seq = 1
        self._digest: hashes.Hash | None = None
        self._signing_key: ec.EllipticCurvePrivateKey | None = None
        if suite.signed:
            self._digest = signing.new_digest()
            self._signing_key = materials.signing_key
        self._on_plaintext = on_plaintext
        self._done = False
        self.plaintext_length = 0

    @property
    def header(self) -> MessageHeader:
        """The header this encryptor writes (first bytes of its first output)."""
        header = self._header
        if header is None:
            materials = self._materials
            header = self._header = MessageHeader(
                suite=materials.suite,
                message_id=self._message_id,
                encryption_context=materials.encryption_context,
                encrypted_data_keys=materials.encrypted_data_keys,
                frame_length=self._frame_length,
                commitment_key=self._commitment,
                header_bytes=self._header_bytes,
                auth_iv=_ZERO_IV,
                auth_tag=self._header_tag,
            )
        return header

    def output_length(self, data_length: int, *, final: bool = False) -> int:
        """Exactly how many bytes ``update`` (or, with ``final``, ``encrypt``) of
        ``data_length`` plaintext bytes returns now."""
        if data_length < 0:
            raise ValueError("data length must not be negative")
        flen = self._frame_length
        total = len(self._buf) + data_length
        size = len(self._pending_head) + (total // flen) * (flen + REGULAR_OVERHEAD)
        if final:
            size += FINAL_OVERHEAD + total % flen
            if self._digest is not None:
                size += _FOOTER_BYTES
        return size

    def update(self, data: Buffer) -> bytearray:
        """Take plaintext; return the message bytes completed so far (may be empty)."""
        return self._update(data, False)

    def encrypt(self, data: Buffer) -> bytearray:
        """``update(data)`` and ``finalize()`` in one call, into one buffer: the rest of the message."""
        length = len(data)
        if (self._digest is not None or self._seq != 1 or self._buf or self._done or length >= self._frame_length
                or not isinstance(data, bytes)):
            return self._update(data, True)
        # A whole message shorter than one frame, in one call: header, then the final frame.
        self.plaintext_length += length
        if self._on_plaintext is not None and length:
            self._on_plaintext(length)
        head = self._pending_head
        pos = len(head)
        out = new_buffer(pos + FINAL_OVERHEAD + length)
        out[:pos] = head
        self._pending_head = b""
        self._done = True
        with memoryview(out) as view:
            self._final(view, pos, data)
        return out

    def finalize(self) -> bytearray:
        """Return the final frame (and the signature footer for signing suites)."""
        return self._update(b"", True)

    def update_into(self, data: Buffer, buffer: bytearray | memoryview, *, final: bool = False) -> int:
        """Like ``update`` (or, with ``final``, ``encrypt``) but write into ``buffer``, which
        must hold at least ``output_length(len(data), final=final)`` bytes; return the
        count written. Lets a stream reuse one output buffer for every call."""
        out = memoryview(buffer).cast("B")
        if out.readonly:
            raise ValueError("buffer is read-only")
        view = memoryview(data).cast("B")
        size = self.output_length(len(view), final=final)
        if len(out) < size:
            raise ValueError(f"buffer too small: {size} bytes needed")
        return self._write(view, out, size, final)

    def _update(self, data: Buffer, final: bool) -> bytearray:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = self.output_length(len(view), final=final)
        out = new_buffer(size)
        with memoryview(out) as mv_out:
            self._write(view, mv_out, size, final)
        return out

    def _write(self, view: memoryview, out: memoryview, size: int, final: bool) -> int:
        """Encrypt ``view`` into ``out[:size]`` (``size`` from ``output_length``)."""
        if self._done:
            raise EncryptionError("encryptor already finalized")
        length = len(view)
        flen = self._frame_length
        buf = self._buf
        have = len(buf)
        frames = (have + length) // flen
        seq = self._seq
        if seq + frames - 1 > MAX_SEQUENCE_NUMBER:
            raise EncryptionError("message exceeds the maximum number of frames")
        self.plaintext_length += length
        if self._on_plaintext is not None and length:
            self._on_plaintext(length)
        head = self._pending_head
        pos = len(head)
        if pos:
            out[:pos] = head
            self._pending_head = b""
        encrypt_into = self._aead.encrypt_into
        aad = self._aad
        if aad is None:
            aad = self._aad = bytearray(self._message_id + REGULAR_FRAME_AAD + bytes(12))
        aad_at = len(aad) - 12
        pack_aad = _SEQ_LEN.pack_into
        pack_head = _SEQ_IV.pack_into
        src = 0
        if have and frames:
            src = flen - have
            buf += view[:src]
            pack_head(out, pos, seq, seq)
            pack_aad(aad, aad_at, seq, flen)
            end = pos + 16 + flen + 16
            encrypt_into(out[pos + 4 : pos + 16], buf, aad, out[pos + 16 : end])
            buf.clear()
            pos = end
            seq += 1
            frames -= 1
        for _ in range(frames):
            pack_head(out, pos, seq, seq)
            pack_aad(aad, aad_at, seq, flen)
            end = pos + 16 + flen + 16
            nxt = src + flen
            encrypt_into(out[pos + 4 : pos + 16], view[src:nxt], aad, out[pos + 16 : end])
            src = nxt
            pos = end
            seq += 1
        self._seq = seq
        if final:
            rest = view[src:] if not buf else (buf + view[src:])
            pos = self._final(out, pos, rest)
            self._done = True
            self._buf = bytearray()
        elif src < length:
            buf += view[src:]
        if self._digest is not None:
            self._digest.update(out[:pos])
            if final and self._signing_key is not None:
                signature = signing.sign(self._signing_key, self._digest.finalize())
                _SIG_LEN.pack_into(out, pos, len(signature))
                out[pos + 2 : pos + 2 + len(signature)] = signature
                pos += 2 + len(signature)
        if pos != size:  # pragma: no cover - output_length and the writer disagree
            raise EncryptionError("internal error: output length mismatch")
        return pos

    def _final(self, out: memoryview, pos: int, plaintext: Buffer) -> int:
        seq = self._seq
        length = len(plaintext)
        _FINAL_HEAD.pack_into(out, pos, FINAL_FRAME_MARKER, seq, seq, length)
        aad = self._message_id + FINAL_FRAME_AAD + _SEQ_LEN.pack(seq, length)
        end = pos + FINAL_OVERHEAD + length
        self._aead.encrypt_into(out[pos + 8 : pos + 20], plaintext, aad, out[pos + 24 : end])
        self._seq = seq + 1
        return end
