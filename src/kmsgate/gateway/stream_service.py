"""Messages as a service with no HTTP in it: plaintext streams into Encryption SDK messages and back.

``open_encryption`` takes the caller's data key for (CMK, context) from its cache (a KMS
``GenerateDataKey`` as the caller on a miss) and returns an ``Encryption``: the message's
exact length when the plaintext length is known (unsigned suites make it a function of it),
then either ``encrypt_whole`` for a small body in memory or ``stream`` over blocks.

``open_decryption`` reads blocks only until the message's header is complete, unwraps its
data key as the caller (which authenticates the header) and checks an expected context;
only then does it return, so most failures come before a front starts its response. The
returned ``Decryption.chunks`` yields plaintext only from frames that verified and ends only
after the whole message verified (``Decryptor.finalize``); a front that streams it aborts its
response at the first failure. ``decrypt_whole`` does the same for a small message in memory
and returns the plaintext only once everything verified.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING

from kmsgate.core.principal import Caller
from kmsgate.envelope.cache import CacheEntry
from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.errors import TruncatedMessageError
from kmsgate.envelope.frames import body_size
from kmsgate.envelope.header import parse_header
from kmsgate.envelope.materials import MaterialsManager
from kmsgate.gateway.encryption import check_context, check_length, check_requested_context, encrypted, key_arn

if TYPE_CHECKING:
    from kmsgate.gateway.service import Gateway


class Encryption:
    """One message being made under the caller's cached data key."""

    __slots__ = ("_gateway", "_materials", "_entry", "_encryptor")

    def __init__(self, gateway: Gateway, materials: MaterialsManager, entry: CacheEntry) -> None:
        self._gateway = gateway
        self._materials = materials
        self._entry = entry
        self._encryptor = Encryptor(entry.materials, frame_length=gateway.settings.frame_length)

    @property
    def kms_key_arn(self) -> str:
        return key_arn(self._entry)

    @property
    def plaintext_length(self) -> int:
        """Plaintext bytes encrypted so far."""
        return self._encryptor.plaintext_length

    def message_length(self, plaintext_length: int | None) -> int | None:
        """The message's exact length for ``plaintext_length`` bytes, when the suite fixes it."""
        header = self._encryptor.header
        if plaintext_length is None or header.suite.signed:
            return None
        return header.length + body_size(plaintext_length, header.frame_length)

    def encrypt_whole(self, plaintext: bytes) -> bytes | bytearray:
        """The whole message for a small ``plaintext``, inline (see ``kmsgate.envelope.pool``)."""
        self._materials.cache.record_bytes(self._entry, len(plaintext))
        return self._encryptor.encrypt(plaintext)

    def stream(self, blocks: AsyncIterable[bytes]) -> AsyncIterator[bytes | bytearray]:
        """The message for the plaintext ``blocks``, as it is made."""
        return encrypted(self._gateway, self._materials, self._entry, self._encryptor, blocks)


class Decryption:
    """A message whose header and data key checked out; ``chunks`` yields its verified plaintext."""

    __slots__ = ("_gateway", "_decryptor", "_blocks", "_buffered")

    def __init__(self, gateway: Gateway, decryptor: Decryptor, blocks: AsyncIterator[bytes],
                 buffered: int) -> None:
        self._gateway = gateway
        self._decryptor = decryptor
        self._blocks = blocks
        self._buffered = buffered

    async def chunks(self) -> AsyncIterator[bytes | bytearray]:
        pool = self._gateway.pool
        decryptor = self._decryptor
        yield await pool.run(decryptor.update, b"", weight=self._buffered)
        async for block in self._blocks:
            yield await pool.run(decryptor.update, block)
        yield decryptor.finalize()


class StreamService:
    """Encryption and decryption of message streams as one gateway process serves them."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def open_encryption(self, caller: Caller, *, key_id: str | None, encryption_context: Mapping[str, str],
                              length: int | None) -> Encryption:
        gateway = self._gateway
        check_requested_context(encryption_context)
        check_length(length, gateway.settings.max_object_bytes)
        materials = gateway.materials_for(caller)
        entry = await materials.encryption_materials(
            key_id=key_id or gateway.settings.default_key_id, encryption_context=encryption_context,
            plaintext_length=length)
        return Encryption(gateway, materials, entry)

    async def open_decryption(self, caller: Caller, blocks: AsyncIterator[bytes], *,
                              expected_context: Mapping[str, str] | None = None) -> Decryption:
        """Read ``blocks`` up to the end of the message's header; the rest is left for ``chunks``."""
        decryptor = Decryptor(self._gateway.settings.decrypt_policy)
        buffered = 0
        async for block in blocks:
            decryptor.update(block)  # buffers until the data key is set: no crypto yet
            buffered += len(block)
            if decryptor.needs_data_key:
                break
        if not decryptor.needs_data_key:
            decryptor.finalize()  # raises: the body ended before a complete header
        await self._gateway.materials_for(caller).open_decryptor(decryptor)
        if decryptor.header is None:  # pragma: no cover - needs_data_key implies a parsed header
            raise TruncatedMessageError("message ended inside its header")
        check_context(decryptor.header, expected_context or {})
        return Decryption(self._gateway, decryptor, blocks, buffered)

    async def decrypt_whole(self, caller: Caller, message: bytes, *,
                            expected_context: Mapping[str, str] | None = None) -> bytes | bytearray:
        """The plaintext of a whole (small) message in memory, once all of it verified."""
        policy = self._gateway.settings.decrypt_policy
        header, consumed = parse_header(message, policy)
        if header is None:
            raise TruncatedMessageError("message ended inside its header")
        decryptor = Decryptor.for_header(header, policy)
        await self._gateway.materials_for(caller).open_decryptor(decryptor)
        check_context(header, expected_context or {})
        with memoryview(message) as view:
            plaintext = decryptor.update(view[consumed:])
        if not decryptor.done:
            decryptor.finalize()  # raises: the message ended early
        return plaintext
