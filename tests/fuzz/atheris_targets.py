"""Coverage-guided fuzz targets (atheris/libFuzzer) for kmsgate's pure parsers: one function per target.

Each target takes libFuzzer's bytes and returns quietly unless it finds a defect, which it raises as
an ``AssertionError`` (or any other exception the code under test lets out); libFuzzer then writes
the input as a reproducer. ``tests/fuzz/atheris_runner.py`` runs one target in a subprocess, and
``tests/fuzz/test_atheris.py`` drives the runner from pytest. Nothing here imports atheris, so a
reproducer can be replayed without it: ``TARGETS[name].run(path.read_bytes())``.

The targets and what they hold to:

- ``message``: the Encryption SDK message parser and decryptor, fed mutations of real messages of
  every suite (``corpus/message``). Only ``DecryptionError`` comes out; what is released is a prefix
  of the true plaintext even though the right data key is handed over whenever the header still
  names a known message; a message that decrypts without error is byte for byte a seed; and the
  peak of Python allocations (``tracemalloc``) stays under a ceiling in proportion to the input, not
  to any length or count the message claims.
- ``blob``: the KMS ciphertext blob (``read_header``, ``open_blob``): only ``InvalidCiphertextError``,
  and only an unchanged seed blob opens, to its own plaintext.
- ``sigv4_authorization``: the ``Authorization`` header parser: a claim, or ``IncompleteSignatureError``.
- ``sigv4_query``: request targets, query strings and presigned-URL parameters: ``ClientError`` only.
- ``sigv4_chunked``: ``aws-chunked`` framing under the chunk verifier (first byte: the streaming
  mode and how the body is split): only ``IncompleteSignatureError`` or ``InvalidSignatureError``,
  and under a signed mode nothing but the payload of a seed is ever released.
- ``kms_json``: the KMS adapter's request path in-process (``KmsApi.respond``: operation from
  ``X-Amz-Target``, JSON decoding, validation against the service model, required and accepted
  arguments), over a service that records its calls. Input: ``<Operation>\\n<body>`` for any operation
  of the service model. Always a 2xx or a 4xx in the AWS shape ``{"__type", "message"}``; a request
  that reaches the service binds to the real ``KmsService`` method's signature.
"""

from __future__ import annotations

import inspect
import json
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kmsgate.auth.sigv4_authorization import is_presigned, parse_authorization, parse_presigned
from kmsgate.auth.sigv4_canonical import check_request_target, query_pairs
from kmsgate.auth.sigv4_chunked import SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER, \
    ChunkSignatureVerifier
from kmsgate.core.errors import ClientError, IncompleteSignatureError, InvalidCiphertextError, InvalidSignatureError
from kmsgate.core.principal import account_root
from kmsgate.envelope import DecryptionError, Decryptor, parse_header
from kmsgate.envelope.header import DecryptPolicy
from kmsgate.kms import blob
from kmsgate.kms.service import KmsService
from kmsgate.web import awsjson
from kmsgate.web.exchange import Exchange
from kmsgate.web.kms_api import KmsApi, TrustingAuthenticator
from tests.envelope.conftest import vector_loader

CORPUS = Path(__file__).parent / "corpus"
REGRESSION_PREFIX = "regression-"  # a reproducer of a defect found, kept among the seeds

# -- shared test keys (test material only: these bytes protect nothing) ----------------------------

BLOB_MATERIAL = bytes(range(32))
BLOB_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
BLOB_CONTEXT = b'{"purpose":"fuzz"}'
CHUNK_SIGNING_KEY = b"k" * 32
CHUNK_STAMP = "20150830T123600Z"
CHUNK_SCOPE = "20150830/us-east-1/s3/aws4_request"
CHUNK_SEED_SIGNATURE = "0" * 64
ALLOW_LEGACY = DecryptPolicy(allow_non_committing=True)  # the SDK's vectors include non-committing suites
CHUNKED_MODES = (*SIGNED_STREAMING_PAYLOADS, STREAMING_UNSIGNED_PAYLOAD_TRAILER)


@dataclass(frozen=True)
class Target:
    """A fuzz target: ``setup`` (loads what it compares against) once, then ``run`` per input."""

    name: str
    setup: Callable[[], None]
    run: Callable[[bytes], None]


def seeds(target: str) -> list[bytes]:
    """The target's seeds as made by ``make_corpus``: what the target compares its inputs against
    (the ``regression-*`` reproducers among them are inputs, not references)."""
    return [path.read_bytes() for path in sorted((CORPUS / target).iterdir())
            if path.is_file() and not path.name.startswith(REGRESSION_PREFIX)]


# -- the Encryption SDK message parser and decryptor ----------------------------------------------

MEMORY_CEILING_BYTES = 64 * 1024  # plus MEMORY_BYTES_PER_INPUT_BYTE per byte of input (seeds peak at 3 per byte + 3 KiB)
MEMORY_BYTES_PER_INPUT_BYTE = 8


@dataclass(frozen=True)
class _Message:
    message: bytes
    data_key: bytes
    plaintext: bytes


@cache
def _messages() -> dict[bytes, _Message]:
    """The seed messages by message id, each with its data key (unwrapped with the test vectors'
    wrapping key) and the plaintext it decrypts to."""
    wrapping, _ = vector_loader.load_sdk_vectors()
    known: dict[bytes, _Message] = {}
    for message in seeds("message"):
        header, _ = parse_header(message, ALLOW_LEGACY)
        assert header is not None
        data_key = wrapping.unwrap_data_key(header.encrypted_data_keys[0], dict(header.encryption_context))
        decryptor = Decryptor(ALLOW_LEGACY)
        plaintext = bytes(decryptor.update(message))
        decryptor.set_data_key(data_key)
        plaintext += decryptor.update(b"") + decryptor.finalize()
        known[header.message_id] = _Message(message, data_key, plaintext)
    return known




def _decrypt(data: bytes, known: _Message | None) -> tuple[bytes, Exception | None]:
    decryptor = Decryptor(ALLOW_LEGACY)
    released = bytearray()
    # Two pieces, cut where the input says, so that both the buffering and the one-shot paths run.
    cut = data[-1] * len(data) // 256 if data else 0
    try:
        released += decryptor.update(data[:cut])
        for piece in (data[cut:], b""):
            if decryptor.needs_data_key:
                decryptor.set_data_key(known.data_key if known is not None else bytes(32))
            released += decryptor.update(piece)
        released += decryptor.finalize()
    except DecryptionError as exc:
        return bytes(released), exc
    return bytes(released), None


def run_message(data: bytes) -> None:
    known = None
    try:
        header, _ = parse_header(data, ALLOW_LEGACY)
    except DecryptionError:
        header = None
    if header is not None:
        known = _messages().get(header.message_id)
    started = not tracemalloc.is_tracing()  # traced for this input only: nothing else is left tracing
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        released, error = _decrypt(data, known)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()
    ceiling = MEMORY_CEILING_BYTES + MEMORY_BYTES_PER_INPUT_BYTE * len(data)
    assert peak <= ceiling, f"decrypting {len(data)} bytes allocated {peak} bytes at its peak"
    if known is None:
        assert released == b"" and error is not None, "a message of no known key released plaintext"
        return
    assert known.plaintext.startswith(released), "released bytes that are not a prefix of the plaintext"
    if error is None:
        assert data == known.message, "a changed message decrypted without error"


# -- the KMS ciphertext blob ---------------------------------------------------------------------


@cache
def _blobs() -> dict[bytes, bytes]:
    return {sealed: blob.open_blob(BLOB_MATERIAL, sealed, BLOB_CONTEXT) for sealed in seeds("blob")}


def run_blob(data: bytes) -> None:
    try:
        header = blob.read_header(data)
        opened = blob.open_blob(BLOB_MATERIAL, data, BLOB_CONTEXT)
    except InvalidCiphertextError:
        return
    assert data in _blobs(), "a changed blob opened"
    assert opened == _blobs()[data] and header.key_id == BLOB_KEY_ID


# -- SigV4 ---------------------------------------------------------------------------------------


def run_sigv4_authorization(data: bytes) -> None:
    try:
        claim = parse_authorization(data.decode("utf-8", "surrogateescape"))
    except IncompleteSignatureError:
        return
    assert claim.signature, "a claim with an empty signature"


def run_sigv4_query(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    path, _, query = text.partition("?")
    try:
        check_request_target(path or "/", query)
        pairs = query_pairs(query)
    except ClientError:
        return
    if is_presigned(pairs):
        try:
            parse_presigned(pairs)
        except ClientError:
            pass


@cache
def _chunked_payloads() -> frozenset[bytes]:
    """What each signed seed body carries (the verifier itself decodes them)."""
    payloads = set()
    for body in seeds("sigv4_chunked"):
        payload, error = _verify_chunked(body)
        assert error is None, error
        payloads.add(payload)
    return frozenset(payloads)


def _verify_chunked(data: bytes) -> tuple[bytes, Exception | None]:
    if not data:
        return b"", ValueError("empty input")
    modes = CHUNKED_MODES
    mode = modes[data[0] % len(modes)]
    piece = data[0] // len(modes) + 1  # fed in pieces of 1 to 86 bytes
    body = data[1:]
    verifier = ChunkSignatureVerifier(CHUNK_SIGNING_KEY, CHUNK_STAMP, CHUNK_SCOPE, CHUNK_SEED_SIGNATURE, mode=mode)
    released = bytearray()
    try:
        for start in range(0, len(body), piece):
            released += verifier.update(body[start:start + piece])
        verifier.finalize()
    except (IncompleteSignatureError, InvalidSignatureError) as exc:
        return bytes(released), exc
    return bytes(released), None


def run_sigv4_chunked(data: bytes) -> None:
    payload, error = _verify_chunked(data)
    if not data or CHUNKED_MODES[data[0] % len(CHUNKED_MODES)] == STREAMING_UNSIGNED_PAYLOAD_TRAILER:
        return
    if error is None:
        assert payload in _chunked_payloads(), "a body no one signed verified"
    else:
        assert any(known.startswith(payload) for known in _chunked_payloads()), "released unsigned bytes"


# -- KMS JSON requests, in-process ---------------------------------------------------------------


class _Request:
    """What ``KmsApi.respond`` reads of an aiohttp request: the headers and the peer address."""

    def __init__(self, target: str) -> None:
        self.headers = {"X-Amz-Target": target}
        self.remote = "127.0.0.1"


class _RecordingService:
    """Stands in for ``KmsService``: for every operation the real service implements, a coroutine
    with the real method's signature that records the arguments it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.signatures: dict[str, inspect.Signature] = {}
        for operation in awsjson.service_model().operation_names:
            name = awsjson.snake_case(operation)
            real = getattr(KmsService, name, None)
            if real is None or not inspect.iscoroutinefunction(real):
                continue
            signature = inspect.signature(real)
            bound_signature = signature.replace(parameters=list(signature.parameters.values())[1:])
            self.signatures[name] = bound_signature
            setattr(self, name, self._recorder(name, bound_signature))

    def _recorder(self, name: str, signature: inspect.Signature) -> Callable[..., Any]:
        async def record(**kwargs: Any) -> None:
            self.calls.append((name, kwargs))

        record.__signature__ = signature  # type: ignore[attr-defined]
        return record


@cache
def _kms_api() -> tuple[Any, _RecordingService]:
    service = _RecordingService()
    return KmsApi(service, TrustingAuthenticator("111122223333")), service


def run_kms_json(data: bytes) -> None:
    api, service = _kms_api()
    operation, _, body = data.partition(b"\n")
    exchange = Exchange(authenticated=account_root("111122223333"), body=body)
    service.calls.clear()
    coroutine = api.respond(_Request("TrentService." + operation.decode("utf-8", "surrogateescape")), exchange)
    try:
        coroutine.send(None)
    except StopIteration as done:
        response = done.value
    else:
        coroutine.close()
        raise AssertionError("the request path awaited something other than the service")
    status, answer = response.status, response.body
    assert status < 500, (status, answer)
    if service.calls:
        assert status == 200, (status, answer)
        (name, kwargs), = service.calls
        service.signatures[name].bind(**kwargs)
        assert kwargs["caller"] == exchange.caller
        return
    assert 400 <= status < 500, (status, answer)
    document = json.loads(answer)
    assert set(document) == {"__type", "message"}, document
    assert isinstance(document["__type"], str) and document["__type"], document
    assert isinstance(document["message"], str), document


TARGETS = {target.name: target for target in (
    Target("message", _messages, run_message),
    Target("blob", _blobs, run_blob),
    Target("sigv4_authorization", lambda: None, run_sigv4_authorization),
    Target("sigv4_query", lambda: None, run_sigv4_query),
    Target("sigv4_chunked", _chunked_payloads, run_sigv4_chunked),
    Target("kms_json", _kms_api, run_kms_json),
)}
