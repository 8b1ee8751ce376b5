"""CopyObject and UploadPartCopy results, read back by boto3."""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings

from kmsgate.s3.copying import copy_object_result, copy_part_result
from tests.s3.conftest import S3Oracle
from tests.s3.strategies import etags, millisecond, timestamps

PER_EXAMPLE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PER_EXAMPLE
@given(etag=etags, when=timestamps)
def test_copy_object_result_reads_back_through_boto3(s3: S3Oracle, etag: str, when: datetime) -> None:
    s3.transport.respond(copy_object_result(etag, when))
    response = s3.client.copy_object(Bucket="b", Key="k", CopySource="src/key")
    assert response["CopyObjectResult"] == {"ETag": f'"{etag}"', "LastModified": millisecond(when)}


@PER_EXAMPLE
@given(etag=etags, when=timestamps)
def test_copy_part_result_reads_back_through_boto3(s3: S3Oracle, etag: str, when: datetime) -> None:
    s3.transport.respond(copy_part_result(etag, when))
    response = s3.client.upload_part_copy(Bucket="b", Key="k", CopySource="src/key", PartNumber=1, UploadId="u")
    assert response["CopyPartResult"] == {"ETag": f'"{etag}"', "LastModified": millisecond(when)}


def test_copy_results_are_written_as_s3_writes_them() -> None:
    when = datetime.fromisoformat("2009-10-12T17:50:30+00:00")
    assert copy_object_result("9b2cf535f27731c974343645a3985328", when) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
        b"<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>"
    )
