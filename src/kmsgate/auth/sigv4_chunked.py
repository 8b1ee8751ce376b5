"""Chunk-signed SigV4 upload bodies (``aws-chunked``), verified as they arrive: sans-I/O.

A request declaring ``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` is signed like
any other with that value as its payload hash; that signature is the *seed*. The body is then a
sequence of chunks, each signed over the previous signature, so chunks can neither be altered,
dropped, reordered nor appended to::

    <size in hex>;chunk-signature=<64 hex>\\r\\n <size bytes of data> \\r\\n      (repeated)
    0;chunk-signature=<64 hex>\\r\\n \\r\\n                                       (the final chunk)

    chunk signature = HMAC(signing_key, "AWS4-HMAC-SHA256-PAYLOAD" \\n <request timestamp> \\n
                           <scope> \\n <previous signature> \\n hex(SHA-256("")) \\n hex(SHA-256(data)))

``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` ends differently: after the final chunk's header
come trailing headers (``name:value\\r\\n``, e.g. a checksum), then
``x-amz-trailer-signature:<64 hex>\\r\\n\\r\\n``, signed as ``"AWS4-HMAC-SHA256-TRAILER" \\n
<timestamp> \\n <scope> \\n <final chunk's signature> \\n hex(SHA-256(trailers as "name:value\\n"))``.
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` has the same framing with bare ``<size in hex>\\r\\n``
chunk headers and no signatures at all (the request's own signature covers only its headers).

``ChunkSignatureVerifier.update(data)`` takes bytes as they come and returns the payload bytes of
every chunk completed and verified so far; no byte of a chunk is released before its signature
is checked, so each chunk is held whole, and its size is capped (``MAX_CHUNK_BYTES``), as are
chunk headers and trailers. ``finalize()`` fails unless the final chunk (and trailer) arrived and
verified, so a truncated upload never passes. A bad signature is ``InvalidSignatureError``;
malformed framing, oversize chunks and bytes after the end are ``IncompleteSignatureError``.
Trailing checksums are returned (``trailers``), not checked: that is the caller's business.
"""

from __future__ import annotations

import hashlib
import re

from kmsgate.auth import sigv4_canonical as canonical
from kmsgate.core.errors import IncompleteSignatureError, InvalidSignatureError

STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SIGNED_STREAMING_PAYLOADS = (STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER)
MAX_CHUNK_BYTES = 1024 * 1024  # AWS SDKs send 64 KiB chunks
MAX_CHUNK_HEADER_BYTES = 256  # "<hex size>;chunk-signature=<64 hex>" is at most 97
MAX_TRAILER_BYTES = 8 * 1024
_CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
_TRAILER_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_SIGNED_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,8});chunk-signature=([0-9a-f]{64})")
_UNSIGNED_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,8})")
_CRLF = b"\r\n"

_HEADER, _DATA, _TRAILER, _DONE = range(4)


def _malformed(what: str) -> IncompleteSignatureError:
    return IncompleteSignatureError(f"Malformed chunked payload: {what}.")


class ChunkSignatureVerifier:
    """Verifies an ``aws-chunked`` body chunk by chunk (see the module docstring).

    ``seed_signature`` is the request's verified signature; ``mode`` the declared
    ``x-amz-content-sha256`` value. ``decoded_length`` (``x-amz-decoded-content-length``), when
    given, must equal the payload's length.
    """

    def __init__(self, signing_key: bytes, stamp: str, scope: str, seed_signature: str, *,
                 mode: str = STREAMING_PAYLOAD, max_chunk_bytes: int = MAX_CHUNK_BYTES,
                 decoded_length: int | None = None) -> None:
        if mode not in (*SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER):
            raise ValueError(f"not a streaming payload mode: {mode}")
        self._signing_key = signing_key
        self._prefix = f"\n{stamp}\n{scope}\n"
        self._previous = seed_signature
        self._signed = mode != STREAMING_UNSIGNED_PAYLOAD_TRAILER
        self._trailer = mode != STREAMING_PAYLOAD
        self._max_chunk_bytes = max_chunk_bytes
        self._decoded_length = decoded_length
        self._buffer = bytearray()
        self._state = _HEADER
        self._size = 0
        self._claimed = ""
        self._total = 0
        self.trailers: dict[str, str] = {}

    @property
    def done(self) -> bool:
        """Whether the final chunk (and trailer) arrived and verified."""
        return self._state == _DONE

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed received body bytes; the verified payload bytes completed by them (maybe none)."""
        if self._state == _DONE:
            if data:
                raise _malformed("bytes after the final chunk")
            return b""
        self._buffer += data
        out = bytearray()
        while self._step(out):
            pass
        return bytes(out)

    def finalize(self) -> None:
        """Fail unless the whole body arrived, ended properly and verified."""
        if self._state != _DONE or self._buffer:
            raise _malformed("the body ended before its final chunk")
        if self._decoded_length is not None and self._total != self._decoded_length:
            raise _malformed("the payload length differs from x-amz-decoded-content-length")

    def _step(self, out: bytearray) -> bool:
        """Consume one element from the buffer if it is complete; whether to continue."""
        if self._state == _HEADER:
            return self._read_header()
        if self._state == _DATA:
            return self._read_data(out)
        if self._state == _TRAILER:
            return self._read_trailer()
        return False

    def _read_header(self) -> bool:
        end = self._buffer.find(_CRLF, 0, MAX_CHUNK_HEADER_BYTES + 2)
        if end < 0:
            if len(self._buffer) > MAX_CHUNK_HEADER_BYTES:
                raise _malformed("a chunk header is too long")
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        match = (_SIGNED_CHUNK_HEADER if self._signed else _UNSIGNED_CHUNK_HEADER).fullmatch(line)
        if match is None:
            raise _malformed("a chunk header is not '<hex size>;chunk-signature=<signature>'"
                             if self._signed else "a chunk header is not '<hex size>'")
        self._size = int(match.group(1), 16)
        if self._size > self._max_chunk_bytes:
            raise _malformed(f"a chunk is larger than {self._max_chunk_bytes} bytes")
        if self._decoded_length is not None and self._total + self._size > self._decoded_length:
            raise _malformed("the payload is longer than x-amz-decoded-content-length")
        self._claimed = match.group(2).decode() if self._signed else ""
        if self._size == 0 and self._trailer:
            self._verify_chunk(b"")
            self._state = _TRAILER
        else:
            self._state = _DATA
        return True

    def _read_data(self, out: bytearray) -> bool:
        size = self._size
        if len(self._buffer) < size + 2:
            return False
        if self._buffer[size : size + 2] != _CRLF:
            raise _malformed("a chunk's data is not followed by CRLF")
        chunk = bytes(self._buffer[:size])
        del self._buffer[: size + 2]
        self._verify_chunk(chunk)
        out += chunk
        self._total += size
        self._state = _DONE if size == 0 else _HEADER
        if self._state == _DONE and self._buffer:
            raise _malformed("bytes after the final chunk")
        return self._state != _DONE

    def _verify_chunk(self, chunk: bytes) -> None:
        if not self._signed:
            return
        text = (f"{_CHUNK_ALGORITHM}{self._prefix}{self._previous}\n{canonical.EMPTY_SHA256}\n"
                f"{hashlib.sha256(chunk).hexdigest()}")
        expected = canonical.signature(self._signing_key, text)
        if not canonical.signatures_equal(expected, self._claimed):
            raise InvalidSignatureError("The chunk signature does not match the signature we calculated.")
        self._previous = expected

    def _read_trailer(self) -> bool:
        if self._buffer.startswith(_CRLF):  # no trailing headers
            block = b""
            del self._buffer[:2]
        else:
            end = self._buffer.find(b"\r\n\r\n", 0, MAX_TRAILER_BYTES + 4)
            if end < 0:
                if len(self._buffer) > MAX_TRAILER_BYTES:
                    raise _malformed("the trailer is too long")
                return False
            block = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
        if self._buffer:
            raise _malformed("bytes after the trailer")
        trailers: dict[str, str] = {}
        claimed: str | None = None
        for line in block.split(_CRLF) if block else []:
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            name, value = name.strip().lower(), value.strip()
            if not sep or not name:
                raise _malformed("a trailer line is not 'name:value'")
            if claimed is not None:
                raise _malformed("the trailer signature is not the last trailer line")
            if name == _TRAILER_SIGNATURE:
                claimed = value
            elif name in trailers:
                raise _malformed(f"the trailer {name} is repeated")
            else:
                trailers[name] = value
        if self._signed:
            if claimed is None:
                raise _malformed("the trailer has no x-amz-trailer-signature")
            listed = "".join(f"{name}:{value}\n" for name, value in trailers.items())
            text = (f"{_TRAILER_ALGORITHM}{self._prefix}{self._previous}\n"
                    f"{hashlib.sha256(listed.encode()).hexdigest()}")
            if not canonical.signatures_equal(canonical.signature(self._signing_key, text), claimed):
                raise InvalidSignatureError("The trailer signature does not match the signature we calculated.")
        elif claimed is not None:
            raise _malformed("an unsigned trailer carries a signature")
        self.trailers = trailers
        self._state = _DONE
        return False
