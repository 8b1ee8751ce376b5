"""Sans-I/O streaming decryptor: feed message bytes in pieces of any size, take verified plaintext out.

Protocol::

    d = Decryptor(policy)
    out = d.update(chunk)          # b"" until the header is parsed and a data key is set
    if d.needs_data_key:           # d.header is parsed: unwrap one of d.header.encrypted_data_keys
        d.set_data_key(data_key)   # checks key commitment and header authentication
    out = d.update(next_chunk)     # plaintext of every frame whose tag verified
    out = d.finalize()             # raises TruncatedMessageError unless the message ended

Guarantees: plaintext is released only from frames whose AES-GCM tag verified,
after the header's commitment key and authentication tag verified. Frames must arrive
in sequence with the IV the sequence number defines; the final frame's length is at
most the frame length; anything after the final frame (and footer) raises
``TrailingDataError``. For signing suites the footer signature is checked when it
arrives: frame plaintext, already authenticated by GCM under the data key, is released
as frames verify (as the reference streaming readers do); a caller who must know the
sender's signature verified before using any byte keeps the output until ``finalize``.
Until the data key is set the decryptor buffers what it is given, so feed it the
header (about ``policy.max_header_bytes`` at most) before the body.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import signing
from .context import PUBLIC_KEY_FIELD
from .derivation import check_commitment, derive_data_key
from .errors import (
    DecryptionError,
    FrameAuthenticationError,
    MalformedFrameError,
    SignatureError,
    TrailingDataError,
    TruncatedMessageError,
)
from .frames import (
    FINAL_FRAME_AAD,
    FINAL_FRAME_MARKER,
    FINAL_OVERHEAD,
    MAX_SEQUENCE_NUMBER,
    REGULAR_FRAME_AAD,
    REGULAR_OVERHEAD,
    TAG_BYTES,
)
from .header import DecryptPolicy, MessageHeader, parse_header, verify_header_auth

_SEQ_LEN = struct.Struct(">IQ")
_U32 = struct.Struct(">I")
_IV_PAD = bytes(8)

_HEADER, _NEED_KEY, _BODY, _FOOTER, _DONE, _FAILED = range(6)


class Decryptor:
    """Decrypts one message. Not thread-safe; use one per message. After any
    ``DecryptionError`` the object is dead: every later call raises again."""

    __slots__ = (
        "policy", "header", "_state", "_buf", "_need", "_aead", "_seq", "_regular_aad", "_final_aad",
        "_frame_length", "_digest", "_public_key", "plaintext_length", "_held",
    )

    def __init__(self, policy: DecryptPolicy | None = None) -> None:
        self.policy = policy or DecryptPolicy()
        self.header: MessageHeader | None = None
        self._state = _HEADER
        self._buf = bytearray()
        self._need = 1
        self._aead: AESGCM | None = None
        self._seq = 1
        self._regular_aad = b""
        self._final_aad = b""
        self._frame_length = 0
        self._digest = None
        self._public_key = None
        self.plaintext_length = 0
        self._held: memoryview | None = None  # body bytes of an immutable input, kept without copying

    @classmethod
    def for_frames(cls, header: MessageHeader, data_key: bytes, first_sequence: int,
                   policy: DecryptPolicy | None = None) -> Decryptor:
        """A decryptor for a run of frames starting at ``first_sequence`` of a message whose
        header was parsed separately (ranged reads). Verifies commitment and header
        authentication now; the footer signature of signing suites is not checked."""
        if not 1 <= first_sequence <= MAX_SEQUENCE_NUMBER:
            raise MalformedFrameError("sequence number out of range")
        decryptor = cls(policy)
        decryptor.header = header
        decryptor._state = _NEED_KEY
        decryptor.set_data_key(data_key)
        decryptor._digest = None
        decryptor._seq = first_sequence
        return decryptor

    @property
    def needs_data_key(self) -> bool:
        """True once the header is parsed and until ``set_data_key`` succeeds."""
        return self._state == _NEED_KEY

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def set_data_key(self, data_key: bytes) -> None:
        """Supply the unwrapped data key; verifies commitment and header authentication."""
        if self._state != _NEED_KEY or self.header is None:
            raise DecryptionError("no data key is expected now")
        header = self.header
        suite = header.suite
        try:
            if len(data_key) != suite.data_key_length:
                raise DecryptionError("data key has the wrong length")
            check_commitment(suite, data_key, header.message_id, header.commitment_key)
            aead = AESGCM(derive_data_key(suite, data_key, header.message_id))
            verify_header_auth(aead, header)
            if suite.signed:
                field = header.encryption_context.get(PUBLIC_KEY_FIELD)
                if field is None:
                    raise SignatureError("signing suite without a public key in the context")
                self._public_key = signing.load_public_key(field)
                self._digest = signing.new_digest()
                self._digest.update(header.header_bytes)
                if header.version == 1:
                    self._digest.update(header.auth_iv)
                self._digest.update(header.auth_tag)
        except DecryptionError:
            self._state = _FAILED
            raise
        self._aead = aead
        self._frame_length = header.frame_length
        self._regular_aad = header.message_id + REGULAR_FRAME_AAD
        self._final_aad = header.message_id + FINAL_FRAME_AAD
        self._state = _BODY

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Take message bytes; return the plaintext of every frame verified so far."""
        try:
            return self._update(data)
        except DecryptionError:
            self._state = _FAILED
            self._buf = bytearray()
            raise

    def finalize(self) -> bytearray:
        """Process what is buffered and check that the whole message arrived."""
        out = self.update(b"")
        if self._state != _DONE:
            self._state = _FAILED
            raise TruncatedMessageError("message ended before its final frame")
        return out

    def _update(self, data: bytes | bytearray | memoryview) -> bytearray:
        state = self._state
        if state == _FAILED:
            raise DecryptionError("decryptor failed earlier")
        if state == _DONE:
            if len(data):
                raise TrailingDataError("bytes after the end of the message")
            return bytearray()
        if state == _HEADER and not self._buf and isinstance(data, bytes):
            header, count = parse_header(data, self.policy)
            if header is not None:
                self.header = header
                self._state = _NEED_KEY
                self._held = memoryview(data)[count:]
                return bytearray()
        if self._held is not None and len(data):
            self._buf = bytearray(self._held)
            self._held = None
        if state in (_HEADER, _NEED_KEY):
            self._buf += data
            if state == _HEADER and len(self._buf) >= self._need:
                header, count = parse_header(self._buf, self.policy)
                if header is None:
                    self._need = count
                else:
                    self.header = header
                    self._state = _NEED_KEY
                    del self._buf[:count]
            return bytearray()
        if self._held is not None:
            view, self._held = self._held, None
        elif self._buf:
            self._buf += data
            view = memoryview(self._buf)
        else:
            view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        out, used = self._body(view)
        rest = bytes(view[used:]) if used < len(view) else b""
        view.release()
        self._buf = bytearray(rest)
        if self._state == _DONE and self._buf:
            raise TrailingDataError("bytes after the end of the message")
        return out

    def _body(self, view: memoryview) -> tuple[bytearray, int]:
        """Decrypt every complete frame in ``view``; return (plaintext, bytes consumed)."""
        flen = self._frame_length
        regular_size = flen + REGULAR_OVERHEAD
        # Pass 1: locate complete frames (positions only) so the output is sized once.
        frames: list[tuple[int, int, bool]] = []  # (offset, plaintext length, final)
        pos = 0
        size = len(view)
        total = 0
        state = self._state
        seq = self._seq
        while state == _BODY and pos + 4 <= size:
            (marker,) = _U32.unpack_from(view, pos)
            if marker == FINAL_FRAME_MARKER:
                if pos + 24 > size:
                    break
                (length,) = _U32.unpack_from(view, pos + 20)
                if length > flen:
                    raise MalformedFrameError("final frame longer than the frame length")
                if pos + FINAL_OVERHEAD + length > size:
                    break
                frames.append((pos, length, True))
                pos += FINAL_OVERHEAD + length
                total += length
                state = _FOOTER if self._digest is not None else _DONE
            else:
                if marker != seq:
                    raise MalformedFrameError("frame out of sequence")
                if pos + regular_size > size:
                    break
                if seq >= MAX_SEQUENCE_NUMBER:
                    raise MalformedFrameError("too many frames")
                frames.append((pos, flen, False))
                pos += regular_size
                total += flen
                seq += 1
        out = bytearray(total)
        mv_out = memoryview(out)
        aead = self._aead
        if aead is None:  # pragma: no cover - state machine guarantees a key in _BODY
            raise DecryptionError("no data key")
        opos = 0
        for offset, length, final in frames:
            seq = self._seq
            if final:
                if _U32.unpack_from(view, offset + 4)[0] != seq:
                    raise MalformedFrameError("final frame out of sequence")
                iv_at, ct_at, aad = offset + 8, offset + 24, self._final_aad
            else:
                iv_at, ct_at, aad = offset + 4, offset + 16, self._regular_aad
            iv = view[iv_at : iv_at + 12]
            if iv[:8] != _IV_PAD or _U32.unpack_from(iv, 8)[0] != seq:
                raise MalformedFrameError("frame IV does not match its sequence number")
            try:
                aead.decrypt_into(
                    iv, view[ct_at : ct_at + length + TAG_BYTES], aad + _SEQ_LEN.pack(seq, length),
                    mv_out[opos : opos + length],
                )
            except InvalidTag as exc:
                mv_out[: opos + length] = bytes(opos + length)  # never keep unverified bytes
                raise FrameAuthenticationError("frame authentication failed") from exc
            opos += length
            self._seq = seq + 1
        if self._digest is not None:
            self._digest.update(view[:pos])
        self._state = state
        if state == _FOOTER:
            used = self._footer(view, pos)
            if used:
                pos = used
        self.plaintext_length += total
        return out, pos

    def _footer(self, view: memoryview, pos: int) -> int:
        """Verify the signature footer at ``pos`` if complete; return the end offset, else 0."""
        if pos + 2 > len(view):
            return 0
        (length,) = struct.unpack_from(">H", view, pos)
        if length == 0 or length > signing.MAX_SIGNATURE_BYTES:
            raise SignatureError("signature length out of range")
        if pos + 2 + length > len(view):
            return 0
        if self._digest is None or self._public_key is None:  # pragma: no cover
            raise SignatureError("no verification key")
        signing.verify(self._public_key, self._digest.finalize(), bytes(view[pos + 2 : pos + 2 + length]))
        self._digest = None
        self._state = _DONE
        return pos + 2 + length
