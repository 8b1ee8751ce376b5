"""AWS KMS JSON 1.1 requests for the load generator: built, SigV4-signed once, replayed.

A KMS request is ``POST /`` with ``Content-Type: application/x-amz-json-1.1``,
``X-Amz-Target: TrentService.<Operation>`` and a JSON body. Signing costs the client
about as much as a request, so each run signs a request once (botocore's ``SigV4Auth``)
just before the run and the load generator replays the same bytes; the signature stays
valid for the server's clock-skew window, far longer than a run. Unsigned templates
are used against servers started with ``--insecure-no-auth``.

A reply counts as a real KMS reply only when it is HTTP 200 JSON with the fields the
operation returns; anything else (for instance the ListBuckets XML an S3-shaped server
answers to an unsigned POST) is rejected before timing and counted as an error during it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.loadgen import RequestTemplate

REGION = "us-east-1"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
ENCRYPT_PLAINTEXT_BYTES = 1024

REPLY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "GenerateDataKey": ("CiphertextBlob", "Plaintext", "KeyId"),
    "Encrypt": ("CiphertextBlob", "KeyId"),
    "Decrypt": ("Plaintext", "KeyId"),
    "CreateKey": ("KeyMetadata",),
}
REPLY_MARKER: Mapping[str, bytes] = {
    "GenerateDataKey": b'"CiphertextBlob"',
    "Encrypt": b'"CiphertextBlob"',
    "Decrypt": b'"Plaintext"',
}


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key=***)"


class NotKmsReplyError(RuntimeError):
    """A server answered a KMS request with something that is not a KMS reply."""


def kms_request(
    url: str, operation: str, payload: Mapping[str, Any], credentials: Credentials | None
) -> RequestTemplate:
    """A ``POST /`` template for ``operation``, SigV4-signed when ``credentials`` are given."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    parts = urlsplit(url)
    headers = {
        "Host": parts.netloc,
        "Content-Type": JSON_CONTENT_TYPE,
        "X-Amz-Target": f"TrentService.{operation}",
    }
    if credentials is not None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials

        request = AWSRequest(method="POST", url=url.rstrip("/") + "/", data=body, headers=headers)
        SigV4Auth(
            BotoCredentials(credentials.access_key_id, credentials.secret_access_key), "kms", REGION
        ).add_auth(request)
        headers = {k: str(v) for k, v in request.headers.items()}
    return RequestTemplate("POST", "/", tuple(headers.items()), body)


def send_once(url: str, template: RequestTemplate, timeout_s: float = 30.0) -> tuple[int, bytes]:
    """Send one template with the standard library client; return status and body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s)
    try:
        headers = {k: v for k, v in template.headers if k.lower() != "host"}
        conn.putrequest(template.method, template.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", dict(template.headers).get("Host", parts.netloc))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(template.body)))
        conn.endheaders(template.body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check_kms_reply(operation: str, status: int, body: bytes) -> dict[str, Any]:
    """Parse a reply and insist it is a real KMS reply for ``operation``."""
    if status != 200:
        raise NotKmsReplyError(f"{operation}: HTTP {status}: {body[:200]!r}")
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise NotKmsReplyError(f"{operation}: reply is not JSON: {body[:80]!r}") from exc
    missing = [f for f in REPLY_FIELDS.get(operation, ()) if not isinstance(obj, dict) or f not in obj]
    if missing:
        raise NotKmsReplyError(f"{operation}: reply lacks {', '.join(missing)}")
    return dict(obj)


def call(url: str, operation: str, payload: Mapping[str, Any], credentials: Credentials | None) -> dict[str, Any]:
    """One checked KMS call (used for set-up and preflight, never while timing)."""
    status, body = send_once(url, kms_request(url, operation, payload, credentials))
    return check_kms_reply(operation, status, body)


@dataclass(frozen=True, slots=True)
class KmsWorkload:
    """The three data-plane operations against one key, ready to be signed per run."""

    key_id: str
    ciphertext_blob_b64: str
    plaintext_b64: str

    def payload(self, operation: str) -> dict[str, Any]:
        if operation == "GenerateDataKey":
            return {"KeyId": self.key_id, "KeySpec": "AES_256"}
        if operation == "Encrypt":
            return {"KeyId": self.key_id, "Plaintext": self.plaintext_b64}
        if operation == "Decrypt":
            return {"CiphertextBlob": self.ciphertext_blob_b64, "KeyId": self.key_id}
        raise ValueError(f"unknown operation {operation}")


def prepare_workload(url: str, credentials: Credentials | None) -> KmsWorkload:
    """Create a symmetric key and one ciphertext for Decrypt; every reply is checked."""
    created = call(url, "CreateKey", {"Description": "kmsgate-bench", "KeyUsage": "ENCRYPT_DECRYPT"}, credentials)
    key_id = str(created["KeyMetadata"]["KeyId"])
    plaintext_b64 = base64.b64encode(os.urandom(ENCRYPT_PLAINTEXT_BYTES)).decode()
    encrypted = call(url, "Encrypt", {"KeyId": key_id, "Plaintext": plaintext_b64}, credentials)
    return KmsWorkload(key_id, str(encrypted["CiphertextBlob"]), plaintext_b64)


def signed_template(
    url: str, workload: KmsWorkload, operation: str, credentials: Credentials | None
) -> tuple[RequestTemplate, int]:
    """Sign ``operation`` for ``url``, check one reply is a real KMS reply; return the template and reply size."""
    template = kms_request(url, operation, workload.payload(operation), credentials)
    status, body = send_once(url, template)
    check_kms_reply(operation, status, body)
    return template, len(body)
