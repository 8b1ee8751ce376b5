"""The steps the gateway's services share: size and context checks, encrypting a block stream, ETags.

No HTTP here: bodies arrive as async iterables of blocks (a front bounds and hashes them as
they stream) and leave through a sink. Memory per call is bounded by one block and one frame,
whatever the body's size; steps on large blocks go to the crypto pool (``kmsgate.envelope.pool``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING

from kmsgate.envelope.cache import CacheEntry
from kmsgate.envelope.context import RESERVED_PREFIX
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.header import MessageHeader
from kmsgate.envelope.materials import MaterialsManager
from kmsgate.gateway.errors import GatewayError
from kmsgate.gateway.object_access import OBJECT_ARN_CONTEXT_KEY

if TYPE_CHECKING:
    from kmsgate.gateway.service import Gateway


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, "EntityTooLarge", f"The body exceeds the maximum of {limit} bytes.")


def check_length(length: int | None, limit: int) -> None:
    """A declared length over ``limit`` is refused before anything is read."""
    if length is not None and length > limit:
        raise too_large(limit)


def check_requested_context(encryption_context: Mapping[str, str]) -> None:
    """A caller's context for a new message: the object-binding key is the gateway's alone."""
    if OBJECT_ARN_CONTEXT_KEY in encryption_context:
        raise GatewayError(400, "InvalidArgument",
                           f"The encryption context key {OBJECT_ARN_CONTEXT_KEY} is reserved: the gateway sets it "
                           "to the object's ARN.")


def check_context(header: MessageHeader, expected: Mapping[str, str]) -> None:
    """A context the client names must be exactly the message's own (authenticated) context.

    Keys and values compare exactly, and no pair may be left unnamed: a message made under
    ``{"tenant": "bob", "TENANT": "alice"}`` does not pass for ``{"tenant": "bob"}``. The keys the
    format reserves for itself (``aws-crypto-``) and the object binding the gateway sets
    (``aws:s3:arn``, checked on its own) are not the caller's and are left out. Naming no
    context checks nothing.
    """
    if not expected:
        return
    actual = {k: v for k, v in header.encryption_context.items()
              if not k.startswith(RESERVED_PREFIX) and k != OBJECT_ARN_CONTEXT_KEY}
    if actual != dict(expected):
        raise GatewayError(400, "EncryptionContextMismatch",
                           "The encryption context does not match the one the object was encrypted with.")


MD5_WEIGHT = 16
"""The AES-GCM bytes one byte of MD5 weighs against ``CryptoPool``'s threshold, which is set in
AES-GCM work: on 256 KiB blocks hashlib's MD5 ran at about 250 MB/s on the (busy) development
machine against 11.5 GB/s for AES-GCM, so the MD5 of a 256 KiB block (about 1 ms) goes to a
thread while that of a 1 KiB one stays inline."""

MD5_PENDING_BYTES = 512 * 1024
"""The bytes an upload may have waiting for its MD5 thread before reading more of it: two of the
S3 API's 256 KiB blocks, enough to keep the thread busy. Each pending byte is memory held per
upload: with 4 MiB, ten concurrent 8 MiB parts held 4.6 parts' worth of server memory (against
3.1 before the lane); with 512 KiB, 3.9-4.0 parts, and a 64 MiB PutObject ran at 0.58-0.65 of
the streaming echo (runs of ``python -m bench --scenario s3``, 2026-12-05)."""


async def encrypted(gateway: Gateway, materials: MaterialsManager, entry: CacheEntry, encryptor: Encryptor,
                    blocks: AsyncIterable[bytes], *,
                    digest: hashlib._Hash | None = None) -> AsyncIterator[bytes | bytearray]:
    """``blocks`` encrypted by ``encryptor`` (made from ``entry``): header, frames, final frame;
    with ``digest``, each block is also hashed into it, in a ``Lane`` of the crypto pool beside
    the encryption (the S3 API's MD5), and the digest is complete when the final frame comes.

    Bytes are counted against the cache entry as they flow, on the event loop.
    """
    cache = materials.cache
    pool = gateway.pool
    lane = None if digest is None else pool.lane(digest.update, weight=MD5_WEIGHT,
                                                 max_pending_bytes=MD5_PENDING_BYTES)
    try:
        async for block in blocks:
            cache.record_bytes(entry, len(block))
            if lane is not None:
                await lane.feed(block)
            out = await pool.run(encryptor.update, block)
            if out:
                yield out
        if lane is not None:
            await lane.finish()
    finally:
        if lane is not None:
            lane.close()
    yield encryptor.finalize()


def key_arn(entry: CacheEntry) -> str:
    return entry.materials.encrypted_data_keys[0].provider_info.decode("utf-8", "replace")


def etag_of(header: MessageHeader) -> str:
    """A strong ETag: the message id is random per message, so per object version."""
    return '"' + header.message_id.hex()[:32] + '"'
