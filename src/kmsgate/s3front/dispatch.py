"""One S3 request to one operation: by method, target (service, bucket, object) and sub-resource.

================  ======================  ==============================================
target            method                  operation (by sub-resource in the query)
================  ======================  ==============================================
service ``/``     GET                     ListBuckets
bucket            PUT                     ``?encryption`` PutBucketEncryption; CreateBucket
bucket            GET                     ``?location`` GetBucketLocation; ``?encryption``
                                          GetBucketEncryption; ``?list-type=2``
                                          ListObjectsV2; ``?uploads`` ListMultipartUploads;
                                          else ListObjects
bucket            HEAD                    HeadBucket
bucket            DELETE                  ``?encryption`` DeleteBucketEncryption; DeleteBucket
bucket            POST                    ``?delete`` DeleteObjects
object            PUT                     ``?partNumber&uploadId`` UploadPart (UploadPartCopy
                                          with ``x-amz-copy-source``); ``x-amz-copy-source``
                                          CopyObject; else PutObject
object            GET                     ``?uploadId`` ListParts; else GetObject
object            HEAD                    HeadObject
object            DELETE                  ``?uploadId`` AbortMultipartUpload; DeleteObject
object            POST                    ``?uploads`` CreateMultipartUpload; ``?uploadId``
                                          CompleteMultipartUpload
================  ======================  ==============================================

Sub-resources S3 knows and this front does not serve (``?acl``, ``?policy``, ``?tagging``,
``?versioning``, ...) are ``NotImplemented`` (501), never silently served as the plain
operation; a method S3 does not define on the target is ``MethodNotAllowed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from kmsgate.gateway.exchange import Exchange
from kmsgate.gateway.service import Gateway
from kmsgate.s3 import errors as s3
from kmsgate.s3front import buckets, copies, deletes, listing, multipart, objects
from kmsgate.s3front.target import Target

Operation = Callable[[web.Request, Gateway, Exchange, Target], Awaitable[web.StreamResponse]]

UNSUPPORTED_SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "attributes", "cors", "intelligent-tiering", "inventory",
    "legal-hold", "lifecycle", "logging", "metrics", "notification", "object-lock", "ownershipControls",
    "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
    "retention", "select", "tagging", "torrent", "versioning", "versions", "website",
})

_HANDLERS: Mapping[str, Operation] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "PutBucketEncryption": buckets.put_bucket_encryption,
    "GetBucketEncryption": buckets.get_bucket_encryption,
    "DeleteBucketEncryption": buckets.delete_bucket_encryption,
    "ListObjectsV2": listing.list_objects_v2,
    "ListObjects": listing.list_objects_v1,
    "DeleteObjects": deletes.delete_objects,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "DeleteObject": objects.delete_object,
    "CopyObject": copies.copy_object,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
}


@dataclass(frozen=True, slots=True)
class Dispatched:
    name: str
    handler: Operation


def _bucket_operation(method: str, query: Mapping[str, str]) -> str | None:
    if method == "PUT":
        return "PutBucketEncryption" if "encryption" in query else "CreateBucket"
    if method == "GET":
        if "location" in query:
            return "GetBucketLocation"
        if "encryption" in query:
            return "GetBucketEncryption"
        if "uploads" in query:
            return "ListMultipartUploads"
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "DELETE":
        return "DeleteBucketEncryption" if "encryption" in query else "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return None


def _object_operation(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    copying = copies.COPY_SOURCE_HEADER in headers
    if method == "PUT":
        if "uploadId" in query or "partNumber" in query:
            return "UploadPartCopy" if copying else "UploadPart"
        return "CopyObject" if copying else "PutObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return None


def dispatch(method: str, target: Target, query: Mapping[str, str], headers: Mapping[str, str]) -> Dispatched:
    """The operation a request asks for, or the S3 error saying why none."""
    unsupported = sorted(UNSUPPORTED_SUBRESOURCES.intersection(query))
    if unsupported and target.bucket is not None:
        raise s3.NotImplementedFeature(f"The ?{unsupported[0]} sub-resource is not supported.")
    if target.bucket is None:
        name = "ListBuckets" if method == "GET" else None
    elif target.key is None:
        name = _bucket_operation(method, query)
    else:
        name = _object_operation(method, query, headers)
    if name is None:
        kind = "SERVICE" if target.bucket is None else "BUCKET" if target.key is None else "OBJECT"
        raise s3.MethodNotAllowed(method=method, resource_type=kind)
    return Dispatched(name, _HANDLERS[name])
