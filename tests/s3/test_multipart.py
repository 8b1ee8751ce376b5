"""Multipart documents: results read back by boto3, CompleteMultipartUpload requests from boto3."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import unquote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsgate.s3.checksums import DigestAlgorithm
from kmsgate.s3.errors import InvalidArgument, InvalidPartOrder, MalformedXML, MaxMessageLengthExceeded
from kmsgate.s3.listings import Owner
from kmsgate.s3.multipart import (
    MAX_COMPLETE_REQUEST_BYTES,
    CompletedPart,
    PartEntry,
    PartListing,
    UploadEntry,
    UploadListing,
    complete_multipart_upload_result,
    initiate_multipart_upload_result,
    list_multipart_uploads_result,
    list_parts_result,
    parse_complete_multipart_upload,
)
from tests.s3.conftest import S3Oracle, without_metadata
from tests.s3.strategies import any_keys, etags, millisecond, object_keys, sizes, timestamps

PER_EXAMPLE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WHEN = datetime(2010, 11, 10, 20, 48, 34, tzinfo=timezone.utc)
INITIATOR = Owner("arn:aws:iam::111122223333:user/some-user", "some-user")
OWNER = Owner("75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", "someName")
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _complete_body(s3: S3Oracle, parts: list[dict[str, object]]) -> bytes:
    s3.transport.respond(complete_multipart_upload_result("http://h/b/k", "b", "k", "0" * 32 + "-1"))
    s3.client.complete_multipart_upload(Bucket="b", Key="k", UploadId="u", MultipartUpload={"Parts": parts})
    return s3.transport.last_body


@PER_EXAMPLE
@given(key=object_keys, upload_id=st.text(st.characters(codec="ascii", min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80))
def test_initiate_result_reads_back_through_boto3(s3: S3Oracle, key: str, upload_id: str) -> None:
    s3.transport.respond(initiate_multipart_upload_result("bucket", key, upload_id))
    response = without_metadata(s3.client.create_multipart_upload(Bucket="bucket", Key="k"))
    assert response == {"Bucket": "bucket", "Key": key, "UploadId": upload_id}


@PER_EXAMPLE
@given(key=object_keys, etag=etags, parts=st.integers(1, 10_000))
def test_complete_result_reads_back_through_boto3(s3: S3Oracle, key: str, etag: str, parts: int) -> None:
    location = "http://127.0.0.1:8080/bucket/" + key
    s3.transport.respond(complete_multipart_upload_result(location, "bucket", key, f"{etag}-{parts}"))
    response = without_metadata(
        s3.client.complete_multipart_upload(
            Bucket="bucket", Key="k", UploadId="u", MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "x"}]}
        )
    )
    assert response == {"Location": location, "Bucket": "bucket", "Key": key, "ETag": f'"{etag}-{parts}"'}


@PER_EXAMPLE
@given(
    key=object_keys,
    entries=st.lists(st.tuples(st.integers(1, 10_000), timestamps, etags, sizes), max_size=5),
    truncated=st.booleans(),
)
def test_list_parts_reads_back_through_boto3(
    s3: S3Oracle, key: str, entries: list[tuple[int, datetime, str, int]], truncated: bool
) -> None:
    parts = [PartEntry(n, when, etag, size) for n, when, etag, size in entries]
    listing = PartListing(
        bucket="bucket", key=key, upload_id="VXBsb2Fk", initiator=INITIATOR, owner=OWNER, parts=parts,
        part_number_marker=1, next_part_number_marker=3 if truncated else None, max_parts=2, is_truncated=truncated,
    )
    s3.transport.respond(list_parts_result(listing))

    response = without_metadata(s3.client.list_parts(Bucket="bucket", Key="k", UploadId="VXBsb2Fk"))

    expected: dict[str, object] = {
        "Bucket": "bucket", "Key": key, "UploadId": "VXBsb2Fk", "PartNumberMarker": 1, "MaxParts": 2,
        "IsTruncated": truncated,
        "Initiator": {"ID": INITIATOR.id, "DisplayName": INITIATOR.display_name},
        "Owner": {"ID": OWNER.id, "DisplayName": OWNER.display_name},
        "StorageClass": "STANDARD",
    }
    if truncated:
        expected["NextPartNumberMarker"] = 3
    if parts:
        expected["Parts"] = [
            {"PartNumber": p.part_number, "LastModified": millisecond(p.last_modified), "ETag": f'"{p.etag}"', "Size": p.size}
            for p in parts
        ]
    assert response == expected


def test_list_parts_writes_the_elements_in_s3s_order() -> None:
    listing = PartListing(
        bucket="b", key="k", upload_id="u", initiator=INITIATOR, owner=OWNER,
        parts=[PartEntry(2, WHEN, "7778aef83f66abc1fa1e8477f296d394", 10485760)],
        part_number_marker=1, next_part_number_marker=2, max_parts=1, is_truncated=True,
    )
    document = list_parts_result(listing).decode()
    assert document == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<ListPartsResult {NS}><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>"
        f"<Initiator><ID>{INITIATOR.id}</ID><DisplayName>some-user</DisplayName></Initiator>"
        f"<Owner><ID>{OWNER.id}</ID><DisplayName>someName</DisplayName></Owner>"
        "<StorageClass>STANDARD</StorageClass><PartNumberMarker>1</PartNumberMarker>"
        "<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>1</MaxParts><IsTruncated>true</IsTruncated>"
        "<Part><PartNumber>2</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified>"
        "<ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>"
        "</ListPartsResult>"
    )


@PER_EXAMPLE
@given(keys=st.lists(any_keys, max_size=4), prefixes=st.lists(any_keys, max_size=3), marker=any_keys, when=timestamps)
def test_list_multipart_uploads_reads_back_through_boto3(
    s3: S3Oracle, keys: list[str], prefixes: list[str], marker: str, when: datetime
) -> None:
    # botocore does not URL-decode this listing itself: a client that asks for url gets the
    # encoded values and decodes them as it would S3's, with unquote_plus.
    uploads = [UploadEntry(k, f"upload-{i}", INITIATOR, OWNER, when) for i, k in enumerate(keys)]
    listing = UploadListing(
        bucket="bucket", uploads=uploads, common_prefixes=prefixes, key_marker=marker, upload_id_marker="m",
        next_key_marker="next", next_upload_id_marker="nu", prefix="p", delimiter="/", max_uploads=3, is_truncated=True,
        encoding_type="url",
    )
    s3.transport.respond(list_multipart_uploads_result(listing))

    response = without_metadata(s3.client.list_multipart_uploads(Bucket="bucket", EncodingType="url"))

    assert [unquote_plus(u["Key"]) for u in response.get("Uploads", [])] == keys
    assert [unquote_plus(p["Prefix"]) for p in response.get("CommonPrefixes", [])] == prefixes
    assert unquote_plus(response["KeyMarker"]) == marker
    assert response["UploadIdMarker"] == "m"
    assert response["NextUploadIdMarker"] == "nu"
    assert response["MaxUploads"] == 3
    assert response["IsTruncated"] is True
    assert [u["Initiated"] for u in response.get("Uploads", [])] == [millisecond(when)] * len(keys)
    assert [u["UploadId"] for u in response.get("Uploads", [])] == [u.upload_id for u in uploads]


@PER_EXAMPLE
@given(
    numbers=st.lists(st.integers(1, 10_000), min_size=1, max_size=30, unique=True).map(sorted),
    data=st.data(),
)
def test_complete_request_from_boto3_parses_to_the_same_parts(s3: S3Oracle, numbers: list[int], data: st.DataObject) -> None:
    etag_values = data.draw(st.lists(etags, min_size=len(numbers), max_size=len(numbers)))
    quoted = data.draw(st.booleans())
    sent = [{"PartNumber": n, "ETag": f'"{e}"' if quoted else e} for n, e in zip(numbers, etag_values)]

    parts = parse_complete_multipart_upload(_complete_body(s3, sent))

    assert parts == tuple(CompletedPart(n, e) for n, e in zip(numbers, etag_values))


def test_complete_request_carries_part_checksums(s3: S3Oracle) -> None:
    body = _complete_body(
        s3,
        [
            {"PartNumber": 1, "ETag": '"a"', "ChecksumCRC32": "AAAAAA==", "ChecksumSHA256": "x" * 43 + "="},
            {"PartNumber": 2, "ETag": '"b"', "ChecksumCRC64NVME": "AAAAAAAAAAA="},
        ],
    )
    assert parse_complete_multipart_upload(body) == (
        CompletedPart(1, "a", {DigestAlgorithm.CRC32: "AAAAAA==", DigestAlgorithm.SHA256: "x" * 43 + "="}),
        CompletedPart(2, "b", {DigestAlgorithm.CRC64NVME: "AAAAAAAAAAA="}),
    )


def test_parts_out_of_order_are_invalid_part_order(s3: S3Oracle) -> None:
    body = _complete_body(s3, [{"PartNumber": 2, "ETag": "a"}, {"PartNumber": 1, "ETag": "b"}])
    with pytest.raises(InvalidPartOrder):
        parse_complete_multipart_upload(body)


def test_a_repeated_part_number_is_invalid_part_order(s3: S3Oracle) -> None:
    body = _complete_body(s3, [{"PartNumber": 1, "ETag": "a"}, {"PartNumber": 1, "ETag": "a"}])
    with pytest.raises(InvalidPartOrder):
        parse_complete_multipart_upload(body)


def test_no_parts_is_malformed_xml(s3: S3Oracle) -> None:
    with pytest.raises(MalformedXML):
        parse_complete_multipart_upload(_complete_body(s3, []))


@pytest.mark.parametrize(
    "part",
    [
        "<Part><ETag>a</ETag></Part>",
        "<Part><PartNumber>1</PartNumber></Part>",
        "<Part><PartNumber>one</PartNumber><ETag>a</ETag></Part>",
        "<Part><PartNumber>-1</PartNumber><ETag>a</ETag></Part>",
        "<Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>a</ETag></Part>",
        "<Part><PartNumber>1</PartNumber><ETag></ETag></Part>",
        "<Part><PartNumber>1</PartNumber><ETag>a</ETag><Size>3</Size></Part>",
        "<Part><PartNumber>1</PartNumber><ETag><b>a</b></ETag></Part>",
        "<Upload><PartNumber>1</PartNumber><ETag>a</ETag></Upload>",
    ],
)
def test_a_part_outside_the_schema_is_malformed_xml(part: str) -> None:
    body = f"<CompleteMultipartUpload {NS}>{part}</CompleteMultipartUpload>".encode()
    with pytest.raises(MalformedXML):
        parse_complete_multipart_upload(body)


@pytest.mark.parametrize("number", ["0", "10001"])
def test_a_part_number_out_of_range_is_an_invalid_argument(number: str) -> None:
    body = f"<CompleteMultipartUpload><Part><PartNumber>{number}</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>"
    with pytest.raises(InvalidArgument) as caught:
        parse_complete_multipart_upload(body.encode())
    assert ("ArgumentName", "partNumber") in caught.value.details


def test_a_checksum_this_front_cannot_verify_is_refused() -> None:
    body = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag><ChecksumSHA512>x</ChecksumSHA512></Part></CompleteMultipartUpload>"
    with pytest.raises(InvalidArgument):
        parse_complete_multipart_upload(body)


def test_the_most_parts_s3_allows_with_every_checksum_fit_under_the_cap() -> None:
    part = (
        '<Part><ETag>"0123456789abcdef0123456789abcdef"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32>'
        "<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C><ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME>"
        f"<ChecksumSHA1>{'A' * 27}=</ChecksumSHA1><ChecksumSHA256>{'A' * 43}=</ChecksumSHA256>"
        "<PartNumber>{n}</PartNumber></Part>"
    )
    body = (f"<CompleteMultipartUpload {NS}>" + "".join(part.replace("{n}", str(n)) for n in range(1, 10_001)) + "</CompleteMultipartUpload>").encode()
    assert len(body) < MAX_COMPLETE_REQUEST_BYTES
    assert len(parse_complete_multipart_upload(body)) == 10_000


def test_a_body_past_the_cap_is_refused_before_parsing() -> None:
    body = b"<CompleteMultipartUpload>" + b" " * MAX_COMPLETE_REQUEST_BYTES + b"</CompleteMultipartUpload>"
    with pytest.raises(MaxMessageLengthExceeded):
        parse_complete_multipart_upload(body)
