"""Chunk-signed SigV4 bodies: AWS's published example, and every way a chunk stream can be altered."""

from __future__ import annotations

import hashlib
import io

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsgate.auth.identities import AccessKey
from kmsgate.auth.sigv4 import SigV4Verifier
from kmsgate.auth.sigv4_canonical import EMPTY_SHA256, derive_signing_key, signature
from kmsgate.auth.sigv4_chunked import (
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    ChunkSignatureVerifier,
)
from kmsgate.core.errors import IncompleteSignatureError, InvalidSignatureError, KmsError
from kmsgate.core.principal import Caller
from tests.vectors.loader import load_sigv4_streaming

EXAMPLE = load_sigv4_streaming()
STAMP = EXAMPLE["headers"]["x-amz-date"]
SCOPE = f"{STAMP[:8]}/{EXAMPLE['region']}/{EXAMPLE['service']}/aws4_request"
SIGNING_KEY = derive_signing_key(EXAMPLE["credentials"]["secret_access_key"], STAMP[:8], EXAMPLE["region"],
                                 EXAMPLE["service"])
PAYLOAD = b"".join(chunk["byte"].encode() * chunk["size"] for chunk in EXAMPLE["chunks"])


class ExampleDirectory:
    """The example's one access key."""

    def lookup_access_key(self, access_key_id: str) -> tuple[ExampleDirectory, AccessKey] | None:
        credentials = EXAMPLE["credentials"]
        if access_key_id != credentials["access_key_id"]:
            return None
        return self, AccessKey(access_key_id, credentials["secret_access_key"])

    def caller(self, access_key_id: str | None = None, source_ip: str | None = None) -> Caller:
        return Caller(arn="arn:aws:iam::111122223333:user/example", account_id="111122223333",
                      access_key_id=access_key_id)


def wire(chunks: list[tuple[bytes, str]]) -> bytes:
    return b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(data), sig.encode(), data) for data, sig in chunks)


def example_chunks() -> list[tuple[bytes, str]]:
    return [(chunk["byte"].encode() * chunk["size"], chunk["signature"]) for chunk in EXAMPLE["chunks"]]


def example_verifier(**limits: int) -> ChunkSignatureVerifier:
    return ChunkSignatureVerifier(SIGNING_KEY, STAMP, SCOPE, EXAMPLE["seed_signature"], **limits)


def feed(verifier: ChunkSignatureVerifier, body: bytes, step: int | None = None) -> bytes:
    step = step or len(body) or 1
    out = b"".join(verifier.update(body[i : i + step]) for i in range(0, len(body), step))
    verifier.finalize()
    return out


def test_the_example_seed_signature_is_the_request_signature() -> None:
    headers = {**EXAMPLE["headers"], "authorization": EXAMPLE["authorization"]}
    verifier = SigV4Verifier(ExampleDirectory(), EXAMPLE["region"], "s3",  # type: ignore[arg-type]
                             lambda: 1369353600.0, allow_streaming_payload=True)
    pending = verifier.check_headers(EXAMPLE["method"], EXAMPLE["path"], "", headers)
    assert pending.declared_payload_hash == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert pending.verify_declared_payload().access_key_id == EXAMPLE["credentials"]["access_key_id"]
    chunks = pending.chunk_verifier(decoded_length=int(EXAMPLE["headers"]["x-amz-decoded-content-length"]))
    assert feed(chunks, wire(example_chunks())) == PAYLOAD
    assert len(wire(example_chunks())) == int(EXAMPLE["headers"]["content-length"])


def test_streaming_payloads_are_refused_where_not_allowed() -> None:
    headers = {**EXAMPLE["headers"], "authorization": EXAMPLE["authorization"]}
    verifier = SigV4Verifier(ExampleDirectory(), EXAMPLE["region"], "s3", lambda: 1369353600.0)  # type: ignore[arg-type]
    with pytest.raises(IncompleteSignatureError, match="Streaming"):
        verifier.check_headers(EXAMPLE["method"], EXAMPLE["path"], "", headers)


def test_each_example_chunk_signature_matches() -> None:
    previous = EXAMPLE["seed_signature"]
    for data, expected in example_chunks():
        text = (f"AWS4-HMAC-SHA256-PAYLOAD\n{STAMP}\n{SCOPE}\n{previous}\n{EMPTY_SHA256}\n"
                f"{hashlib.sha256(data).hexdigest()}")
        assert signature(SIGNING_KEY, text) == expected
        previous = expected


@settings(max_examples=50, deadline=None)
@given(step=st.integers(min_value=1, max_value=70_000))
def test_the_example_verifies_however_it_is_split(step: int) -> None:
    assert feed(example_verifier(), wire(example_chunks()), step) == PAYLOAD


def test_no_byte_of_a_chunk_is_released_before_its_signature_is_checked() -> None:
    body = wire(example_chunks())
    verifier = example_verifier()
    first_chunk_end = body.index(b"\r\n", 100) + 2
    assert verifier.update(body[: first_chunk_end - 1]) == b""
    assert verifier.update(body[first_chunk_end - 1 : first_chunk_end]) == PAYLOAD[:65536]


def test_a_flipped_data_byte_is_refused() -> None:
    body = bytearray(wire(example_chunks()))
    for position in (200, 65_600, 66_000):
        changed = bytearray(body)
        changed[position] ^= 0x01
        with pytest.raises(InvalidSignatureError):
            feed(example_verifier(), bytes(changed))


def test_a_changed_chunk_signature_is_refused() -> None:
    for index in range(3):
        chunks = example_chunks()
        data, sig = chunks[index]
        chunks[index] = (data, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
        with pytest.raises(InvalidSignatureError):
            feed(example_verifier(), wire(chunks))


def test_dropped_reordered_or_truncated_chunks_are_refused() -> None:
    chunks = example_chunks()
    with pytest.raises(InvalidSignatureError):
        feed(example_verifier(), wire([chunks[1], chunks[0], chunks[2]]))
    with pytest.raises(InvalidSignatureError):
        feed(example_verifier(), wire([chunks[0], chunks[2]]))
    with pytest.raises(IncompleteSignatureError, match="ended before"):
        feed(example_verifier(), wire(chunks[:2]))
    with pytest.raises(IncompleteSignatureError, match="ended before"):
        feed(example_verifier(), wire(chunks)[:-1])


def test_bytes_after_the_final_chunk_are_refused() -> None:
    with pytest.raises(IncompleteSignatureError, match="after the final chunk"):
        feed(example_verifier(), wire(example_chunks()) + b"x")


@pytest.mark.parametrize("body, message", [
    (b"zz;chunk-signature=" + b"0" * 64 + b"\r\n", "chunk header"),
    (b"10;chunk-signature=abc\r\n", "chunk header"),
    (b"1" * 300, "too long"),
    (b"1;chunk-signature=" + b"0" * 64 + b"\r\nxyz", "CRLF"),
])
def test_malformed_framing_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(IncompleteSignatureError, match=message):
        example_verifier().update(body)


def test_chunk_sizes_are_capped() -> None:
    with pytest.raises(IncompleteSignatureError, match="larger than 1024"):
        example_verifier(max_chunk_bytes=1024).update(wire(example_chunks())[:100])


def test_a_declared_decoded_length_must_match() -> None:
    with pytest.raises(IncompleteSignatureError, match="decoded-content-length"):
        feed(example_verifier(decoded_length=len(PAYLOAD) - 1), wire(example_chunks()))
    with pytest.raises(IncompleteSignatureError, match="decoded-content-length"):
        feed(example_verifier(decoded_length=len(PAYLOAD) + 1), wire(example_chunks()))


def test_unsigned_trailer_stream_as_botocore_frames_it() -> None:
    payload = bytes(range(256)) * 300
    framed = AwsChunkedWrapper(io.BytesIO(payload), Crc32Checksum, "x-amz-checksum-crc32", chunk_size=8192).read()
    verifier = ChunkSignatureVerifier(SIGNING_KEY, STAMP, SCOPE, "seed", mode=STREAMING_UNSIGNED_PAYLOAD_TRAILER)
    assert feed(verifier, framed, 1000) == payload
    checksum = Crc32Checksum()
    checksum.update(payload)
    assert verifier.trailers == {"x-amz-checksum-crc32": checksum.b64digest()}


def signed_trailer_stream(payload: bytes, trailer: str, seed: str) -> bytes:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER body signed as AWS's S3 reference describes."""
    out, previous = b"", seed
    for data in (payload[:4096], payload[4096:], b""):
        text = (f"AWS4-HMAC-SHA256-PAYLOAD\n{STAMP}\n{SCOPE}\n{previous}\n{EMPTY_SHA256}\n"
                f"{hashlib.sha256(data).hexdigest()}")
        previous = signature(SIGNING_KEY, text)
        out += b"%x;chunk-signature=%s\r\n" % (len(data), previous.encode()) + (data + b"\r\n" if data else b"")
    text = (f"AWS4-HMAC-SHA256-TRAILER\n{STAMP}\n{SCOPE}\n{previous}\n"
            f"{hashlib.sha256((trailer + chr(10)).encode()).hexdigest()}")
    return out + f"{trailer}\r\nx-amz-trailer-signature:{signature(SIGNING_KEY, text)}\r\n\r\n".encode()


def test_signed_trailer_stream() -> None:
    payload = b"b" * 5000
    body = signed_trailer_stream(payload, "x-amz-checksum-crc32c:sOO8/Q==", "1" * 64)
    verifier = ChunkSignatureVerifier(SIGNING_KEY, STAMP, SCOPE, "1" * 64, mode=STREAMING_PAYLOAD_TRAILER)
    assert feed(verifier, body, 333) == payload
    assert verifier.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    tampered = body.replace(b"sOO8/Q==", b"sOO8/Q=A")
    with pytest.raises(InvalidSignatureError, match="trailer"):
        feed(ChunkSignatureVerifier(SIGNING_KEY, STAMP, SCOPE, "1" * 64, mode=STREAMING_PAYLOAD_TRAILER), tampered)
    unsigned = body[: body.index(b"x-amz-trailer-signature")] + b"\r\n"
    with pytest.raises(KmsError):
        feed(ChunkSignatureVerifier(SIGNING_KEY, STAMP, SCOPE, "1" * 64, mode=STREAMING_PAYLOAD_TRAILER), unsigned)
