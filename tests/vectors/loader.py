"""The one loader for the known-answer vectors kept in this directory.

``sdk_messages.json`` holds messages written by the official aws-encryption-sdk under
a raw AES-256 wrapping key (see generate_sdk_vectors.py). ``unwrap_data_key`` opens
such an encrypted data key: provider info = key name || tag length in bits (4 bytes)
|| IV length (4 bytes) || IV; ciphertext = wrapped key || tag; AAD = the serialized
encryption context of the message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope.context import serialize_context
from kmsgate.envelope.data_keys import EncryptedDataKey

HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class SdkVector:
    name: str
    suite_id: int
    frame_length: int
    plaintext_length: int
    plaintext_sha256: str
    encryption_context: dict[str, str]
    message_id: bytes
    message: bytes


@dataclass(frozen=True, slots=True)
class RawWrapping:
    provider_id: str
    key_name: bytes
    key: bytes

    def unwrap_data_key(self, edk: EncryptedDataKey, encryption_context: dict[str, str]) -> bytes:
        info = edk.provider_info
        if edk.provider_id != self.provider_id or not info.startswith(self.key_name):
            raise ValueError("not wrapped by this key")
        tag_bits, iv_len = struct.unpack_from(">II", info, len(self.key_name))
        if tag_bits != 128 or iv_len != 12:
            raise ValueError("unexpected wrapping parameters")
        iv = info[len(self.key_name) + 8 :]
        return AESGCM(self.key).decrypt(iv, edk.ciphertext, serialize_context(encryption_context))


def load_sdk_vectors() -> tuple[RawWrapping, list[SdkVector]]:
    doc: dict[str, Any] = json.loads((HERE / "sdk_messages.json").read_text())
    wrap = doc["wrapping"]
    wrapping = RawWrapping(wrap["provider_id"], wrap["key_name"].encode(), base64.b64decode(wrap["key"]))
    vectors = [
        SdkVector(
            name=v["name"], suite_id=v["suite_id"], frame_length=v["frame_length"],
            plaintext_length=v["plaintext_length"], plaintext_sha256=v["plaintext_sha256"],
            encryption_context=v["encryption_context"], message_id=base64.b64decode(v["message_id"]),
            message=base64.b64decode(v["message"]),
        )
        for v in doc["vectors"]
    ]
    return wrapping, vectors


def plaintext_of(length: int) -> bytes:
    """The deterministic plaintext the generator encrypted (must match it)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:length])


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as written in the SigV4 suite: the target as sent, headers in order, the body."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Sigv4Signed:
    """One signed form of a case (``header`` or ``query``) and what a verifier must derive from it."""

    request: HttpRequest
    canonical_request: str
    string_to_sign: str
    signature: str


@dataclass(frozen=True, slots=True)
class Sigv4Case:
    name: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    region: str
    service: str
    timestamp: float
    normalize: bool
    expires_seconds: int
    unsigned: HttpRequest
    header: Sigv4Signed
    query: Sigv4Signed


def parse_http_request(text: str) -> HttpRequest:
    """The suite's request format: request line, ``Name:value`` lines (indented lines continue
    the previous value), an empty line, the body."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    request_line = lines[0]
    method = request_line[: request_line.index(" ")]
    target = request_line[len(method) + 1 : request_line.rindex(" ")]  # may hold spaces (get-space-*)
    headers: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            headers[-1][1] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        headers.append([name, value])
    path, _, query = target.partition("?")
    return HttpRequest(method, path, query, tuple((n, v) for n, v in headers), body.encode())


def load_sigv4_cases() -> list[Sigv4Case]:
    import datetime

    cases = []
    for folder in sorted(p for p in (HERE / "sigv4").iterdir() if p.is_dir()):
        context: dict[str, Any] = json.loads((folder / "context.json").read_text())
        credentials = context["credentials"]
        stamp = datetime.datetime.strptime(context["timestamp"], "%Y-%m-%dT%H:%M:%SZ")

        def signed(form: str, folder: Path = folder) -> Sigv4Signed:
            return Sigv4Signed(
                parse_http_request((folder / f"{form}-signed-request.txt").read_text()),
                (folder / f"{form}-canonical-request.txt").read_text(),
                (folder / f"{form}-string-to-sign.txt").read_text(),
                (folder / f"{form}-signature.txt").read_text().strip(),
            )

        cases.append(Sigv4Case(
            name=folder.name, access_key_id=credentials["access_key_id"],
            secret_access_key=credentials["secret_access_key"], session_token=credentials.get("token"),
            region=context["region"], service=context["service"],
            timestamp=stamp.replace(tzinfo=datetime.timezone.utc).timestamp(), normalize=context["normalize"],
            expires_seconds=context["expiration_in_seconds"],
            unsigned=parse_http_request((folder / "request.txt").read_text()),
            header=signed("header"), query=signed("query"),
        ))
    return cases


def load_sigv4_streaming() -> dict[str, Any]:
    """The chunked-upload example of AWS's S3 API reference (see ``sigv4-streaming.json``)."""
    document: dict[str, Any] = json.loads((HERE / "sigv4-streaming.json").read_text())
    return document


# -- asymmetric and HMAC KMS keys (kms_asymmetric.json; sources and licences in its "sources") --


@dataclass(frozen=True, slots=True)
class MacVector:
    name: str
    key: bytes
    data: bytes
    macs: dict[str, bytes]  # MacAlgorithm (HMAC_SHA_256...) -> expected MAC


@dataclass(frozen=True, slots=True)
class SignatureVector:
    name: str
    private_key_pkcs8: bytes
    public_key_raw: bytes | None  # Ed25519's 32 bytes; None where the vector gives none
    message: bytes
    signature: bytes


def _kms_asymmetric() -> dict[str, Any]:
    return json.loads((HERE / "kms_asymmetric.json").read_text())  # type: ignore[no-any-return]


def load_hmac_vectors() -> list[MacVector]:
    return [
        MacVector(
            v["name"],
            bytes.fromhex(v["key"]),
            bytes.fromhex(v["data"]),
            {name: bytes.fromhex(v[name]) for name in v if name.startswith("HMAC_")},
        )
        for v in _kms_asymmetric()["hmac_rfc4231"]
    ]


def _ed25519_pkcs8(seed: bytes) -> bytes:
    """RFC 8410 PKCS#8 for an Ed25519 seed: the fixed 16-byte prefix, then the seed."""
    return bytes.fromhex("302e020100300506032b657004220420") + seed


def load_ed25519_vectors(prehashed: bool = False) -> list[SignatureVector]:
    """RFC 8032's Ed25519 (section 7.1) or Ed25519ph (section 7.3) vectors; ``message`` is the raw message."""
    return [
        SignatureVector(
            v["name"],
            _ed25519_pkcs8(bytes.fromhex(v["seed"])),
            bytes.fromhex(v["public"]),
            bytes.fromhex(v["message"]),
            bytes.fromhex(v["signature"]),
        )
        for v in _kms_asymmetric()["ed25519ph_rfc8032" if prehashed else "ed25519_rfc8032"]
    ]


def load_rsa_pkcs1_vectors() -> list[SignatureVector]:
    """Wycheproof RSASSA-PKCS1-v1_5 generation vectors: RSA_2048, SHA-256."""
    group = _kms_asymmetric()["rsa_pkcs1_v1_5_wycheproof"]
    key = bytes.fromhex(group["private_key_pkcs8"])
    return [
        SignatureVector(f"wycheproof tcId {t['tcId']}", key, None, bytes.fromhex(t["message"]),
                        bytes.fromhex(t["signature"]))
        for t in group["tests"]
    ]


@dataclass(frozen=True, slots=True)
class MlKemKeyGenVector:
    """FIPS 203 ML-KEM.KeyGen_internal(d, z): the seed d || z gives ``ek`` (and, where kept, expanded ``dk``)."""

    key_spec: str  # ML_KEM_512, ML_KEM_768, ML_KEM_1024
    tc_id: int
    seed: bytes
    ek: bytes
    dk: bytes | None


@dataclass(frozen=True, slots=True)
class MlKemDecapsulationVector:
    """FIPS 203 ML-KEM.Decaps(dk, c) = k, ``dk`` in its expanded form."""

    key_spec: str
    tg_id: int
    tc_id: int
    dk: bytes
    c: bytes
    k: bytes
    reason: str | None


def _ml_kem_spec(parameter_set: str) -> str:
    return parameter_set.replace("-", "_")  # ML-KEM-512 -> ML_KEM_512


def load_ml_kem_vectors() -> tuple[list[MlKemKeyGenVector], list[MlKemDecapsulationVector]]:
    """NIST's ACVP ML-KEM vectors kept in ``mlkem/`` (see its README)."""
    doc: dict[str, Any] = json.loads((HERE / "mlkem" / "acvp_ml_kem.json").read_text())
    key_gen = [
        MlKemKeyGenVector(
            _ml_kem_spec(case["parameterSet"]), case["tcId"], bytes.fromhex(case["d"] + case["z"]),
            bytes.fromhex(case["ek"]), bytes.fromhex(case["dk"]) if "dk" in case else None,
        )
        for case in doc["keyGen"]
    ]
    decapsulation = [
        MlKemDecapsulationVector(
            _ml_kem_spec(case["parameterSet"]), case["tgId"], case["tcId"], bytes.fromhex(case["dk"]),
            bytes.fromhex(case["c"]), bytes.fromhex(case["k"]), case.get("reason"),
        )
        for case in doc["decapsulation"]
    ]
    return key_gen, decapsulation
