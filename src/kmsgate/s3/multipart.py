"""Multipart upload documents: initiate, complete, list parts, list uploads.

Responses, in the order S3 writes them::

    <InitiateMultipartUploadResult><Bucket/><Key/><UploadId/></InitiateMultipartUploadResult>
    <CompleteMultipartUploadResult><Location/><Bucket/><Key/><ETag/></CompleteMultipartUploadResult>
    <ListPartsResult><Bucket/><Key/><UploadId/><Initiator/><Owner/><StorageClass/>
      <PartNumberMarker/><NextPartNumberMarker/><MaxParts/><IsTruncated/>
      <Part><PartNumber/><LastModified/><ETag/><Size/></Part>...</ListPartsResult>
    <ListMultipartUploadsResult><Bucket/><KeyMarker/><UploadIdMarker/><NextKeyMarker/>
      <NextUploadIdMarker/>[<Delimiter/>][<Prefix/>]<MaxUploads/>[<EncodingType/>]<IsTruncated/>
      <Upload><Key/><UploadId/><Initiator/><Owner/><StorageClass/><Initiated/></Upload>...
      <CommonPrefixes><Prefix/></CommonPrefixes>...</ListMultipartUploadsResult>

The CompleteMultipartUpload request lists the parts to assemble::

    <CompleteMultipartUpload>
      <Part><PartNumber>1</PartNumber><ETag>"..."</ETag>[<ChecksumCRC32>...]</Part> ...
    </CompleteMultipartUpload>

At least one part and at most ``MAX_PARTS``, each with a PartNumber in 1..10000 and an
ETag; part numbers strictly ascending (``InvalidPartOrder`` otherwise, duplicates
included); anything else missing or out of schema is ``MalformedXML``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kmsgate.s3.checksums import CHECKSUM_ALGORITHMS, DigestAlgorithm
from kmsgate.s3.errors import InvalidArgument, InvalidPartOrder, MalformedXML
from kmsgate.s3.etags import MAX_PARTS, quote_etag, unquote_etag
from kmsgate.s3.listings import STANDARD_STORAGE_CLASS, Owner, encode_key_field, owner_element
from kmsgate.s3.xmlreader import parse_integer, parse_request_xml
from kmsgate.s3.xmlwriter import Element, leaf, node, render_document

MAX_COMPLETE_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest CompleteMultipartUpload body: 10,000 parts with every checksum fit in ~4 MiB."""
_CHECKSUM_ELEMENTS: dict[str, DigestAlgorithm] = {f"Checksum{a.name}": a for a in CHECKSUM_ALGORITHMS}
# Checksums S3 defines but this front does not compute: refused, never silently dropped.
_UNSUPPORTED_CHECKSUM_ELEMENTS = frozenset(
    {"ChecksumSHA512", "ChecksumMD5", "ChecksumXXHASH64", "ChecksumXXHASH3", "ChecksumXXHASH128"}
)
_PART_CHILDREN = frozenset({"PartNumber", "ETag", *_CHECKSUM_ELEMENTS, *_UNSUPPORTED_CHECKSUM_ELEMENTS})


def initiate_multipart_upload_result(bucket: str, key: str, upload_id: str) -> bytes:
    """CreateMultipartUpload's body."""
    return render_document(
        node(
            "InitiateMultipartUploadResult",
            leaf("Bucket", bucket),
            leaf("Key", key),
            leaf("UploadId", upload_id),
        )
    )


def complete_multipart_upload_result(location: str, bucket: str, key: str, etag: str) -> bytes:
    """CompleteMultipartUpload's body; ``etag`` unquoted (``hex-N``)."""
    return render_document(
        node(
            "CompleteMultipartUploadResult",
            leaf("Location", location),
            leaf("Bucket", bucket),
            leaf("Key", key),
            leaf("ETag", quote_etag(etag)),
        )
    )


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """One part named in a CompleteMultipartUpload request; ``etag`` unquoted."""

    part_number: int
    etag: str
    checksums: Mapping[DigestAlgorithm, str] = field(default_factory=dict)


def _parse_part(part_node_children: Sequence[tuple[str, str]]) -> CompletedPart:
    values: dict[str, str] = {}
    for name, text in part_node_children:
        if name not in _PART_CHILDREN or name in values:
            raise MalformedXML()
        if name in _UNSUPPORTED_CHECKSUM_ELEMENTS:
            raise InvalidArgument(f"{name} is not supported", argument_name=name)
        values[name] = text
    if "PartNumber" not in values or "ETag" not in values:
        raise MalformedXML()
    part_number = parse_integer(values["PartNumber"])
    if not 1 <= part_number <= MAX_PARTS:
        raise InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            argument_name="partNumber",
            argument_value=values["PartNumber"].strip(),
        )
    etag = unquote_etag(values["ETag"])
    if not etag:
        raise MalformedXML()
    checksums = {
        algorithm: values[name].strip() for name, algorithm in _CHECKSUM_ELEMENTS.items() if name in values
    }
    return CompletedPart(part_number, etag, checksums)


def parse_complete_multipart_upload(body: bytes) -> tuple[CompletedPart, ...]:
    """The parts a CompleteMultipartUpload body names, checked as the module docstring says."""
    tree = parse_request_xml(body, root="CompleteMultipartUpload", max_bytes=MAX_COMPLETE_REQUEST_BYTES)
    tree.allow_only(frozenset({"Part"}))
    if not tree.children or len(tree.children) > MAX_PARTS:
        raise MalformedXML()
    parts: list[CompletedPart] = []
    for part in tree.children:
        if any(child.children for child in part.children):
            raise MalformedXML()
        parts.append(_parse_part([(child.name, child.text) for child in part.children]))
    for previous, current in zip(parts, parts[1:]):
        if current.part_number <= previous.part_number:
            raise InvalidPartOrder()
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One uploaded part in ListParts; ``etag`` unquoted."""

    part_number: int
    last_modified: datetime
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class PartListing:
    bucket: str
    key: str
    upload_id: str
    initiator: Owner
    owner: Owner
    parts: Sequence[PartEntry] = ()
    part_number_marker: int = 0
    next_part_number_marker: int | None = None
    max_parts: int = 1000
    is_truncated: bool = False
    storage_class: str = STANDARD_STORAGE_CLASS


def list_parts_result(listing: PartListing) -> bytes:
    """ListParts' body."""
    parts = [
        node(
            "Part",
            leaf("PartNumber", p.part_number),
            leaf("LastModified", p.last_modified),
            leaf("ETag", quote_etag(p.etag)),
            leaf("Size", p.size),
        )
        for p in listing.parts
    ]
    return render_document(
        node(
            "ListPartsResult",
            leaf("Bucket", listing.bucket),
            leaf("Key", listing.key),
            leaf("UploadId", listing.upload_id),
            owner_element("Initiator", listing.initiator),
            owner_element("Owner", listing.owner),
            leaf("StorageClass", listing.storage_class),
            leaf("PartNumberMarker", listing.part_number_marker),
            leaf("NextPartNumberMarker", listing.next_part_number_marker),
            leaf("MaxParts", listing.max_parts),
            leaf("IsTruncated", listing.is_truncated),
            parts,
        )
    )


@dataclass(frozen=True, slots=True)
class UploadEntry:
    key: str
    upload_id: str
    initiator: Owner
    owner: Owner
    initiated: datetime
    storage_class: str = STANDARD_STORAGE_CLASS


@dataclass(frozen=True, slots=True)
class UploadListing:
    bucket: str
    uploads: Sequence[UploadEntry] = ()
    common_prefixes: Sequence[str] = ()
    key_marker: str = ""
    upload_id_marker: str = ""
    next_key_marker: str | None = None
    next_upload_id_marker: str | None = None
    prefix: str | None = None
    delimiter: str | None = None
    max_uploads: int = 1000
    is_truncated: bool = False
    encoding_type: str | None = None

    def encode(self, value: str | None) -> str | None:
        """``value`` as this listing writes a key-like field (URL-encoded if asked for)."""
        return encode_key_field(value, self.encoding_type)


def list_multipart_uploads_result(listing: UploadListing) -> bytes:
    """ListMultipartUploads' body; with ``encoding-type=url`` the key-like fields are encoded."""
    uploads: list[Element] = [
        node(
            "Upload",
            leaf("Key", listing.encode(u.key)),
            leaf("UploadId", u.upload_id),
            owner_element("Initiator", u.initiator),
            owner_element("Owner", u.owner),
            leaf("StorageClass", u.storage_class),
            leaf("Initiated", u.initiated),
        )
        for u in listing.uploads
    ]
    prefixes = [node("CommonPrefixes", leaf("Prefix", listing.encode(p))) for p in listing.common_prefixes]
    return render_document(
        node(
            "ListMultipartUploadsResult",
            leaf("Bucket", listing.bucket),
            leaf("KeyMarker", listing.encode(listing.key_marker)),
            leaf("UploadIdMarker", listing.upload_id_marker),
            leaf("NextKeyMarker", listing.encode(listing.next_key_marker)),
            leaf("NextUploadIdMarker", listing.next_upload_id_marker),
            leaf("Delimiter", listing.encode(listing.delimiter)),
            leaf("Prefix", listing.encode(listing.prefix)),
            leaf("MaxUploads", listing.max_uploads),
            leaf("EncodingType", listing.encoding_type),
            leaf("IsTruncated", listing.is_truncated),
            uploads,
            prefixes,
        )
    )
