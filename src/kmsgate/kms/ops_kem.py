"""Operations of ML-KEM keys (KeyUsage ENCAPSULATE_DECAPSULATE): Encapsulate and Decapsulate.

Like the other asymmetric operations they run from memory (the private key, in its seed form, is
unwrapped when the view is loaded). ML-KEM-512, computed in pure Python, runs in the slow-operation
helper processes (``kmsgate.kms.slow_operations``); ML-KEM-768 and -1024 (OpenSSL) inline. The
cryptography is in ``kmsgate.kms.kem``; this module authorizes, checks the key's state, usage and
algorithm, and records use.
"""

from __future__ import annotations

from collections.abc import Sequence

from kmsgate.core.errors import InvalidKeyUsageError
from kmsgate.core.principal import Caller
from kmsgate.kms import kem
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyspecs import ENCAPSULATE_DECAPSULATE, KEY_SPECS
from kmsgate.kms.model import KmsKey
from kmsgate.kms.results import DecapsulateResult, EncapsulateResult


class KemOperations(ServiceBase):
    async def _kem_key(
        self, caller: Caller, operation: str, key_id: str, encapsulation_algorithm: str, grant_tokens: Sequence[str]
    ) -> KmsKey:
        """The usable ML-KEM key ``key_id`` names, once ``kms:<operation>`` is authorized on it."""
        key = await self._resolve(key_id, allow_alias=True)
        self._authorize(
            caller, f"kms:{operation}", key, grant_tokens=grant_tokens, request_alias=self._request_alias(key_id)
        )
        self._require_usable(key)
        self._require_key_usage(key, operation, ENCAPSULATE_DECAPSULATE)
        offered = KEY_SPECS[key.key_spec].algorithms[ENCAPSULATE_DECAPSULATE]
        if encapsulation_algorithm not in offered:
            raise InvalidKeyUsageError(
                f"The encapsulation algorithm {encapsulation_algorithm} is not valid for this key. "
                f"Supported algorithms: {list(offered)}"
            )
        return key

    async def encapsulate(
        self, *, caller: Caller, key_id: str, encapsulation_algorithm: str, grant_tokens: Sequence[str] = ()
    ) -> EncapsulateResult:
        """A fresh shared secret and its encapsulation under the key's public half (FIPS 203 Encaps)."""
        key = await self._kem_key(caller, "Encapsulate", key_id, encapsulation_algorithm, grant_tokens)
        private_der = self._material(key).secret
        if kem.slow(key.key_spec):
            secret, ciphertext = await self._run_slow(kem.encapsulate, key.key_spec, private_der)
        else:
            secret, ciphertext = kem.encapsulate(key.key_spec, private_der)
        self._note_use(key, "Encapsulate")
        return EncapsulateResult(
            key_id=key.arn,
            shared_secret=secret,
            shared_secret_ciphertext_blob=ciphertext,
            encapsulation_algorithm=encapsulation_algorithm,
        )

    async def decapsulate(
        self,
        *,
        caller: Caller,
        key_id: str,
        shared_secret_ciphertext_blob: bytes,
        encapsulation_algorithm: str,
        grant_tokens: Sequence[str] = (),
    ) -> DecapsulateResult:
        """The shared secret in ``shared_secret_ciphertext_blob`` (FIPS 203 Decaps, implicit rejection)."""
        key = await self._kem_key(caller, "Decapsulate", key_id, encapsulation_algorithm, grant_tokens)
        private_der = self._material(key).secret
        if kem.slow(key.key_spec):
            secret = await self._run_slow(kem.decapsulate, key.key_spec, private_der, shared_secret_ciphertext_blob)
        else:
            secret = kem.decapsulate(key.key_spec, private_der, shared_secret_ciphertext_blob)
        self._note_use(key, "Decapsulate")
        return DecapsulateResult(key_id=key.arn, shared_secret=secret, encapsulation_algorithm=encapsulation_algorithm)
