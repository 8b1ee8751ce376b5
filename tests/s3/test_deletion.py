"""DeleteObjects: Delete requests from boto3, DeleteResult read back by boto3."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmsgate.s3.errors import AccessDenied, MalformedXML, NotImplementedFeature
from kmsgate.s3.deletion import (
    MAX_DELETE_OBJECTS,
    MAX_DELETE_REQUEST_BYTES,
    DeletedObject,
    DeleteFailure,
    DeleteRequest,
    ObjectIdentifier,
    delete_result,
    parse_delete_request,
)
from tests.s3.conftest import S3Oracle, without_metadata
from tests.s3.strategies import object_keys

PER_EXAMPLE = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _boto3_delete_body(s3: S3Oracle, objects: list[dict[str, str]], quiet: bool | None) -> bytes:
    s3.transport.respond(delete_result([], []))
    delete: dict[str, object] = {"Objects": objects}
    if quiet is not None:
        delete["Quiet"] = quiet
    s3.client.delete_objects(Bucket="bucket", Delete=delete)
    return s3.transport.last_body


@PER_EXAMPLE
@given(keys=st.lists(object_keys, min_size=1, max_size=20), quiet=st.sampled_from([None, True, False]), versioned=st.booleans())
def test_a_delete_request_from_boto3_parses_to_the_same_keys(
    s3: S3Oracle, keys: list[str], quiet: bool | None, versioned: bool
) -> None:
    objects = [{"Key": k, "VersionId": f"v{i}"} if versioned else {"Key": k} for i, k in enumerate(keys)]

    request = parse_delete_request(_boto3_delete_body(s3, objects, quiet))

    assert request == DeleteRequest(
        objects=tuple(ObjectIdentifier(k, f"v{i}" if versioned else None) for i, k in enumerate(keys)),
        quiet=bool(quiet),
    )


def test_the_most_keys_s3_allows_at_the_longest_fit_under_the_cap(s3: S3Oracle) -> None:
    keys = [("&" * 1019) + f"{i:05d}" for i in range(MAX_DELETE_OBJECTS)]  # 1024 bytes, each & escaped
    body = _boto3_delete_body(s3, [{"Key": k, "VersionId": "v" * 1024} for k in keys], quiet=True)
    assert len(body) < MAX_DELETE_REQUEST_BYTES
    assert [o.key for o in parse_delete_request(body).objects] == keys


def test_more_than_1000_objects_is_malformed_xml(s3: S3Oracle) -> None:
    body = _boto3_delete_body(s3, [{"Key": f"k{i}"} for i in range(MAX_DELETE_OBJECTS + 1)], quiet=None)
    with pytest.raises(MalformedXML):
        parse_delete_request(body)


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete></Delete>",
        b"<Delete><Quiet>true</Quiet></Delete>",
        b"<Delete><Object></Object></Delete>",
        b"<Delete><Object><Key></Key></Object></Delete>",
        b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
        b"<Delete><Object><Key>a</Key></Object><Quiet>yes</Quiet></Delete>",
        b"<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet><Quiet>true</Quiet></Delete>",
        b"<Delete><Object><Key>a</Key><Colour>red</Colour></Object></Delete>",
        b"<Delete>text<Object><Key>a</Key></Object></Delete>",
        b"<Remove><Object><Key>a</Key></Object></Remove>",
        b"<Delete><Object><Key>a</Key></Object>",
    ],
)
def test_a_delete_request_outside_the_schema_is_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        parse_delete_request(body)


def test_keys_keep_their_surrounding_spaces() -> None:
    body = b"<Delete><Object><Key>  a b  </Key></Object><Quiet> true </Quiet></Delete>"
    assert parse_delete_request(body) == DeleteRequest((ObjectIdentifier("  a b  "),), quiet=True)


def test_a_conditional_delete_is_not_silently_unconditional(s3: S3Oracle) -> None:
    body = _boto3_delete_body(s3, [{"Key": "a", "ETag": '"abc"'}], quiet=None)
    with pytest.raises(NotImplementedFeature):
        parse_delete_request(body)


@PER_EXAMPLE
@given(deleted=st.lists(object_keys, max_size=5), failed=st.lists(object_keys, max_size=5))
def test_a_delete_result_reads_back_through_boto3(s3: S3Oracle, deleted: list[str], failed: list[str]) -> None:
    failures = [DeleteFailure.from_error(k, AccessDenied()) for k in failed]
    s3.transport.respond(delete_result([DeletedObject(k) for k in deleted], failures))

    response = without_metadata(s3.client.delete_objects(Bucket="b", Delete={"Objects": [{"Key": "x"}]}))

    expected: dict[str, object] = {}
    if deleted:
        expected["Deleted"] = [{"Key": k} for k in deleted]
    if failed:
        expected["Errors"] = [{"Key": k, "Code": "AccessDenied", "Message": "Access Denied"} for k in failed]
    assert response == expected


def test_quiet_mode_reports_only_failures(s3: S3Oracle) -> None:
    s3.transport.respond(
        delete_result(
            [DeletedObject("gone", version_id="v1", delete_marker=True, delete_marker_version_id="v2")],
            [DeleteFailure("kept", "AccessDenied", "Access Denied", version_id="v3")],
            quiet=True,
        )
    )
    response = without_metadata(s3.client.delete_objects(Bucket="b", Delete={"Objects": [{"Key": "x"}]}))
    assert response == {"Errors": [{"Key": "kept", "VersionId": "v3", "Code": "AccessDenied", "Message": "Access Denied"}]}


def test_deleted_entries_carry_their_version_fields(s3: S3Oracle) -> None:
    s3.transport.respond(
        delete_result([DeletedObject("gone", version_id="v1", delete_marker=True, delete_marker_version_id="v2")], [])
    )
    response = without_metadata(s3.client.delete_objects(Bucket="b", Delete={"Objects": [{"Key": "x"}]}))
    assert response == {
        "Deleted": [{"Key": "gone", "VersionId": "v1", "DeleteMarker": True, "DeleteMarkerVersionId": "v2"}]
    }
