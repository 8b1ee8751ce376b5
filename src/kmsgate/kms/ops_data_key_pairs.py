"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: key pairs for use outside the KMS.

A data key pair is made per request (``kmsgate.kms.keyspecs.generate_material``, off the event
loop: an RSA 4096 pair takes long) and never kept. The private key, PKCS#8 DER, is sealed under a
symmetric encryption KMS key exactly as Encrypt seals a plaintext, with the request's encryption
context, so Decrypt of ``PrivateKeyCiphertextBlob`` returns the same DER bytes (for ML-KEM, in the 64-byte
seed form AWS documents, see ``kmsgate.kms.kem``). The public key is DER SubjectPublicKeyInfo, as
GetPublicKey returns it; it is derived on the same thread as the private key (ML-KEM-512's
derivation is pure Python).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from kmsgate.core.errors import UnsupportedOperationError
from kmsgate.core.principal import Caller
from kmsgate.kms import asymmetric
from kmsgate.kms.keyspecs import KEY_SPECS, KeySpecInfo, generate_material
from kmsgate.kms.ops_crypto import CryptoOperations
from kmsgate.kms.results import DataKeyPairResult

# The KeyPairSpec values kmsgate makes: AWS's list less SM2 (China Regions only).
DATA_KEY_PAIR_SPECS = (
    "RSA_2048", "RSA_3072", "RSA_4096",
    "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519",
    "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024",
)


def _new_pair(spec: KeySpecInfo) -> tuple[bytes, bytes]:
    """A new (private PKCS#8 DER, public SPKI DER) pair of ``spec``. Slow: run off the event loop."""
    private_der = generate_material(spec)
    return private_der, asymmetric.public_key_der(private_der)


def data_key_pair_spec(name: str) -> KeySpecInfo:
    """The key spec a ``KeyPairSpec`` names (the service model has checked it is one of AWS's),
    or ``UnsupportedOperationException`` for one kmsgate does not make (SM2)."""
    if name not in DATA_KEY_PAIR_SPECS:
        raise UnsupportedOperationError(f"KeyPairSpec {name} is not supported by kmsgate")
    return KEY_SPECS[name]


class DataKeyPairOperations(CryptoOperations):
    async def _data_key_pair(
        self,
        caller: Caller,
        action: str,
        key_id: str,
        key_pair_spec: str,
        encryption_context: Mapping[str, str] | None,
        grant_tokens: Sequence[str],
    ) -> DataKeyPairResult:
        spec = data_key_pair_spec(key_pair_spec)
        key = await self._resolve(key_id, allow_alias=True)
        operation = action.removeprefix("kms:")
        self._authorize_use(
            caller, action, key, key_id, encryption_context, grant_tokens,
            conditions={"kms:DataKeyPairSpec": key_pair_spec},
        )
        self._require_key_usage(key, operation, "ENCRYPT_DECRYPT", symmetric=True)
        private_der, public_der = await asyncio.to_thread(_new_pair, spec)
        sealed, material = self._seal(key, private_der, encryption_context)
        self._note_use(key, operation)
        return DataKeyPairResult(
            key_id=key.arn,
            key_pair_spec=key_pair_spec,
            public_key=public_der,
            private_key_plaintext=private_der if action == "kms:GenerateDataKeyPair" else None,
            private_key_ciphertext_blob=sealed,
            key_material_id=material.material_id,
        )

    async def generate_data_key_pair(
        self,
        *,
        caller: Caller,
        key_id: str,
        key_pair_spec: str,
        encryption_context: Mapping[str, str] | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> DataKeyPairResult:
        return await self._data_key_pair(
            caller, "kms:GenerateDataKeyPair", key_id, key_pair_spec, encryption_context, grant_tokens
        )

    async def generate_data_key_pair_without_plaintext(
        self,
        *,
        caller: Caller,
        key_id: str,
        key_pair_spec: str,
        encryption_context: Mapping[str, str] | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> DataKeyPairResult:
        return await self._data_key_pair(
            caller, "kms:GenerateDataKeyPairWithoutPlaintext", key_id, key_pair_spec, encryption_context, grant_tokens
        )
