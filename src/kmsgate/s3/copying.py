"""CopyObject and UploadPartCopy result documents.

S3 writes both with the same two fields, LastModified first::

    <CopyObjectResult xmlns="..."><LastModified>2009-10-12T17:50:30.000Z</LastModified>
      <ETag>"9b2cf535f27731c974343645a3985328"</ETag></CopyObjectResult>
    <CopyPartResult xmlns="..."><LastModified>...</LastModified><ETag>"..."</ETag></CopyPartResult>
"""

from __future__ import annotations

from datetime import datetime

from kmsgate.s3.etags import quote_etag
from kmsgate.s3.xmlwriter import leaf, node, render_document


def copy_object_result(etag: str, last_modified: datetime) -> bytes:
    """CopyObject's body; ``etag`` unquoted."""
    return render_document(
        node("CopyObjectResult", leaf("LastModified", last_modified), leaf("ETag", quote_etag(etag)))
    )


def copy_part_result(etag: str, last_modified: datetime) -> bytes:
    """UploadPartCopy's body; ``etag`` unquoted."""
    return render_document(
        node("CopyPartResult", leaf("LastModified", last_modified), leaf("ETag", quote_etag(etag)))
    )
