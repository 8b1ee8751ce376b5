"""S3 request bodies, decoded and checked as they stream: aws-chunked, payload hash, checksums.

``body_blocks`` yields a request's payload in blocks of at most ``io_block_bytes``:

* a chunk-signed or trailer upload (``exchange.chunk_verifier``) is ``aws-chunked``: the raw
  bytes go through the verifier, which releases each chunk's data only once its signature
  verified; the end of the body is checked (``finalize``) before the last block is yielded;
* a body whose SHA-256 was signed is hashed as it streams and compared at its end;
* a checksum the client sent (``x-amz-checksum-<algorithm>`` as a header, or as a trailer the
  ``x-amz-trailer`` header announces) is computed over the payload and compared at its end.

Every check runs before the consumer sees the end of the body, so a PUT that fails one stores
nothing (the storage writer aborts). More than ``limit`` payload bytes is ``EntityTooLarge``.
``read_small_body`` reads a whole XML request body (CreateBucket, PutBucketEncryption,
DeleteObjects) the same way, capped at its document's limit, and checks ``Content-MD5``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from kmsgate.core.errors import IncompleteSignatureError, InvalidSignatureError
from kmsgate.gateway.exchange import Exchange
from kmsgate.s3 import errors as s3
from kmsgate.s3.checksums import (
    CHECKSUM_HEADER_PREFIX,
    Digest,
    DigestAlgorithm,
    ExpectedDigest,
    parse_checksum_headers,
    parse_content_md5,
)
from kmsgate.s3front.errors import IncompleteBody

TRAILER_HEADER = "x-amz-trailer"


def _chunk_error(exc: Exception) -> s3.S3Error:
    if isinstance(exc, InvalidSignatureError):
        return s3.SignatureDoesNotMatch(str(exc))
    return IncompleteBody(str(exc))


class ChecksumCheck:
    """The checksum a request promised, computed over its payload and compared at the end."""

    def __init__(self, request: web.Request) -> None:
        self._expected = parse_checksum_headers(request.headers)
        self._trailer: DigestAlgorithm | None = None
        announced = request.headers.get(TRAILER_HEADER)
        if announced is not None:
            name = announced.strip().lower()
            algorithm = {a.header.lower(): a for a in DigestAlgorithm}.get(name)
            if algorithm is None or algorithm is DigestAlgorithm.MD5 or not name.startswith(CHECKSUM_HEADER_PREFIX):
                raise s3.InvalidRequest(f"The trailer {announced[:64]} is not supported.")
            if self._expected is not None:
                raise s3.InvalidRequest("Expecting a single x-amz-checksum- header.")
            self._trailer = algorithm
        algorithm = self._expected.algorithm if self._expected is not None else self._trailer
        self._digest = Digest(algorithm) if algorithm is not None else None

    @property
    def expects_trailer(self) -> bool:
        return self._trailer is not None

    def update(self, data: bytes) -> None:
        if self._digest is not None:
            self._digest.update(data)

    def verify(self, trailers: Mapping[str, str]) -> None:
        if self._digest is None:
            return
        expected = self._expected
        if self._trailer is not None:
            value = trailers.get(self._trailer.header.lower())
            if value is None:
                raise s3.InvalidRequest(f"The trailer {self._trailer.header} was announced but not sent.")
            expected = parse_checksum_headers({self._trailer.header: value})
        if expected is not None:
            expected.verify(self._digest.finalize())


def content_md5(request: web.Request) -> ExpectedDigest | None:
    value = request.headers.get("Content-MD5")
    return parse_content_md5(value) if value is not None else None


async def _raw_blocks(request: web.Request, exchange: Exchange, block: int) -> AsyncIterator[bytes]:
    content = request.content
    while True:
        data = await content.read(block)
        if not data:
            return
        exchange.bytes_in += len(data)
        yield data


async def body_blocks(request: web.Request, exchange: Exchange, *, limit: int, block: int,
                      checksum: ChecksumCheck | None = None) -> AsyncIterator[bytes]:
    """The request's payload (see the module docstring); raises at its end if a check fails."""
    check = exchange.payload_check
    verifier = exchange.chunk_verifier
    if checksum is not None and checksum.expects_trailer and verifier is None:
        raise s3.InvalidRequest("A trailing checksum needs an aws-chunked body.")
    payload = 0
    pending: list[bytes] = []  # joined once per block (a block read whole is not copied at all)
    pending_bytes = 0
    async for raw in _raw_blocks(request, exchange, block):
        if check is not None:
            check.update(raw)
        if verifier is not None:
            try:
                data = verifier.update(raw)
            except (InvalidSignatureError, IncompleteSignatureError) as exc:
                raise _chunk_error(exc) from None
        else:
            data = raw
        if not data:
            continue
        payload += len(data)
        if payload > limit:
            raise s3.EntityTooLarge(max_size_allowed=limit)
        if checksum is not None:
            checksum.update(data)
        pending.append(data)
        pending_bytes += len(data)
        if pending_bytes >= block:
            out = pending[0] if len(pending) == 1 else b"".join(pending)
            pending, pending_bytes = [], 0
            yield out
    if check is not None:
        check.verify()
    trailers: Mapping[str, str] = {}
    if verifier is not None:
        try:
            verifier.finalize()
        except (InvalidSignatureError, IncompleteSignatureError) as exc:
            raise _chunk_error(exc) from None
        trailers = verifier.trailers
    if checksum is not None:
        checksum.verify(trailers)
    if pending:
        yield b"".join(pending)


async def read_small_body(request: web.Request, exchange: Exchange, *, limit: int) -> bytes:
    """A whole (XML) request body of at most ``limit`` bytes, checked against ``Content-MD5``
    and any checksum; more is ``MaxMessageLengthExceeded``."""
    expected_md5 = content_md5(request)
    checksum = ChecksumCheck(request)
    parts: list[bytes] = []
    try:
        async for data in body_blocks(request, exchange, limit=limit, block=64 * 1024, checksum=checksum):
            parts.append(data)
    except s3.EntityTooLarge:
        raise s3.MaxMessageLengthExceeded() from None
    body = b"".join(parts)
    if expected_md5 is not None:
        digest = Digest(DigestAlgorithm.MD5)
        digest.update(body)
        expected_md5.verify(digest.finalize())
    return body
