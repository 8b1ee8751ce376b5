"""ListBuckets, ListObjectsV2 and ListObjects documents, read back by boto3."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsgate.s3.errors import InvalidArgument
from kmsgate.s3.listings import (
    BucketEntry,
    ObjectEntry,
    ObjectListing,
    Owner,
    list_buckets_result,
    list_objects_v1_result,
    list_objects_v2_result,
    parse_encoding_type,
    url_encode,
)
from tests.s3.conftest import S3Oracle, parse_with_botocore, without_metadata
from tests.s3.strategies import any_keys, etags, millisecond, object_keys, sizes, timestamps, xml_text

WHEN = datetime(2009, 10, 12, 17, 50, 30, 123456, tzinfo=timezone.utc)
PER_EXAMPLE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tags(document: bytes) -> list[str]:
    return re.findall(r"<([A-Za-z]+)[ >]", document.decode("utf-8"))


def _expected_contents(entries: list[ObjectEntry]) -> list[dict[str, object]]:
    return [
        {
            "Key": e.key,
            "LastModified": millisecond(e.last_modified),
            "ETag": f'"{e.etag}"',
            "Size": e.size,
            "StorageClass": "STANDARD",
        }
        for e in entries
    ]


def test_list_buckets_reads_back_as_written(s3: S3Oracle) -> None:
    owner = Owner(id="75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", display_name="me & you")
    buckets = [BucketEntry("alpha", WHEN), BucketEntry("beta.example", datetime(2024, 2, 29, tzinfo=timezone.utc))]
    s3.transport.respond(list_buckets_result(buckets, owner))

    response = without_metadata(s3.client.list_buckets())

    assert response == {
        "Buckets": [
            {"Name": "alpha", "CreationDate": datetime(2009, 10, 12, 17, 50, 30, 123000, tzinfo=timezone.utc)},
            {"Name": "beta.example", "CreationDate": datetime(2024, 2, 29, tzinfo=timezone.utc)},
        ],
        "Owner": {"ID": owner.id, "DisplayName": "me & you"},
    }


def test_list_buckets_writes_the_elements_in_s3s_order() -> None:
    document = list_buckets_result([BucketEntry("alpha", WHEN)], Owner("id", "name"))
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">')
    assert _tags(document) == ["ListAllMyBucketsResult", "Owner", "ID", "DisplayName", "Buckets", "Bucket", "Name", "CreationDate"]
    assert b"<CreationDate>2009-10-12T17:50:30.123Z</CreationDate>" in document


def test_list_objects_v2_writes_the_elements_in_s3s_order() -> None:
    listing = ObjectListing(
        bucket="bucket",
        prefix="photos/",
        delimiter="/",
        max_keys=2,
        is_truncated=True,
        contents=[ObjectEntry("photos/a.jpg", WHEN, "fba9dede5f27731c9771645a39863328", 434234)],
        common_prefixes=["photos/2006/"],
        encoding_type="url",
    )
    document = list_objects_v2_result(
        listing, continuation_token="tok1", next_continuation_token="tok2", start_after="photos/"
    )
    assert _tags(document) == [
        "ListBucketResult", "Name", "Prefix", "ContinuationToken", "NextContinuationToken", "StartAfter",
        "KeyCount", "MaxKeys", "Delimiter", "EncodingType", "IsTruncated",
        "Contents", "Key", "LastModified", "ETag", "Size", "StorageClass",
        "CommonPrefixes", "Prefix",
    ]
    assert b"<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>" in document
    assert b"<LastModified>2009-10-12T17:50:30.123Z</LastModified>" in document
    assert b"<KeyCount>2</KeyCount>" in document


@PER_EXAMPLE
@given(
    keys=st.lists(any_keys, max_size=5, unique=True),
    prefixes=st.lists(any_keys, max_size=3, unique=True),
    prefix=any_keys,
    delimiter=any_keys,
    start_after=any_keys,
    when=timestamps,
    size=sizes,
    etag=etags,
    truncated=st.booleans(),
)
def test_list_objects_v2_url_encoding_round_trips_any_key_through_boto3(
    s3: S3Oracle,
    keys: list[str],
    prefixes: list[str],
    prefix: str,
    delimiter: str,
    start_after: str,
    when: datetime,
    size: int,
    etag: str,
    truncated: bool,
) -> None:
    entries = [ObjectEntry(k, when, etag, size) for k in keys]
    listing = ObjectListing(
        bucket="bucket",
        prefix=prefix,
        delimiter=delimiter,
        max_keys=1000,
        is_truncated=truncated,
        contents=entries,
        common_prefixes=prefixes,
        encoding_type="url",
    )
    s3.transport.respond(
        list_objects_v2_result(listing, continuation_token="c+/=", next_continuation_token="n+/=", start_after=start_after)
    )

    response = without_metadata(s3.client.list_objects_v2(Bucket="bucket", Prefix="p"))

    expected: dict[str, object] = {
        "IsTruncated": truncated,
        "Name": "bucket",
        "Prefix": prefix,
        "Delimiter": delimiter,
        "MaxKeys": 1000,
        "EncodingType": "url",
        "KeyCount": len(keys) + len(prefixes),
        "ContinuationToken": "c+/=",
        "NextContinuationToken": "n+/=",
        "StartAfter": start_after,
    }
    if entries:
        expected["Contents"] = _expected_contents(entries)
    if prefixes:
        expected["CommonPrefixes"] = [{"Prefix": p} for p in prefixes]
    assert response == expected
    assert "encoding-type=url" in s3.transport.requests[-1].url


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(object_keys, min_size=1, max_size=4), prefix=xml_text, delimiter=xml_text, when=timestamps)
def test_list_objects_v2_without_encoding_carries_any_xml_text(
    keys: list[str], prefix: str, delimiter: str, when: datetime
) -> None:
    entries = [ObjectEntry(k, when, "d41d8cd98f00b204e9800998ecf8427e", 0) for k in keys]
    listing = ObjectListing(bucket="b", prefix=prefix, delimiter=delimiter or None, contents=entries)

    parsed = parse_with_botocore("ListObjectsV2", list_objects_v2_result(listing, start_after=prefix))

    assert [c["Key"] for c in parsed["Contents"]] == keys
    assert parsed["Prefix"] == prefix
    assert parsed["StartAfter"] == prefix
    assert parsed.get("Delimiter") == (delimiter or None)
    assert "EncodingType" not in parsed


@PER_EXAMPLE
@given(keys=st.lists(any_keys, min_size=1, max_size=4, unique=True), marker=any_keys, next_marker=any_keys)
def test_list_objects_v1_url_encoding_round_trips_markers_through_boto3(
    s3: S3Oracle, keys: list[str], marker: str, next_marker: str
) -> None:
    entries = [ObjectEntry(k, WHEN, "d41d8cd98f00b204e9800998ecf8427e", 1) for k in keys]
    listing = ObjectListing(
        bucket="bucket", delimiter="/", is_truncated=True, contents=entries, common_prefixes=["a b/"], encoding_type="url"
    )
    s3.transport.respond(list_objects_v1_result(listing, marker=marker, next_marker=next_marker))

    response = without_metadata(s3.client.list_objects(Bucket="bucket"))

    assert response == {
        "IsTruncated": True,
        "Marker": marker,
        "NextMarker": next_marker,
        "Contents": _expected_contents(entries),
        "Name": "bucket",
        "Prefix": "",
        "Delimiter": "/",
        "MaxKeys": 1000,
        "CommonPrefixes": [{"Prefix": "a b/"}],
        "EncodingType": "url",
    }


def test_list_objects_v1_writes_marker_before_max_keys() -> None:
    listing = ObjectListing(bucket="b", contents=[ObjectEntry("k", WHEN, "0" * 32, 1)])
    assert _tags(list_objects_v1_result(listing, marker="a", next_marker="k")) == [
        "ListBucketResult", "Name", "Prefix", "Marker", "NextMarker", "MaxKeys", "IsTruncated",
        "Contents", "Key", "LastModified", "ETag", "Size", "StorageClass",
    ]


def test_url_encoding_keeps_what_s3_keeps_and_writes_a_space_as_plus() -> None:
    assert url_encode("photos/2006/a-b_c.d*e") == "photos/2006/a-b_c.d*e"
    assert url_encode("a b+c~") == "a+b%2Bc%7E"
    assert url_encode("é\x01&") == "%C3%A9%01%26"


def test_an_encoding_type_other_than_url_is_an_invalid_argument() -> None:
    assert parse_encoding_type(None) is None
    assert parse_encoding_type("url") == "url"
    assert parse_encoding_type("URL") == "url"
    with pytest.raises(InvalidArgument) as caught:
        parse_encoding_type("base64")
    assert caught.value.details == (("ArgumentName", "encoding-type"), ("ArgumentValue", "base64"))
