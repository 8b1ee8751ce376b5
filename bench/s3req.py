"""S3 requests for the load generator: SigV4-signed once with botocore, replayed.

A template carries the ``Host``, ``X-Amz-Date``, ``x-amz-content-sha256`` and
``Authorization`` headers botocore's S3 signer produced for it; the server accepts the
signature for its clock-skew window (15 minutes), far longer than a run, so every request
of a run is the same bytes (the same object key every time). Two payload modes:

* the body's SHA-256 signed, as boto3 signs over plain HTTP: the body must then be the
  template's own bytes, never synthetic bytes the load generator makes up per process;
* ``UNSIGNED-PAYLOAD``, as the aws CLI sends large bodies over TLS: any body of the declared
  length is accepted, so a 64 MiB body is streamed from synthetic bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from bench.kmsreq import REGION, Credentials, send_once
from bench.loadgen import RequestTemplate


class S3SetupError(RuntimeError):
    """An S3 request made to set a run up did not succeed."""


def s3_request(url: str, method: str, path: str, credentials: Credentials, *, body: bytes = b"",
               body_size: int = 0, unsigned_payload: bool = False,
               headers: Iterable[tuple[str, str]] = ()) -> RequestTemplate:
    """A template for ``method path`` signed for ``url``'s host: over ``body`` (its hash signed),
    or over any ``body_size`` bytes with ``UNSIGNED-PAYLOAD``."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials as BotoCredentials

    if body and unsigned_payload:
        raise ValueError("a template with its own body signs its hash")
    request = AWSRequest(method=method, url=url.rstrip("/") + path, data=body,
                         headers={"Host": urlsplit(url).netloc, **dict(headers)})
    request.context["client_config"] = Config(s3={"payload_signing_enabled": not unsigned_payload})
    S3SigV4Auth(BotoCredentials(credentials.access_key_id, credentials.secret_access_key), "s3",
                REGION).add_auth(request)
    signed = tuple((k, str(v)) for k, v in request.headers.items())
    if unsigned_payload:
        return RequestTemplate(method, path, signed, body_size=body_size)
    return RequestTemplate(method, path, signed, body=body)


def send_checked(url: str, template: RequestTemplate, expect: tuple[int, ...] = (200,)) -> bytes:
    """Send one bodiless or small template; raise ``S3SetupError`` unless it answered ``expect``."""
    try:
        status, body = send_once(url, template)
    except OSError as exc:
        raise S3SetupError(f"{template.method} {template.path}: {exc}") from exc
    if status not in expect:
        raise S3SetupError(f"{template.method} {template.path} answered HTTP {status}: {body[:200]!r}")
    return body


def create_bucket(url: str, bucket: str, credentials: Credentials) -> None:
    send_checked(url, s3_request(url, "PUT", f"/{bucket}", credentials))
