"""Helpers shared by the KMS tests: wrapping key material for import the way AWS documents it."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

REGION = "us-east-1"
ACCOUNT_ID = "111122223333"
WRAPPING_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256")


def _oaep(digest: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)


def wrap_key_material(public_key_der: bytes, material: bytes, wrapping_algorithm: str) -> bytes:
    """Encrypt ``material`` under the wrapping public key as a customer does before ImportKeyMaterial.

    RSAES_OAEP_SHA_1/256 encrypt the material directly; RSA_AES_KEY_WRAP_SHA_256 encrypts a fresh
    AES-256 key with RSA-OAEP-SHA-256 and appends the material wrapped under it (RFC 5649).
    """
    public_key = serialization.load_der_public_key(public_key_der)
    assert isinstance(public_key, rsa.RSAPublicKey)
    if wrapping_algorithm == "RSAES_OAEP_SHA_1":
        return public_key.encrypt(material, _oaep(hashes.SHA1()))
    if wrapping_algorithm == "RSAES_OAEP_SHA_256":
        return public_key.encrypt(material, _oaep(hashes.SHA256()))
    if wrapping_algorithm == "RSA_AES_KEY_WRAP_SHA_256":
        aes_key = os.urandom(32)
        return public_key.encrypt(aes_key, _oaep(hashes.SHA256())) + aes_key_wrap_with_padding(aes_key, material)
    raise ValueError(wrapping_algorithm)


def tampered(blob: bytes):  # type: ignore[no-untyped-def]
    """Every single-byte change, every truncation and one extension of ``blob``."""
    for index in range(len(blob)):
        for mask in (0x01, 0x80):
            changed = bytearray(blob)
            changed[index] ^= mask
            yield f"flip byte {index} mask {mask:#x}", bytes(changed)
    for length in range(len(blob)):
        yield f"truncate to {length}", blob[:length]
    yield "extend by one byte", blob + b"\x00"


def _in_pieces(body: bytes, pieces: int, pause_s: float) -> Iterator[bytes]:
    step = -(-len(body) // pieces)
    for start in range(0, len(body), step):
        if start:
            time.sleep(pause_s)  # the server has read what came before by now
        yield body[start : start + step]


def signed_headers(server: Any, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus a SigV4 signature of ``POST /`` with ``body``, as any AWS client signs it."""
    request = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body, headers=headers)
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    SigV4Auth(credentials, "kms", server.region).add_auth(request)
    return dict(request.headers.items())


def signed_post(
    server: Any, body: bytes, target: str | None, *, content_type: str = "application/x-amz-json-1.1", conn: Any = None,
    pieces: int = 1,
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the server's KMS endpoint, SigV4-signed like any AWS client, over one connection.

    With ``pieces`` > 1 the body goes out in that many writes 0.2 s apart, as a slow network
    delivers it. Returns the status and the decoded JSON body (``{}`` if the body is not JSON).
    """
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body, headers=headers)
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    SigV4Auth(credentials, "kms", server.region).add_auth(request)
    own = conn is None
    connection = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent: bytes | Iterator[bytes] = body if pieces <= 1 else _in_pieces(body, pieces, 0.2)
        connection.request("POST", "/", body=sent, headers={**dict(request.headers.items()),
                                                           "Content-Length": str(len(body))})
        response = connection.getresponse()
        raw = response.read()
    finally:
        if own:
            connection.close()
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        document = {}
    return response.status, document
