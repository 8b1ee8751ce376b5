"""Listing documents: ListBuckets, ListObjectsV2 and ListObjects (v1).

Elements appear in the order S3 sends them (the examples of the S3 API reference)::

    <ListAllMyBucketsResult xmlns="..."><Owner><ID/><DisplayName/></Owner>
      <Buckets><Bucket><Name/><CreationDate/></Bucket>...</Buckets></ListAllMyBucketsResult>

    <ListBucketResult xmlns="...">
      <Name/><Prefix/>
      v2: [<ContinuationToken/>] [<NextContinuationToken/>] [<StartAfter/>] <KeyCount/>
      v1: <Marker/> [<NextMarker/>]
      <MaxKeys/> [<Delimiter/>] [<EncodingType/>] <IsTruncated/>
      <Contents><Key/><LastModified/><ETag/><Size/>[<Owner/>]<StorageClass/></Contents>...
      <CommonPrefixes><Prefix/></CommonPrefixes>...
    </ListBucketResult>

With ``encoding-type=url`` S3 URL-encodes the values that are object keys or pieces of
them — Key, Prefix (also in CommonPrefixes), Delimiter, StartAfter, Marker, NextMarker —
and nothing else (not the continuation tokens). See ``url_encode`` for the exact form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kmsgate.s3.errors import InvalidArgument
from kmsgate.s3.etags import quote_etag
from kmsgate.s3.xmlwriter import Element, leaf, node, render_document

URL_ENCODING = "url"
STANDARD_STORAGE_CLASS = "STANDARD"
# Bytes S3 leaves as they are in encoding-type=url output; a space becomes "+".
_URL_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./*")


def url_encode(value: str) -> str:
    """``value`` as S3 writes it under ``encoding-type=url``.

    The UTF-8 bytes are query-encoded: letters, digits and ``- _ . / *`` stay, a space
    becomes ``+``, every other byte is ``%XX`` (upper-case hex). Clients decode it with
    ``unquote_plus`` or its equivalent (botocore does exactly that), so ``+`` in a key
    comes back as ``%2B``. Any string, including one with characters XML cannot carry,
    comes out as printable ASCII.
    """
    out: list[str] = []
    for byte in value.encode("utf-8", "surrogateescape"):
        if byte in _URL_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def encode_key_field(value: str | None, encoding_type: str | None) -> str | None:
    """A key-like field of a listing as written: URL-encoded under ``encoding-type=url``."""
    if value is None or encoding_type != URL_ENCODING:
        return value
    return url_encode(value)


def parse_encoding_type(value: str | None) -> str | None:
    """The ``encoding-type`` query parameter: absent, or ``url`` (S3 refuses anything else)."""
    if value is None:
        return None
    if value.lower() != URL_ENCODING:
        raise InvalidArgument(
            "Invalid Encoding Method specified in Request",
            argument_name="encoding-type",
            argument_value=value,
        )
    return URL_ENCODING


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    display_name: str | None = None


def owner_element(name: str, owner: Owner | None) -> Element | None:
    """``<Owner>`` / ``<Initiator>``: ID then DisplayName, as S3 writes them."""
    if owner is None:
        return None
    return node(name, leaf("ID", owner.id), leaf("DisplayName", owner.display_name))


@dataclass(frozen=True, slots=True)
class BucketEntry:
    name: str
    creation_date: datetime


def list_buckets_result(buckets: Sequence[BucketEntry], owner: Owner) -> bytes:
    """ListBuckets' body."""
    entries = (
        node("Bucket", leaf("Name", b.name), leaf("CreationDate", b.creation_date)) for b in buckets
    )
    return render_document(
        node("ListAllMyBucketsResult", owner_element("Owner", owner), node("Buckets", entries))
    )


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One object in a listing; ``etag`` without quotes (``hex`` or ``hex-N``)."""

    key: str
    last_modified: datetime
    etag: str
    size: int
    storage_class: str = STANDARD_STORAGE_CLASS
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class ObjectListing:
    """What both ListObjects versions report about one page of a bucket."""

    bucket: str
    prefix: str = ""
    delimiter: str | None = None
    max_keys: int = 1000
    is_truncated: bool = False
    contents: Sequence[ObjectEntry] = ()
    common_prefixes: Sequence[str] = ()
    encoding_type: str | None = None

    def encode(self, value: str | None) -> str | None:
        """``value`` as this listing writes a key-like field (URL-encoded if asked for)."""
        return encode_key_field(value, self.encoding_type)


def _contents(listing: ObjectListing) -> list[Element]:
    return [
        node(
            "Contents",
            leaf("Key", listing.encode(entry.key)),
            leaf("LastModified", entry.last_modified),
            leaf("ETag", quote_etag(entry.etag)),
            leaf("Size", entry.size),
            owner_element("Owner", entry.owner),
            leaf("StorageClass", entry.storage_class),
        )
        for entry in listing.contents
    ]


def _common_prefixes(listing: ObjectListing) -> list[Element]:
    return [node("CommonPrefixes", leaf("Prefix", listing.encode(p))) for p in listing.common_prefixes]


def _tail(listing: ObjectListing) -> list[Element | None]:
    return [
        leaf("MaxKeys", listing.max_keys),
        leaf("Delimiter", listing.encode(listing.delimiter)),
        leaf("EncodingType", listing.encoding_type),
        leaf("IsTruncated", listing.is_truncated),
        *_contents(listing),
        *_common_prefixes(listing),
    ]


def list_objects_v2_result(
    listing: ObjectListing,
    *,
    continuation_token: str | None = None,
    next_continuation_token: str | None = None,
    start_after: str | None = None,
) -> bytes:
    """ListObjectsV2's body; KeyCount is the number of keys plus common prefixes."""
    key_count = len(listing.contents) + len(listing.common_prefixes)
    return render_document(
        node(
            "ListBucketResult",
            leaf("Name", listing.bucket),
            leaf("Prefix", listing.encode(listing.prefix)),
            leaf("ContinuationToken", continuation_token),
            leaf("NextContinuationToken", next_continuation_token),
            leaf("StartAfter", listing.encode(start_after)),
            leaf("KeyCount", key_count),
            _tail(listing),
        )
    )


def list_objects_v1_result(
    listing: ObjectListing,
    *,
    marker: str = "",
    next_marker: str | None = None,
) -> bytes:
    """ListObjects' (v1) body; S3 sends NextMarker only with a delimiter on a truncated page."""
    return render_document(
        node(
            "ListBucketResult",
            leaf("Name", listing.bucket),
            leaf("Prefix", listing.encode(listing.prefix)),
            leaf("Marker", listing.encode(marker)),
            leaf("NextMarker", listing.encode(next_marker)),
            _tail(listing),
        )
    )
