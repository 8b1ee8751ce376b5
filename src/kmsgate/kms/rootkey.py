"""The root key, which wraps every version of key material before it is stored.

Wrapped material, byte by byte::

    offset  size  field
    0       1     format version, 0x01
    1       12    nonce, random from the OS
    13      n     AES-256-GCM ciphertext of the material: 32 bytes for a SYMMETRIC_DEFAULT key,
                  the HMAC key of an HMAC key, the PKCS#8 DER private key of an asymmetric key
    13+n    16    tag

Associated data: ``"kmsgate-material-v1" || key id (ASCII UUID) || uint32 version``, so a wrapped
material cannot be moved to another key or version without failing authentication.

The same root key also seals import tokens (see ``kmsgate.kms.importing``) under a separate
derived key, so one wrapped format can never be confused with the other. A third derived value,
``HMAC-SHA256(root key, "kmsgate-root/check")``, lets a shared key store recognise the root key
it was created with (a node started with another is refused) without holding anything that
helps to find the key.

When the root key is rotated (``kmsgate.kms.rootkey_rotation``), import tokens already handed
out stay usable for their lifetime: the retired root key's token-sealing key (the derived value
above, not the root key itself) is kept in the store, wrapped under the new root key with the
same layout as material and associated data ``"kmsgate-retired-token-key-v1"``, and
``with_retired_token_keys`` gives a root key that also opens tokens sealed under it. Holding a
retired token-sealing key opens only import tokens, never material.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT_KEY_BYTES = 32
_WRAP_VERSION = 1
_NONCE_BYTES = 12
_RETIRED_TOKEN_KEY_AD = b"kmsgate-retired-token-key-v1"


class RootKeyError(Exception):
    """The root key is malformed, or a wrapped value failed authentication under it."""


class RootKey:
    """Wraps and unwraps secrets at rest. Holds the key; never prints it."""

    __slots__ = ("_check", "_material_aead", "_token_key", "_token_aead", "_retired_token_aeads")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != ROOT_KEY_BYTES:
            raise RootKeyError(f"the root key must be {ROOT_KEY_BYTES} bytes")
        self._material_aead = AESGCM(hmac.digest(secret, b"kmsgate-root/material", hashlib.sha256))
        self._token_key = hmac.digest(secret, b"kmsgate-root/import-token", hashlib.sha256)
        self._token_aead = AESGCM(self._token_key)
        self._retired_token_aeads: tuple[AESGCM, ...] = ()
        self._check = hmac.digest(secret, b"kmsgate-root/check", hashlib.sha256).hex()

    def __repr__(self) -> str:
        return "RootKey(<secret>)"

    @staticmethod
    def _material_ad(key_id: str, version: int) -> bytes:
        return b"kmsgate-material-v1" + key_id.encode("ascii") + struct.pack(">I", version)

    def check_value(self) -> str:
        """A value a key store keeps to recognise this root key (an HMAC of a constant: it reveals nothing of the key)."""
        return self._check

    def matches_check(self, check: str) -> bool:
        """Whether ``check`` is this root key's check value (compared in constant time)."""
        return hmac.compare_digest(self._check.encode(), check.encode())

    def with_retired_token_keys(self, token_keys: Sequence[bytes]) -> RootKey:
        """This root key, also opening import tokens sealed under ``token_keys`` (retired roots' token keys)."""
        widened = RootKey.__new__(RootKey)
        widened._material_aead = self._material_aead
        widened._token_key = self._token_key
        widened._token_aead = self._token_aead
        widened._check = self._check
        widened._retired_token_aeads = tuple(AESGCM(token_key) for token_key in token_keys)
        return widened

    def wrap_retired_token_key(self, retiring: RootKey) -> bytes:
        """``retiring``'s token-sealing key wrapped under this root key (kept so its import tokens still open)."""
        return self._wrap(self._material_aead, _RETIRED_TOKEN_KEY_AD, retiring._token_key)

    def rewrap_retired_token_key(self, previous: RootKey, wrapped: bytes) -> bytes:
        """A retired token-sealing key ``previous`` wrapped, wrapped under this root key instead."""
        return self._wrap(self._material_aead, _RETIRED_TOKEN_KEY_AD, previous.unwrap_retired_token_key(wrapped))

    def unwrap_retired_token_key(self, wrapped: bytes) -> bytes:
        if len(wrapped) < 1 + _NONCE_BYTES + 16 or wrapped[0] != _WRAP_VERSION:
            raise RootKeyError("a retired token key is malformed")
        try:
            return self._material_aead.decrypt(
                wrapped[1 : 1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES :], _RETIRED_TOKEN_KEY_AD
            )
        except InvalidTag as exc:
            raise RootKeyError("a retired token key failed authentication under the root key") from exc

    @staticmethod
    def _wrap(aead: AESGCM, associated_data: bytes, secret: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return bytes([_WRAP_VERSION]) + nonce + aead.encrypt(nonce, secret, associated_data)

    def wrap_material(self, key_id: str, version: int, material: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._material_aead.encrypt(nonce, material, self._material_ad(key_id, version))
        return bytes([_WRAP_VERSION]) + nonce + sealed

    def unwrap_material(self, key_id: str, version: int, wrapped: bytes) -> bytes:
        if len(wrapped) < 1 + _NONCE_BYTES + 16 or wrapped[0] != _WRAP_VERSION:
            raise RootKeyError("wrapped key material is malformed")
        try:
            return self._material_aead.decrypt(
                wrapped[1 : 1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES :], self._material_ad(key_id, version)
            )
        except InvalidTag as exc:
            raise RootKeyError("wrapped key material failed authentication under the root key") from exc

    def seal_token(self, payload: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return bytes([_WRAP_VERSION]) + nonce + self._token_aead.encrypt(nonce, payload, associated_data)

    def open_token(self, token: bytes, associated_data: bytes) -> bytes:
        if len(token) < 1 + _NONCE_BYTES + 16 or token[0] != _WRAP_VERSION:
            raise RootKeyError("token is malformed")
        nonce, sealed = token[1 : 1 + _NONCE_BYTES], token[1 + _NONCE_BYTES :]
        for aead in (self._token_aead, *self._retired_token_aeads):
            try:
                return aead.decrypt(nonce, sealed, associated_data)
            except InvalidTag:
                continue
        raise RootKeyError("token failed authentication")
