"""Ed25519ph (RFC 8032, section 5.1, ``phflag`` = 1, empty context) over a 64-byte SHA-512 prehash.

pyca/cryptography offers only pure Ed25519, so the prehashed variant AWS calls
``ED25519_PH_SHA_512`` is computed here, following the RFC's reference code (section 6) in
extended twisted Edwards coordinates. Pure and deterministic; the key is the 32-byte seed of
the same Ed25519 private key that pure Ed25519 signs with.

Timing: Python integers are not constant-time. The signing key is kmsgate's own, used only by
callers allowed ``kms:Sign``; verification handles public values only.
"""

from __future__ import annotations

import hashlib

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_Q = 2**252 + 27742317777372353535851937790883648493  # the group order L
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_DOM2 = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])  # phflag 1, empty context
PREHASH_BYTES = 64  # SHA-512 output

_Point = tuple[int, int, int, int]


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    big_a = (y1 - x1) * (y2 - x2) % _P
    big_b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = big_b - big_a, d - c, d + c, big_b + big_a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _mul(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a: _Point, b: _Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0) or 0
_G: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(point: _Point) -> bytes:
    z_inverse = pow(point[2], _P - 2, _P)
    x, y = point[0] * z_inverse % _P, point[1] * z_inverse % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decompress(encoded: bytes) -> _Point | None:
    if len(encoded) != 32:
        return None
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _hash_to_scalar(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % _Q


def _expand(seed: bytes) -> tuple[int, bytes]:
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    return scalar, digest[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 seed."""
    scalar, _prefix = _expand(seed)
    return _compress(_mul(scalar, _G))


def sign(seed: bytes, prehash: bytes) -> bytes:
    """The 64-byte Ed25519ph signature of ``prehash`` (SHA-512 of the message)."""
    scalar, prefix = _expand(seed)
    public = _compress(_mul(scalar, _G))
    r = _hash_to_scalar(_DOM2 + prefix + prehash)
    encoded_r = _compress(_mul(r, _G))
    k = _hash_to_scalar(_DOM2 + encoded_r + public + prehash)
    return encoded_r + int.to_bytes((r + k * scalar) % _Q, 32, "little")


def verify(public: bytes, prehash: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519ph signature of ``prehash`` under ``public``."""
    if len(public) != 32 or len(signature) != 64:
        return False
    point_a = _decompress(public)
    point_r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if point_a is None or point_r is None or s >= _Q:
        return False
    k = _hash_to_scalar(_DOM2 + signature[:32] + public + prehash)
    return _equal(_mul(s, _G), _add(point_r, _mul(k, point_a)))
