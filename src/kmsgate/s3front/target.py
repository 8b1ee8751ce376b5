"""Which bucket and key an S3 request names: path-style ``/bucket/key`` or virtual-hosted ``bucket.host``.

Path-style is the default (``aws --endpoint-url``, boto3 with a custom endpoint use it for
bucket names that are not DNS-safe, and ``addressing_style="path"`` always). A ``Host`` of the
form ``<bucket>.<base>`` with ``<base>`` one of the front's base host names (``localhost``, the
configured ``--host`` when it is a name, and each ``--s3-domain``) is virtual-hosted: the bucket
is the first label and the whole path is the key. The key is the percent-decoded path as sent (the signature
covers it byte for byte), never normalised: ``a//b`` and ``a/./b`` are keys of their own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import unquote

from kmsgate.gateway.keys import InvalidObjectKey, validate_object_key
from kmsgate.gateway.storage.base import InvalidArgument, validate_bucket_name
from kmsgate.s3.errors import InvalidArgument as S3InvalidArgument
from kmsgate.s3.errors import InvalidBucketName, KeyTooLongError
from kmsgate.s3front.errors import InvalidURI


@dataclass(frozen=True, slots=True)
class Target:
    """The resource a request names: the service (no bucket), a bucket, or an object."""

    bucket: str | None
    key: str | None


def _host_name(host: str) -> str:
    if host.startswith("["):  # an IPv6 literal: never virtual-hosted
        return ""
    return host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()


def checked_bucket(name: str) -> str:
    try:
        return validate_bucket_name(name)
    except InvalidArgument:
        raise InvalidBucketName(bucket_name=name[:255]) from None


def checked_key(key: str) -> str:
    try:
        return validate_object_key(key)
    except InvalidObjectKey as exc:
        if len(key.encode("utf-8", "surrogateescape")) > 1024:
            raise KeyTooLongError() from None
        raise S3InvalidArgument(str(exc)) from None


def resolve(raw_path: str, host: str, base_hosts: Collection[str]) -> Target:
    """The target of a request with this raw path (without its query) and ``Host`` header."""
    try:
        path = unquote(raw_path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidURI() from None
    if not path.startswith("/"):
        raise InvalidURI()
    name = _host_name(host)
    for base in base_hosts:
        if name.endswith("." + base) and len(name) > len(base) + 1:
            bucket = checked_bucket(name[: -len(base) - 1])
            key = path[1:]
            return Target(bucket, checked_key(key) if key else None)
    rest = path[1:]
    if not rest:
        return Target(None, None)
    bucket, slash, key = rest.partition("/")
    return Target(checked_bucket(bucket), checked_key(key) if slash and key else None)
