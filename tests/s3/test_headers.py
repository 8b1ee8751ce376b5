"""response-* overrides and x-amz-meta-* user metadata, including what boto3 sends."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from kmsgate.s3.errors import InvalidArgument, MetadataTooLarge
from kmsgate.s3.headers import (
    MAX_USER_METADATA_BYTES,
    collect_user_metadata,
    parse_response_overrides,
    user_metadata_headers,
)
from tests.s3.conftest import S3Oracle


def test_boto3s_response_overrides_become_response_headers(s3: S3Oracle) -> None:
    s3.transport.respond(b"body")
    s3.client.get_object(
        Bucket="b",
        Key="k",
        ResponseContentType="text/plain; charset=utf-8",
        ResponseContentDisposition='attachment; filename="a b.txt"',
        ResponseContentEncoding="gzip",
        ResponseContentLanguage="fr",
        ResponseCacheControl="no-cache",
        ResponseExpires="Thu, 01 Dec 1994 16:00:00 GMT",
    )
    query = dict(parse_qsl(urlsplit(s3.transport.requests[-1].url).query, keep_blank_values=True))

    assert parse_response_overrides(query) == {
        "Cache-Control": "no-cache",
        "Content-Disposition": 'attachment; filename="a b.txt"',
        "Content-Encoding": "gzip",
        "Content-Language": "fr",
        "Content-Type": "text/plain; charset=utf-8",
        "Expires": "Thu, 01 Dec 1994 16:00:00 GMT",
    }


def test_no_overrides_without_the_parameters() -> None:
    assert parse_response_overrides({"versionId": "v", "partNumber": "1"}) == {}


@pytest.mark.parametrize("value", ["text/plain\r\nSet-Cookie: a=b", "a\nb", "a\x00b", "a\x7fb"])
def test_an_override_that_could_split_a_header_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_response_overrides({"response-content-type": value})
    assert ("ArgumentName", "response-content-type") in caught.value.details


def test_boto3s_user_metadata_is_collected_lower_case(s3: S3Oracle) -> None:
    s3.client.put_object(Bucket="b", Key="k", Body=b"x", Metadata={"Colour": "red", "owner-id": "42"})
    assert collect_user_metadata(s3.transport.last_headers.items()) == {"colour": "red", "owner-id": "42"}


def test_a_repeated_metadata_header_is_joined_with_commas() -> None:
    headers = [("X-Amz-Meta-Tag", "a"), ("x-amz-meta-tag", "b"), ("x-amz-meta-", "ignored"), ("Content-Type", "x")]
    assert collect_user_metadata(headers) == {"tag": "a,b"}


def test_user_metadata_up_to_2_kb_is_accepted_and_one_byte_more_is_not() -> None:
    name = "n"
    exact = [("x-amz-meta-" + name, "v" * (MAX_USER_METADATA_BYTES - len(name)))]
    assert len(collect_user_metadata(exact)[name]) == MAX_USER_METADATA_BYTES - 1
    with pytest.raises(MetadataTooLarge):
        collect_user_metadata([("x-amz-meta-" + name, "v" * (MAX_USER_METADATA_BYTES - len(name) + 1))])


def test_metadata_size_counts_utf8_bytes() -> None:
    with pytest.raises(MetadataTooLarge):
        collect_user_metadata([("x-amz-meta-n", "é" * 1024)])


def test_user_metadata_goes_back_out_with_its_prefix() -> None:
    assert user_metadata_headers({"colour": "red"}) == [("x-amz-meta-colour", "red")]
