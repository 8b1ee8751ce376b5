"""Writes the seed corpora of the atheris targets (``tests/fuzz/corpus/<target>/``).

Run from the repository root: ``.venv/bin/python -m tests.fuzz.make_corpus``. Every key used is a
test key (the SDK vectors' wrapping key, the fixed ``BLOB_MATERIAL`` and ``CHUNK_SIGNING_KEY`` of
``atheris_targets``); the data keys and nonces are fresh on every run, so rerunning rewrites the
message and blob seeds with equivalent ones. The corpora are small on purpose: libFuzzer grows its
own working corpus from them in a temporary directory during a run. Files named
``regression-*`` are reproducers of defects the fuzzers found, kept by hand; this script leaves them.

- ``message``: the official SDK's messages of every suite kmsgate reads (``tests/vectors``), and
  kmsgate's own messages of both suites it writes, with 64-byte frames (several regular frames).
- ``blob``: ciphertext blobs of 0, 1, 32 and 4096 bytes of plaintext, under two material versions.
- ``sigv4_authorization``, ``sigv4_query``: well-formed headers, paths and presigned queries.
- ``sigv4_chunked``: correctly signed ``aws-chunked`` bodies of each streaming mode (first byte: mode).
- ``kms_json``: ``<Operation>\\n<body>`` for every request of the loopback seed corpus
  (``corpus/kms/<Operation>.<name>.json``), whatever operations the service model has.
"""

from __future__ import annotations

import hashlib

from kmsgate.auth.sigv4_canonical import EMPTY_SHA256, signature
from kmsgate.envelope.suites import AES_256_GCM_HKDF_SHA512_COMMIT_KEY, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
from kmsgate.kms import blob
from tests.envelope.conftest import raw_aes_materials, vector_loader
from tests.envelope.helpers import encrypt_chunks
from tests.fuzz.atheris_targets import (
    BLOB_CONTEXT,
    BLOB_KEY_ID,
    BLOB_MATERIAL,
    CHUNK_SCOPE,
    CHUNK_SEED_SIGNATURE,
    CHUNK_SIGNING_KEY,
    CHUNK_STAMP,
    CHUNKED_MODES,
    CORPUS,
    REGRESSION_PREFIX,
)

AUTHORIZATIONS = [
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "a" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIAKMSGATETEST00001/20150830/us-east-1/s3/aws4_request,"
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=" + "0123456789abcdef" * 4,
    "AWS4-HMAC-SHA256 Signature=" + "b" * 64 + ", SignedHeaders=host, Credential=AKID/20150830/eu-west-1/kms/aws4_request",
]
PRESIGNED_QUERY = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs3%2F"
                   "aws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&"
                   "X-Amz-Signature=" + "a" * 64)
QUERIES = [
    "/bucket/object?" + PRESIGNED_QUERY,
    "/?" + PRESIGNED_QUERY.replace("60", "604800"),
    "/bucket/a%20b/..%2Fc?list-type=2&prefix=a%2Fb&max-keys=10",
    "/v1/objects/x?uploads",
    "/",
]


def _chunk_signature(previous: str, data: bytes) -> str:
    return signature(CHUNK_SIGNING_KEY, f"AWS4-HMAC-SHA256-PAYLOAD\n{CHUNK_STAMP}\n{CHUNK_SCOPE}\n{previous}\n"
                                        f"{EMPTY_SHA256}\n{hashlib.sha256(data).hexdigest()}")


def chunked_body(mode: str, chunks: list[bytes], trailers: dict[str, str]) -> bytes:
    """A body the verifier accepts under ``mode``, signed with the targets' test signing key."""
    signed = mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    trailing = mode != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    previous = CHUNK_SEED_SIGNATURE
    out = bytearray()
    for data in [*chunks, b""]:
        if signed:
            previous = _chunk_signature(previous, data)
            out += f"{len(data):x};chunk-signature={previous}\r\n".encode()
        else:
            out += f"{len(data):x}\r\n".encode()
        if data or not trailing:
            out += data + b"\r\n"
    if trailing:
        for name, value in trailers.items():
            out += f"{name}:{value}\r\n".encode()
        if signed:
            listed = "".join(f"{name}:{value}\n" for name, value in trailers.items())
            claim = signature(CHUNK_SIGNING_KEY, f"AWS4-HMAC-SHA256-TRAILER\n{CHUNK_STAMP}\n{CHUNK_SCOPE}\n{previous}\n"
                                                 f"{hashlib.sha256(listed.encode()).hexdigest()}")
            out += f"x-amz-trailer-signature:{claim}\r\n".encode()
        out += b"\r\n"
    return bytes(out)


def corpora() -> dict[str, dict[str, bytes]]:
    """Each target's seeds, by file name."""
    _, vectors = vector_loader.load_sdk_vectors()
    messages = {f"sdk-{vector.name}.bin": vector.message for vector in vectors}
    for suite in (AES_256_GCM_HKDF_SHA512_COMMIT_KEY, AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384):
        materials = raw_aes_materials(suite, {"tenant": "fuzz"})
        messages[f"kmsgate-{suite.suite_id:04x}-frames-of-64.bin"] = encrypt_chunks(materials, [bytes(range(200))], 64)
    blobs = {f"v{version}-{size}.bin": blob.seal(BLOB_MATERIAL, BLOB_KEY_ID, version, bytes(size), BLOB_CONTEXT)
             for version in (1, 7) for size in (0, 1, 32, 4096)}
    chunked = {}
    for index, mode in enumerate(CHUNKED_MODES):
        for piece in (0, 7):  # the first byte also sets the size of the pieces the body is fed in
            body = chunked_body(mode, [b"hello ", b"world" * 20], {"x-amz-checksum-crc32": "AAAAAA=="})
            chunked[f"{mode.lower()}-{piece + 1}.bin"] = bytes([index + piece * len(CHUNKED_MODES)]) + body
    kms_json = {path.name: path.name.split(".")[0].encode() + b"\n" + path.read_bytes()
                for path in sorted((CORPUS / "kms").glob("*.json"))}
    return {
        "message": messages,
        "blob": blobs,
        "sigv4_authorization": {f"authorization-{i}.txt": text.encode() for i, text in enumerate(AUTHORIZATIONS)},
        "sigv4_query": {f"target-{i}.txt": text.encode() for i, text in enumerate(QUERIES)},
        "sigv4_chunked": chunked,
        "kms_json": kms_json,
    }


def main() -> None:
    for target, files in corpora().items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if not old.name.startswith(REGRESSION_PREFIX):
                old.unlink()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(files)} seeds")


if __name__ == "__main__":
    main()
