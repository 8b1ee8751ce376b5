"""Small helpers shared by the envelope tests (no fixtures here)."""

from __future__ import annotations

from collections.abc import Iterable

from kmsgate.envelope.data_keys import EncryptionMaterials
from kmsgate.envelope.decryptor import Decryptor
from kmsgate.envelope.encryptor import Encryptor
from kmsgate.envelope.header import DecryptPolicy


def encrypt_chunks(materials: EncryptionMaterials, chunks: Iterable[bytes], frame_length: int) -> bytes:
    encryptor = Encryptor(materials, frame_length=frame_length)
    out = bytearray()
    for chunk in chunks:
        out += encryptor.update(chunk)
    out += encryptor.finalize()
    return bytes(out)


def decrypt_chunks(data_key: bytes, chunks: Iterable[bytes], policy: DecryptPolicy | None = None) -> bytes:
    decryptor = Decryptor(policy)
    out = bytearray()
    for chunk in chunks:
        out += decryptor.update(chunk)
        if decryptor.needs_data_key:
            decryptor.set_data_key(data_key)
    if decryptor.needs_data_key:
        decryptor.set_data_key(data_key)
    out += decryptor.finalize()
    return bytes(out)


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces
