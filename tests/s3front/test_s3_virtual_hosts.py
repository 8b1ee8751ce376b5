"""Virtual-hosted–style addressing (``Host: <bucket>.localhost:<port>``) driven by boto3 over loopback.

``<bucket>.localhost`` does not resolve here (glibc resolves ``localhost`` itself only, and
/etc/hosts is not ours to edit), so boto3 signs the virtual-hosted request as it would send it
and a ``before-send`` hook only redirects the connection to 127.0.0.1, keeping the ``Host``
header boto3 signed: what reaches kmsgate is byte for byte the request a resolving client sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.conftest import KmsgateServer, free_port, start_server
from tests.s3front.conftest import s3_client, s3_endpoint


def virtual_client(server: KmsgateServer, domain: str = "localhost") -> tuple[Any, list[str]]:
    """A boto3 client addressing buckets as ``<bucket>.<domain>:<port>``, and the hosts it sent."""
    port = urlsplit(s3_endpoint(server)).port
    client = server.boto_session().client(
        "s3", endpoint_url=f"http://{domain}:{port}",
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "virtual"},
                          retries={"max_attempts": 1, "mode": "standard"}))
    sent: list[str] = []

    def to_loopback(request: Any, **_: Any) -> None:
        url = urlsplit(request.url)
        sent.append(url.netloc)
        request.headers["Host"] = url.netloc
        request.url = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))

    client.meta.events.register("before-send.s3", to_loopback)
    return client, sent


def test_a_bucket_named_by_the_host_is_served_like_a_path_style_one(
        s3_server: KmsgateServer, s3: Any, bucket: str) -> None:
    port = urlsplit(s3_endpoint(s3_server)).port
    virtual_s3, sent = virtual_client(s3_server)
    virtual_s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"virtually hosted", ContentType="text/plain")
    assert sent == [f"{bucket}.localhost:{port}"]
    got = virtual_s3.get_object(Bucket=bucket, Key="dir/a.txt")
    assert (got["Body"].read(), got["ContentType"]) == (b"virtually hosted", "text/plain")
    assert s3.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"virtually hosted"
    listed = virtual_s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a.txt"]
    virtual_s3.delete_object(Bucket=bucket, Key="dir/a.txt")
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="dir/a.txt")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert all(host == f"{bucket}.localhost:{port}" for host in sent)


def test_a_virtual_hosted_request_for_a_missing_bucket_is_no_such_bucket(s3_server: KmsgateServer) -> None:
    virtual_s3, sent = virtual_client(s3_server)
    with pytest.raises(ClientError) as err:
        virtual_s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert err.value.response["Error"]["Code"] == "NoSuchBucket"
    assert sent[0].startswith("no-such-bucket-here.localhost:")


@pytest.fixture(scope="module")
def domain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsgateServer]:
    """A kmsgate whose S3 API also takes ``<bucket>.s3.kmsgate.test`` as virtual-hosted."""
    server = start_server(tmp_path_factory.mktemp("kmsgate-s3-domain") / "data", "--s3-port", str(free_port()),
                          "--s3-domain", "s3.kmsgate.test")
    yield server
    server.stop()


def test_a_bucket_under_the_configured_s3_domain_is_virtual_hosted(domain_server: KmsgateServer) -> None:
    path_style = s3_client(domain_server)
    path_style.create_bucket(Bucket="under-domain")
    virtual_s3, sent = virtual_client(domain_server, "s3.kmsgate.test")
    virtual_s3.put_object(Bucket="under-domain", Key="k", Body=b"by domain")
    assert sent[0].startswith("under-domain.s3.kmsgate.test:")
    assert path_style.get_object(Bucket="under-domain", Key="k")["Body"].read() == b"by domain"
    assert virtual_s3.get_object(Bucket="under-domain", Key="k")["Body"].read() == b"by domain"
