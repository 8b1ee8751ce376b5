"""Operations of asymmetric and HMAC keys: GetPublicKey, Sign, Verify, GenerateMac, VerifyMac,
DeriveSharedSecret.

Like the symmetric operations they run from memory (the private key or HMAC key is unwrapped
when the view is loaded); RSA private-key operations run in the slow-operation helpers. The
cryptography is in ``kmsgate.kms.asymmetric``, ``kmsgate.kms.macs`` and ``kmsgate.kms.agreement``;
this module authorizes, checks the key's state and usage, and records use.
"""

from __future__ import annotations

from collections.abc import Sequence

from kmsgate.core.errors import (
    InvalidKeyUsageError,
    KmsInvalidMacError,
    KmsInvalidSignatureError,
    UnsupportedOperationError,
    ValidationError,
)
from kmsgate.core.principal import Caller
from kmsgate.kms import agreement, asymmetric, macs
from kmsgate.kms.base import ServiceBase
from kmsgate.kms.keyspecs import (
    ENCAPSULATE_DECAPSULATE,
    ENCRYPT_DECRYPT,
    GENERATE_VERIFY_MAC,
    KEY_AGREEMENT,
    KEY_SPECS,
    SIGN_VERIFY,
)
from kmsgate.kms.model import KmsKey
from kmsgate.kms.results import (
    MacResult,
    PublicKeyResult,
    SharedSecretResult,
    SignResult,
    VerifyMacResult,
    VerifyResult,
)

INVALID_SIGNATURE_MESSAGE = "The signature is not valid for this message and key"
INVALID_MAC_MESSAGE = "The MAC is not valid for this message and key"


class AsymmetricOperations(ServiceBase):
    async def _use(
        self, caller: Caller, action: str, key_ref: str, grant_tokens: Sequence[str], **extra: str
    ) -> KmsKey:
        """Authorize ``action`` on the key ``key_ref`` names; it must be usable."""
        key = await self._resolve(key_ref, allow_alias=True)
        self._authorize(
            caller, action, key, grant_tokens=grant_tokens, request_alias=self._request_alias(key_ref), extra=extra
        )
        self._require_usable(key)
        return key

    async def get_public_key(
        self, *, caller: Caller, key_id: str, grant_tokens: Sequence[str] = ()
    ) -> PublicKeyResult:
        key = await self._use(caller, "kms:GetPublicKey", key_id, grant_tokens)
        spec = KEY_SPECS[key.key_spec]
        if not spec.asymmetric:
            raise UnsupportedOperationError(f"{key.arn} is not an asymmetric KMS key: it has no public key")
        algorithms = spec.algorithms[key.key_usage]
        return PublicKeyResult(
            key_id=key.arn,
            public_key=asymmetric.public_key_der(self._material(key).secret),
            key_spec=key.key_spec,
            customer_master_key_spec=key.key_spec if spec.customer_master_key_spec else None,
            key_usage=key.key_usage,
            encryption_algorithms=list(algorithms) if key.key_usage == ENCRYPT_DECRYPT else None,
            signing_algorithms=list(algorithms) if key.key_usage == SIGN_VERIFY else None,
            key_agreement_algorithms=list(algorithms) if key.key_usage == KEY_AGREEMENT else None,
            encapsulation_algorithms=list(algorithms) if key.key_usage == ENCAPSULATE_DECAPSULATE else None,
        )

    async def sign(
        self,
        *,
        caller: Caller,
        key_id: str,
        message: bytes,
        signing_algorithm: str,
        message_type: str | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> SignResult:
        kind = message_type or asymmetric.RAW
        key = await self._use(
            caller, "kms:Sign", key_id, grant_tokens,
            **{"kms:SigningAlgorithm": signing_algorithm, "kms:MessageType": kind},
        )
        self._require_signing(key, "Sign", signing_algorithm)
        private_der = self._material(key).secret
        if asymmetric.slow_private_operation(KEY_SPECS[key.key_spec]):
            signature = await self._run_slow(asymmetric.sign, private_der, signing_algorithm, message, kind)
        else:
            signature = asymmetric.sign(private_der, signing_algorithm, message, kind)
        self._note_use(key, "Sign")
        return SignResult(key_id=key.arn, signature=signature, signing_algorithm=signing_algorithm)

    async def verify(
        self,
        *,
        caller: Caller,
        key_id: str,
        message: bytes,
        signature: bytes,
        signing_algorithm: str,
        message_type: str | None = None,
        grant_tokens: Sequence[str] = (),
    ) -> VerifyResult:
        kind = message_type or asymmetric.RAW
        key = await self._use(
            caller, "kms:Verify", key_id, grant_tokens,
            **{"kms:SigningAlgorithm": signing_algorithm, "kms:MessageType": kind},
        )
        self._require_signing(key, "Verify", signing_algorithm)
        valid = asymmetric.verify(self._material(key).secret, signing_algorithm, message, kind, signature)
        if not valid:
            raise KmsInvalidSignatureError(INVALID_SIGNATURE_MESSAGE)
        self._note_use(key, "Verify")
        return VerifyResult(key_id=key.arn, signature_valid=True, signing_algorithm=signing_algorithm)

    def _require_signing(self, key: KmsKey, operation: str, signing_algorithm: str) -> None:
        self._require_key_usage(key, operation, SIGN_VERIFY)
        asymmetric.check_signing_algorithm(KEY_SPECS[key.key_spec], key.key_usage, signing_algorithm)

    async def generate_mac(
        self, *, caller: Caller, key_id: str, message: bytes, mac_algorithm: str, grant_tokens: Sequence[str] = ()
    ) -> MacResult:
        _check_mac_message(message)
        key = await self._use(caller, "kms:GenerateMac", key_id, grant_tokens, **{"kms:MacAlgorithm": mac_algorithm})
        self._require_mac(key, "GenerateMac", mac_algorithm)
        mac = macs.generate_mac(self._material(key).secret, mac_algorithm, message)
        self._note_use(key, "GenerateMac")
        return MacResult(key_id=key.arn, mac=mac, mac_algorithm=mac_algorithm)

    async def verify_mac(
        self,
        *,
        caller: Caller,
        key_id: str,
        message: bytes,
        mac_algorithm: str,
        mac: bytes,
        grant_tokens: Sequence[str] = (),
    ) -> VerifyMacResult:
        _check_mac_message(message)
        key = await self._use(caller, "kms:VerifyMac", key_id, grant_tokens, **{"kms:MacAlgorithm": mac_algorithm})
        self._require_mac(key, "VerifyMac", mac_algorithm)
        if not macs.verify_mac(self._material(key).secret, mac_algorithm, message, mac):
            raise KmsInvalidMacError(INVALID_MAC_MESSAGE)
        self._note_use(key, "VerifyMac")
        return VerifyMacResult(key_id=key.arn, mac_valid=True, mac_algorithm=mac_algorithm)

    def _require_mac(self, key: KmsKey, operation: str, mac_algorithm: str) -> None:
        self._require_key_usage(key, operation, GENERATE_VERIFY_MAC)
        offered = KEY_SPECS[key.key_spec].algorithms[GENERATE_VERIFY_MAC]
        if mac_algorithm not in offered:
            raise InvalidKeyUsageError(
                f"The MAC algorithm {mac_algorithm} is not valid for this key. Supported algorithms: {list(offered)}"
            )

    async def derive_shared_secret(
        self,
        *,
        caller: Caller,
        key_id: str,
        key_agreement_algorithm: str,
        public_key: bytes,
        grant_tokens: Sequence[str] = (),
    ) -> SharedSecretResult:
        """ECDH between the KEY_AGREEMENT key's private key and ``public_key`` (DER SPKI on its curve).

        A ``Recipient`` (Nitro attestation) is not a parameter here: the adapter answers it with
        ``UnsupportedOperationException``, as it does any parameter a method does not take.
        """
        key = await self._use(
            caller, "kms:DeriveSharedSecret", key_id, grant_tokens,
            **{"kms:KeyAgreementAlgorithm": key_agreement_algorithm},
        )
        self._require_key_usage(key, "DeriveSharedSecret", KEY_AGREEMENT)
        offered = KEY_SPECS[key.key_spec].algorithms[KEY_AGREEMENT]
        if key_agreement_algorithm not in offered:
            raise InvalidKeyUsageError(
                f"The key agreement algorithm {key_agreement_algorithm} is not valid for this key. "
                f"Supported algorithms: {list(offered)}"
            )
        secret = agreement.derive_shared_secret(self._material(key).secret, key.key_spec, public_key)
        self._note_use(key, "DeriveSharedSecret")
        return SharedSecretResult(
            key_id=key.arn, shared_secret=secret, key_agreement_algorithm=key_agreement_algorithm, key_origin=key.origin
        )


def _check_mac_message(message: bytes) -> None:
    if not 1 <= len(message) <= macs.MAX_MESSAGE_BYTES:
        raise ValidationError(f"Message must be 1 to {macs.MAX_MESSAGE_BYTES} bytes")
