"""The steps the gateway's services share: size and context checks, encrypting a block stream, ETags.

No HTTP here: bodies arrive as async iterables of blocks (a front bounds and hashes them as
they stream) and leave through a sink. Memory per call is bounded by one block and one frame,
whatever the body's size; steps on large blocks go to the crypto pool (``kmsgate.envelope.pool``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from kmsgate.envelope.cache import CacheEntry
from kmsgate.envelope.context import RESERVED_PREFIX
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.header import MessageHeader
from kmsgate.envelope.materials import MaterialsManager
from kmsgate.envelope.pool import Chunk
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
"""The AES-GCM bytes one byte of MD5 weighs for ``CryptoPool.run``, whose threshold is set in
AES-GCM work: on 256 KiB blocks hashlib's MD5 ran at about 250 MB/s on the (busy) development
machine against 11.5 GB/s for AES-GCM, so a 256 KiB block hashed and encrypted (about 1 ms,
10-20 thread hand-offs) goes to a thread while a 1 KiB one stays inline. Taking MD5 off the event loop moved a 64 MiB
S3 PutObject's server time on the event loop from about 260 to 120 ms."""


def hashing(digest: hashlib._Hash, encryptor: Encryptor) -> Callable[[Chunk], bytearray]:
    """One pool step that hashes a block into ``digest`` and encrypts it (weigh it with ``MD5_WEIGHT``)."""

    def hash_and_encrypt(block: Chunk) -> bytearray:
        digest.update(block)
        return encryptor.update(block)

    return hash_and_encrypt


async def encrypted(gateway: Gateway, materials: MaterialsManager, entry: CacheEntry, encryptor: Encryptor,
                    blocks: AsyncIterable[bytes], *,
                    digest: hashlib._Hash | None = None) -> AsyncIterator[bytes | bytearray]:
    """``blocks`` encrypted by ``encryptor`` (made from ``entry``): header, frames, final frame;
    with ``digest``, each block is hashed into it in the same step (the S3 API's MD5).

    Bytes are counted against the cache entry as they flow, on the event loop.
    """
    cache = materials.cache
    step: Callable[[Chunk], bytearray] = encryptor.update if digest is None else hashing(digest, encryptor)
    weight = 1 if digest is None else MD5_WEIGHT
    async for block in blocks:
        cache.record_bytes(entry, len(block))
        out = await gateway.pool.run(step, block, weight=len(block) * weight)
        if out:
            yield out
    yield encryptor.finalize()


def key_arn(entry: CacheEntry) -> str:
    return entry.materials.encrypted_data_keys[0].provider_info.decode("utf-8", "replace")


def etag_of(header: MessageHeader) -> str:
    """A strong ETag: the message id is random per message, so per object version."""
    return '"' + header.message_id.hex()[:32] + '"'
