"""Objects have owners: identity policies decide ``s3:*`` object actions, and each object is bound to its name.

Against a real ``kmsgate serve`` whose identities file gives alice read and write on ``alice/*``
(with one explicit Deny), bob read and write on ``bob/*`` and the right to list the bucket, and
carol no identity policy at all. Every key used here lets all three use it, so only the object
access model can tell them apart.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsgate.envelope.header import DecryptPolicy, parse_header
from kmsgate.gateway.storage.catalog import CATALOG_FILENAME
from kmsgate.gateway.storage.file import FileStorage
from tests.conftest import start_server

from .conftest import ALICE, BOB, CAROL, USE, AuthGateway, Identity, allow, identities_toml

BUCKET = "kmsgate"


def _policy(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALICE_POLICY = _policy(
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": f"arn:aws:s3:::{BUCKET}/alice/*"},
    {"Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/alice/locked/*"},
)
BOB_POLICY = _policy(
    {"Effect": "Allow", "Action": "s3:*Object", "Resource": f"arn:aws:s3:::{BUCKET}/bob/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
)


def _identities() -> str:
    return "\n".join((identities_toml((ALICE,), ALICE_POLICY), identities_toml((BOB,), BOB_POLICY),
                      identities_toml((CAROL,), None)))


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthGateway, str]]:
    """The server, and a key every principal may use."""
    base = tmp_path_factory.mktemp("object-access")
    path: Path = base / "identities.toml"
    path.write_text(_identities())
    path.chmod(0o600)
    server = start_server(base / "data", "--identities", str(path))
    gw = AuthGateway(server)
    yield gw, gw.create_key(allow([ALICE, BOB, CAROL], USE))
    server.stop()


def name(prefix: str) -> str:
    return f"{prefix}/{os.urandom(6).hex()}"


def put(gw: AuthGateway, who: Identity, key: str, data: bytes, key_arn: str, *, sigv4: bool = False) -> int:
    return gw.as_(who, "PUT", f"/v1/objects/{key}", data, key_id=key_arn, sigv4=sigv4).status


def test_a_user_reads_and_writes_under_its_prefix_with_either_credential(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    for sigv4 in (False, True):
        key, data = name("alice"), os.urandom(5000)
        assert put(gw, ALICE, key, data, key_arn, sigv4=sigv4) == 201
        assert gw.as_(ALICE, "GET", f"/v1/objects/{key}", sigv4=sigv4).body == data
        assert gw.as_(ALICE, "HEAD", f"/v1/objects/{key}", sigv4=sigv4).status == 200
        assert gw.as_(ALICE, "DELETE", f"/v1/objects/{key}", sigv4=sigv4).status == 204
        assert not gw.stored(key)


def test_a_principal_cannot_delete_head_read_or_overwrite_another_principals_object(
        owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    key, data = name("alice"), b"alice's data"
    assert put(gw, ALICE, key, data, key_arn) == 201
    for method in ("DELETE", "HEAD", "GET"):
        for sigv4 in (False, True):
            denied = gw.as_(BOB, method, f"/v1/objects/{key}", sigv4=sigv4)
            assert denied.status == 403, (method, denied)
            if method != "HEAD":
                assert denied.code == "AccessDenied"
    overwrite = gw.as_(BOB, "PUT", f"/v1/objects/{key}", b"bob's data", key_id=key_arn)
    assert (overwrite.status, overwrite.code) == (403, "AccessDenied")
    assert gw.as_(ALICE, "GET", f"/v1/objects/{key}").body == data


def test_a_principal_without_an_identity_policy_may_do_nothing_to_objects(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    key = name("alice")
    assert put(gw, ALICE, key, b"kept", key_arn) == 201
    for method, body in (("PUT", b"x"), ("GET", b""), ("DELETE", b"")):
        reply = gw.as_(CAROL, method, f"/v1/objects/{key}", body, key_id=key_arn)
        assert (reply.status, reply.code) == (403, "AccessDenied"), method
        assert CAROL.arn in reply.json()["message"]
    assert gw.as_(CAROL, "HEAD", f"/v1/objects/{key}").status == 403
    assert gw.as_(CAROL, "PUT", f"/v1/objects/{name('carol')}", b"x", key_id=key_arn).status == 403
    assert gw.stored(key)
    # The KMS itself still lets carol use the key: the object actions were what was refused.
    assert gw.as_(CAROL, "POST", "/v1/encrypt", b"streams are not objects", key_id=key_arn).status == 200


def test_an_explicit_deny_in_the_identity_policy_wins_over_its_allow(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    key = name("alice/locked")
    reply = gw.as_(ALICE, "PUT", f"/v1/objects/{key}", b"x", key_id=key_arn)
    assert (reply.status, reply.code) == (403, "AccessDenied")
    assert "explicit deny" in reply.json()["message"]
    assert not gw.stored(key)


def test_a_missing_object_is_404_only_to_a_caller_who_may_list_the_bucket(owned: tuple[AuthGateway, str]) -> None:
    gw, _ = owned
    for method in ("GET", "HEAD"):
        assert gw.as_(ALICE, method, f"/v1/objects/{name('alice')}").status == 403, method
        assert gw.as_(BOB, method, f"/v1/objects/{name('bob')}").status == 404, method


def test_the_account_root_may_do_everything(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    key = name("bob")
    assert put(gw, BOB, key, b"bob's", key_arn) == 201
    assert gw.as_(gw.root, "GET", f"/v1/objects/{key}").body == b"bob's"
    assert gw.as_(gw.root, "DELETE", f"/v1/objects/{key}").status == 204


def _stored_files(gw: AuthGateway, key: str) -> list[Path]:
    storage = FileStorage(gw.server.data_dir / "objects")  # the server's storage, opened alongside it
    try:
        return storage.object_files(BUCKET, key)
    finally:
        storage.catalog.close()


def _catalog(gw: AuthGateway) -> sqlite3.Connection:
    return sqlite3.connect(gw.server.data_dir / "objects" / CATALOG_FILENAME, timeout=30)


def _stored_bytes(gw: AuthGateway, key: str) -> bytes:
    """The stored message of ``key``: its data file's, or its catalog row's when kept inline."""
    files = _stored_files(gw, key)
    if files:
        return files[0].read_bytes()
    with _catalog(gw) as db:
        (data,) = db.execute("SELECT data FROM objects WHERE bucket = ? AND key = ?", (BUCKET, key)).fetchone()
    return bytes(data)


def _store_bytes(gw: AuthGateway, key: str, data: bytes) -> None:
    """Put ``data`` where the stored message of ``key`` is, as someone with access to storage could."""
    files = _stored_files(gw, key)
    if files:
        files[0].write_bytes(data)
        return
    db = _catalog(gw)
    try:
        with db:
            db.execute("UPDATE objects SET data = ? WHERE bucket = ? AND key = ?", (data, BUCKET, key))
    finally:
        db.close()


def test_each_object_is_stored_under_a_context_naming_its_arn(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    key = name("alice")
    reply = gw.as_(ALICE, "PUT", f"/v1/objects/{key}", b"bound", key_id=key_arn, context={"app": "orders"})
    assert reply.status == 201
    header, _ = parse_header(_stored_bytes(gw, key), DecryptPolicy())
    assert header is not None
    assert {k: v for k, v in header.encryption_context.items() if not k.startswith("aws-crypto-")} == {
        "app": "orders", "aws:s3:arn": f"arn:aws:s3:::{BUCKET}/{key}"}


def test_a_ciphertext_moved_to_another_name_does_not_decrypt_as_that_name(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    source, target = name("alice"), name("alice")
    assert put(gw, ALICE, source, b"written as source", key_arn) == 201
    assert put(gw, ALICE, target, b"written as target", key_arn) == 201
    _store_bytes(gw, target, _stored_bytes(gw, source))  # someone with access to storage
    for method in ("GET", "HEAD"):
        moved = gw.as_(ALICE, method, f"/v1/objects/{target}")
        assert moved.status == 502, (method, moved)
    assert gw.as_(ALICE, "GET", f"/v1/objects/{target}").code == "ObjectCorrupt"
    ranged = gw.send("GET", f"/v1/objects/{target}",
                     headers={"Authorization": f"Bearer {ALICE.token}", "Range": "bytes=0-3"})
    assert ranged.status == 502
    assert gw.as_(ALICE, "GET", f"/v1/objects/{source}").body == b"written as source"


def test_a_client_cannot_name_the_object_binding_context_key_itself(owned: tuple[AuthGateway, str]) -> None:
    gw, key_arn = owned
    key = name("alice")
    forged = {"aws:s3:arn": f"arn:aws:s3:::{BUCKET}/bob/somewhere"}
    for method, path in (("PUT", f"/v1/objects/{key}"), ("POST", "/v1/encrypt")):
        reply = gw.as_(ALICE, method, path, b"x", key_id=key_arn, context=forged)
        assert (reply.status, reply.code) == (400, "InvalidArgument"), method
    assert not gw.stored(key)
