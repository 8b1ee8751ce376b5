"""DeleteObjects: the ``Delete`` request and the ``DeleteResult`` response.

Request::

    <Delete>
      <Quiet>true</Quiet>                                     optional, default false
      <Object><Key>a.txt</Key><VersionId>...</VersionId></Object>   1 to 1000 of them
    </Delete>

Keys are taken exactly as sent (no trimming: spaces are legal in keys). VersionId is
parsed and handed on, not interpreted. The conditional-delete fields (ETag,
LastModifiedTime, Size) are ``NotImplemented`` rather than ignored, since ignoring them
would delete what the client asked to keep. No objects, or more than 1000, is
``MalformedXML``, as S3 answers.

Response: ``<Deleted>`` entries, then ``<Error>`` entries; in quiet mode only the errors::

    <DeleteResult xmlns="...">
      <Deleted><Key>a.txt</Key></Deleted>
      <Error><Key>b.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
    </DeleteResult>
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kmsgate.s3.errors import MalformedXML, NotImplementedFeature, S3Error
from kmsgate.s3.xmlreader import XmlNode, parse_boolean, parse_request_xml
from kmsgate.s3.xmlwriter import leaf, node, render_document

MAX_DELETE_OBJECTS = 1000
MAX_DELETE_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest Delete body: 1000 keys of 1024 bytes, every byte escaped, fit in ~6.5 MiB."""
_CONDITIONAL_FIELDS = frozenset({"ETag", "LastModifiedTime", "Size"})
_OBJECT_CHILDREN = frozenset({"Key", "VersionId"}) | _CONDITIONAL_FIELDS


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    objects: tuple[ObjectIdentifier, ...]
    quiet: bool = False


def _parse_object(entry: XmlNode) -> ObjectIdentifier:
    entry.allow_only(_OBJECT_CHILDREN)
    if any(child.name in _CONDITIONAL_FIELDS for child in entry.children):
        raise NotImplementedFeature("Conditional deletes in DeleteObjects are not supported")
    key = entry.text_of("Key")
    if not key:
        raise MalformedXML()
    return ObjectIdentifier(key=key, version_id=entry.text_of("VersionId"))


def parse_delete_request(body: bytes) -> DeleteRequest:
    """The objects a DeleteObjects body names, checked as the module docstring says."""
    tree = parse_request_xml(body, root="Delete", max_bytes=MAX_DELETE_REQUEST_BYTES)
    tree.allow_only(frozenset({"Object", "Quiet"}))
    entries = tree.all("Object")
    if not entries or len(entries) > MAX_DELETE_OBJECTS:
        raise MalformedXML()
    quiet = tree.text_of("Quiet")
    return DeleteRequest(
        objects=tuple(_parse_object(entry) for entry in entries),
        quiet=parse_boolean(quiet) if quiet is not None else False,
    )


@dataclass(frozen=True, slots=True)
class DeletedObject:
    key: str
    version_id: str | None = None
    delete_marker: bool | None = None
    delete_marker_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    key: str
    code: str
    message: str
    version_id: str | None = None

    @classmethod
    def from_error(cls, key: str, error: S3Error, version_id: str | None = None) -> DeleteFailure:
        """The entry for a key whose deletion failed with ``error``."""
        return cls(key=key, code=error.code, message=error.message, version_id=version_id)


def delete_result(
    deleted: Sequence[DeletedObject],
    failures: Sequence[DeleteFailure],
    *,
    quiet: bool = False,
) -> bytes:
    """DeleteObjects' body; quiet mode reports only the failures."""
    deleted_entries = (
        []
        if quiet
        else [
            node(
                "Deleted",
                leaf("Key", d.key),
                leaf("VersionId", d.version_id),
                leaf("DeleteMarker", d.delete_marker),
                leaf("DeleteMarkerVersionId", d.delete_marker_version_id),
            )
            for d in deleted
        ]
    )
    error_entries = [
        node(
            "Error",
            leaf("Key", f.key),
            leaf("VersionId", f.version_id),
            leaf("Code", f.code),
            leaf("Message", f.message),
        )
        for f in failures
    ]
    return render_document(node("DeleteResult", deleted_entries, error_entries))
