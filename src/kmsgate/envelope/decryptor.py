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

Copies: frames are decrypted with ``AESGCM.decrypt_into`` from memoryview slices of
the input straight into one output buffer per call (``buffers.new_buffer``, not
zero-filled, truncated to the plaintext written), or into the caller's buffer with
``update_into``. Only an incomplete frame at the end of a call is copied and kept. An
immutable ``bytes`` input that arrives with the header is kept by reference until the
data key is set; a mutable one is copied, since the caller may reuse it. Whole
messages already in memory avoid even that: parse the header, then
``Decryptor.for_header(header)``, ``set_data_key`` and ``update(body)``.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import signing
from .buffers import new_buffer
from .context import PUBLIC_KEY_FIELD
from .derivation import derive_checked_key
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
)
from .header import DecryptPolicy, MessageHeader, parse_header, verify_header_auth

_SEQ_LEN = struct.Struct(">IQ")  # the last 12 bytes of the frame AAD
_REGULAR_HEAD = struct.Struct(">IQI")  # sequence number, IV = 8 zero bytes || sequence number
_FINAL_HEAD = struct.Struct(">IIQII")  # marker, sequence number, IV, content length
_SIG_LEN = struct.Struct(">H")
_MIN_FRAME_BYTES = REGULAR_OVERHEAD + 1  # the smallest complete frame (1-byte regular frame)
Buffer = bytes | bytearray | memoryview

_HEADER, _NEED_KEY, _BODY, _FOOTER, _DONE, _FAILED = range(6)
_DEFAULT_POLICY = DecryptPolicy()


class Decryptor:
    """Decrypts one message. Not thread-safe; use one per message. After any
    ``DecryptionError`` the object is dead: every later call raises again."""

    __slots__ = (
        "policy", "header", "_state", "_buf", "_need", "_aead", "_seq", "_aad", "_final_aad",
        "_frame_length", "_digest", "_public_key", "plaintext_length", "_held", "_final_sequence",
    )

    def __init__(self, policy: DecryptPolicy | None = None) -> None:
        self.policy = policy or _DEFAULT_POLICY
        self.header: MessageHeader | None = None
        self._state = _HEADER
        self._buf = bytearray()
        self._need = 1
        self._aead: AESGCM | None = None
        self._seq = 1
        self._aad = bytearray()
        self._final_aad = bytearray()
        self._frame_length = 0
        self._digest: hashes.Hash | None = None
        self._public_key: ec.EllipticCurvePublicKey | None = None
        self.plaintext_length = 0
        self._held: memoryview | None = None  # body bytes of an immutable input, kept without copying
        self._final_sequence = MAX_SEQUENCE_NUMBER  # every regular frame's sequence number is below it

    @classmethod
    def for_header(cls, header: MessageHeader, policy: DecryptPolicy | None = None) -> Decryptor:
        """A decryptor for a message whose header was parsed separately (``parse_header``);
        it waits for ``set_data_key`` and is then fed the bytes after the header."""
        decryptor = cls(policy)
        decryptor.header = header
        decryptor._state = _NEED_KEY
        return decryptor

    @classmethod
    def for_frames(cls, header: MessageHeader, data_key: bytes, first_sequence: int,
                   policy: DecryptPolicy | None = None, *, final_sequence: int | None = None) -> Decryptor:
        """A decryptor for a run of frames starting at ``first_sequence`` of a message whose
        header was parsed separately (ranged reads). Verifies commitment and header
        authentication now; the footer signature of signing suites is not checked.

        ``final_sequence``: the sequence number the final frame must have, when the run ends
        with it (the message length fixes it). A regular frame with that number, such as the
        last frame left by a truncation at a frame boundary, then fails before it is
        decrypted instead of passing for the end of the message."""
        last = MAX_SEQUENCE_NUMBER if final_sequence is None else final_sequence
        if not 1 <= first_sequence <= last <= MAX_SEQUENCE_NUMBER:
            raise MalformedFrameError("sequence number out of range")
        decryptor = cls.for_header(header, policy)
        decryptor.set_data_key(data_key)
        decryptor._digest = None
        decryptor._seq = first_sequence
        decryptor._final_sequence = last
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
            aead = AESGCM(derive_checked_key(suite, data_key, header.message_id, header.commitment_key))
            verify_header_auth(aead, header)
            if suite.signed:
                field = header.encryption_context.get(PUBLIC_KEY_FIELD)
                if field is None:
                    raise SignatureError("signing suite without a public key in the context")
                self._public_key = signing.load_public_key(field)
                digest = signing.new_digest()
                digest.update(header.header_bytes)
                if header.version == 1:
                    digest.update(header.auth_iv)
                digest.update(header.auth_tag)
                self._digest = digest
        except DecryptionError:
            self._state = _FAILED
            raise
        self._aead = aead
        self._frame_length = header.frame_length
        self._aad = bytearray(header.message_id + REGULAR_FRAME_AAD + bytes(12))
        self._final_aad = bytearray(header.message_id + FINAL_FRAME_AAD + bytes(12))
        self._state = _BODY

    def update(self, data: Buffer) -> bytearray:
        """Take message bytes; return the plaintext of every frame verified so far."""
        try:
            return self._update(data, None)[0]
        except DecryptionError:
            self._fail()
            raise

    def update_into(self, data: Buffer, buffer: bytearray | memoryview) -> int:
        """Like ``update`` but write the plaintext into ``buffer`` and return its length.
        ``buffer`` must hold at least ``max_output_length(len(data))`` bytes."""
        out = memoryview(buffer).cast("B")
        if out.readonly:
            raise ValueError("buffer is read-only")
        if len(out) < self.max_output_length(len(data)):
            raise ValueError("buffer too small for the plaintext this call may release")
        try:
            return self._update(data, out)[1]
        except DecryptionError:
            self._fail()
            raise

    def max_output_length(self, data_length: int) -> int:
        """An upper bound on the plaintext that ``update`` of ``data_length`` bytes returns."""
        held = len(self._held) if self._held is not None else 0
        return len(self._buf) + held + data_length

    def finalize(self) -> bytearray:
        """Process what is buffered and check that the whole message arrived."""
        out = self.update(b"")
        if self._state != _DONE:
            self._state = _FAILED
            raise TruncatedMessageError("message ended before its final frame")
        return out

    def _fail(self) -> None:
        self._state = _FAILED
        self._buf = bytearray()
        self._held = None

    def _update(self, data: Buffer, into: memoryview | None) -> tuple[bytearray, int]:
        """(plaintext released, its length); the plaintext goes to ``into`` when given."""
        state = self._state
        if state == _BODY or state == _FOOTER:
            return self._take_body(data, into)
        if state == _FAILED:
            raise DecryptionError("decryptor failed earlier")
        if state == _DONE:
            if len(data):
                raise TrailingDataError("bytes after the end of the message")
            return bytearray(), 0
        if state == _HEADER:
            if not self._buf:
                header, count = parse_header(data, self.policy)
                if header is None:
                    self._need = count
                    self._buf += data
                    return bytearray(), 0
                self.header = header
                self._state = _NEED_KEY
                rest = memoryview(data)[count:]
                if isinstance(data, bytes):
                    self._held = rest
                else:
                    self._buf = bytearray(rest)
                return bytearray(), 0
            self._buf += data
            if len(self._buf) >= self._need:
                header, count = parse_header(self._buf, self.policy)
                if header is None:
                    self._need = count
                else:
                    self.header = header
                    self._state = _NEED_KEY
                    del self._buf[:count]
            return bytearray(), 0
        if len(data):  # _NEED_KEY: keep everything until the data key arrives
            if self._held is not None:
                self._buf = bytearray(self._held)
                self._held = None
            self._buf += data
        return bytearray(), 0

    def _take_body(self, data: Buffer, into: memoryview | None) -> tuple[bytearray, int]:
        view: memoryview | None
        if self._held is not None:
            view, self._held = self._held, None
            if len(data):
                self._buf = bytearray(view)
                view = None
        else:
            view = None
        buf = self._buf
        if view is None:
            if buf:
                buf += data
                view = memoryview(buf)
            else:
                view = memoryview(data)
                if view.format != "B" or view.ndim != 1:
                    view = view.cast("B")
        size = len(view)
        with view:
            if into is not None:
                out, out_view = bytearray(), into
            elif self._state == _BODY and size >= _MIN_FRAME_BYTES:
                out = new_buffer(size)  # plaintext < ciphertext: an upper bound, truncated below
                out_view = memoryview(out)
            else:
                out, out_view = bytearray(), memoryview(bytearray())
            with out_view:
                try:
                    written, used = self._frames(view, out_view) if self._state == _BODY else (0, 0)
                except DecryptionError:
                    if into is not None:
                        into[:] = bytes(len(into))  # never leave unverified bytes behind
                    raise
                if self._state == _FOOTER:
                    used = self._footer(view, used)
            rest = bytearray(view[used:]) if used < size else bytearray()
        self._buf = rest
        if into is None:
            del out[written:]
        if self._state == _DONE and rest:
            raise TrailingDataError("bytes after the end of the message")
        self.plaintext_length += written
        return out, written

    def _frames(self, view: memoryview, out: memoryview) -> tuple[int, int]:
        """Decrypt every complete frame at the start of ``view`` into ``out``;
        return (plaintext bytes written, message bytes consumed)."""
        flen = self._frame_length
        regular_size = flen + REGULAR_OVERHEAD
        size = len(view)
        aead = self._aead
        if aead is None:  # pragma: no cover - state machine guarantees a key in _BODY
            raise DecryptionError("no data key")
        decrypt_into = aead.decrypt_into
        aad = self._aad
        aad_at = len(aad) - 12
        pack_aad = _SEQ_LEN.pack_into
        unpack_head = _REGULAR_HEAD.unpack_from
        seq = self._seq
        final_sequence = self._final_sequence
        pos = opos = 0
        try:
            while pos + 16 <= size:
                marker, pad, iv_seq = unpack_head(view, pos)
                if marker == FINAL_FRAME_MARKER:
                    if pos + 24 > size:
                        break
                    _, final_seq, pad, iv_seq, length = _FINAL_HEAD.unpack_from(view, pos)
                    if length > flen:
                        raise MalformedFrameError("final frame longer than the frame length")
                    if final_seq != seq:
                        raise MalformedFrameError("final frame out of sequence")
                    if pad or iv_seq != seq:
                        raise MalformedFrameError("frame IV does not match its sequence number")
                    end = pos + FINAL_OVERHEAD + length
                    if end > size:
                        break
                    final_aad = self._final_aad
                    pack_aad(final_aad, len(final_aad) - 12, seq, length)
                    decrypt_into(view[pos + 8 : pos + 20], view[pos + 24 : end], final_aad,
                                 out[opos : opos + length])
                    opos += length
                    pos = end
                    seq += 1
                    self._state = _FOOTER if self._digest is not None else _DONE
                    break
                if marker != seq:
                    raise MalformedFrameError("frame out of sequence")
                if pad or iv_seq != seq:
                    raise MalformedFrameError("frame IV does not match its sequence number")
                end = pos + regular_size
                if end > size:
                    break
                if seq >= final_sequence:
                    raise MalformedFrameError("regular frame where the final frame belongs")
                pack_aad(aad, aad_at, seq, flen)
                decrypt_into(view[pos + 4 : pos + 16], view[pos + 16 : end], aad, out[opos : opos + flen])
                opos += flen
                pos = end
                seq += 1
        except InvalidTag as exc:
            out[:] = bytes(len(out))  # never keep unverified bytes
            raise FrameAuthenticationError("frame authentication failed") from exc
        self._seq = seq
        if self._digest is not None and pos:
            self._digest.update(view[:pos])
        return opos, pos

    def _footer(self, view: memoryview, pos: int) -> int:
        """Verify the signature footer at ``pos`` if complete; return the end offset, else ``pos``."""
        if pos + 2 > len(view):
            return pos
        length: int = _SIG_LEN.unpack_from(view, pos)[0]
        if length == 0 or length > signing.MAX_SIGNATURE_BYTES:
            raise SignatureError("signature length out of range")
        if pos + 2 + length > len(view):
            return pos
        if self._digest is None or self._public_key is None:  # pragma: no cover
            raise SignatureError("no verification key")
        signing.verify(self._public_key, self._digest.finalize(), bytes(view[pos + 2 : pos + 2 + length]))
        self._digest = None
        self._state = _DONE
        return pos + 2 + length
