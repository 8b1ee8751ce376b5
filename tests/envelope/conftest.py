"""Fixtures for the envelope tests: the SDK vector loader, raw-key materials and a fake clock."""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsgate.envelope import signing
from kmsgate.envelope.context import PUBLIC_KEY_FIELD, serialize_context
from kmsgate.envelope.data_keys import EncryptedDataKey, EncryptionMaterials
from kmsgate.envelope.suites import AlgorithmSuite

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors"


def _load_vector_loader() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kmsgate_test_vectors_loader", VECTORS_DIR / "loader.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


vector_loader = _load_vector_loader()


def raw_aes_materials(suite: AlgorithmSuite, context: Mapping[str, str] | None = None) -> EncryptionMaterials:
    """Materials whose data key is wrapped the way the official SDK's raw AES master key
    does, under the test vectors' wrapping key, so the official SDK can decrypt them."""
    wrapping, _ = vector_loader.load_sdk_vectors()
    full = dict(context or {})
    signing_key = None
    if suite.signed:
        signing_key = signing.generate_signing_key()
        full[PUBLIC_KEY_FIELD] = signing.public_key_field(signing_key)
    data_key = os.urandom(32)
    iv = os.urandom(12)
    wrapped = AESGCM(wrapping.key).encrypt(iv, data_key, serialize_context(full))
    info = wrapping.key_name + struct.pack(">II", 128, 12) + iv
    edk = EncryptedDataKey(wrapping.provider_id, info, wrapped)
    return EncryptionMaterials(suite, data_key, (edk,), full, signing_key)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
