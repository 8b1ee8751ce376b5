"""The gateway calls the KMS as its caller: key policies and grants decide who writes and reads.

Against a real ``kmsgate serve`` with alice, bob and carol declared. Every key is created by the
root with a policy made for the test.
"""

from __future__ import annotations

import os

from .conftest import ALICE, BOB, CAROL, USE, AuthGateway, allow


def unique(name: str) -> str:
    return f"{name}-{os.urandom(6).hex()}"


def test_user_allowed_by_key_policy_writes_and_reads(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key, data = unique("alice"), os.urandom(70_000)
    put = gw.as_(ALICE, "PUT", f"/v1/objects/{key}", data, key_id=key_arn)
    assert put.status == 201, put
    got = gw.as_(ALICE, "GET", f"/v1/objects/{key}")
    assert (got.status, got.body) == (200, data)
    message = gw.as_(ALICE, "POST", "/v1/encrypt", b"streamed", key_id=key_arn)
    assert message.status == 200
    assert gw.as_(ALICE, "POST", "/v1/decrypt", message.body).body == b"streamed"


def test_principal_without_allow_is_403_and_nothing_is_stored(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key = unique("carol")
    put = gw.as_(CAROL, "PUT", f"/v1/objects/{key}", b"not allowed", key_id=key_arn)
    assert (put.status, put.code) == (403, "AccessDeniedException")
    assert not gw.stored(key)
    encrypt = gw.as_(CAROL, "POST", "/v1/encrypt", b"not allowed", key_id=key_arn)
    assert (encrypt.status, encrypt.code) == (403, "AccessDeniedException")
    # Nor the default key, whose policy names only the account root.
    default = gw.as_(CAROL, "PUT", f"/v1/objects/{key}", b"not allowed")
    assert (default.status, default.code) == (403, "AccessDeniedException")
    assert not gw.stored(key)


def test_reader_without_decrypt_permission_is_403(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE), allow(BOB, ["kms:GenerateDataKey"], sid="BobWrites"))
    key = unique("writeonly")
    assert gw.as_(BOB, "PUT", f"/v1/objects/{key}", b"bob wrote this", key_id=key_arn).status == 201
    denied = gw.as_(BOB, "GET", f"/v1/objects/{key}")
    assert (denied.status, denied.code) == (403, "AccessDeniedException")
    assert gw.as_(ALICE, "GET", f"/v1/objects/{key}").body == b"bob wrote this"


def test_head_is_authorized_like_get(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE), allow(BOB, ["kms:GenerateDataKey"], sid="BobWrites"))
    key = unique("head")
    assert gw.as_(BOB, "PUT", f"/v1/objects/{key}", b"bob wrote this", key_id=key_arn).status == 201
    assert gw.as_(BOB, "HEAD", f"/v1/objects/{key}").status == 403
    head = gw.as_(ALICE, "HEAD", f"/v1/objects/{key}")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(b"bob wrote this"))


def test_encryption_context_condition_allows_one_context_and_denies_another(gw: AuthGateway) -> None:
    condition = {"StringEquals": {"kms:EncryptionContext:tenant": "blue"}}
    key_arn = gw.create_key(allow(ALICE, USE, Condition=condition))
    blue, red = unique("blue"), unique("red")
    assert gw.as_(ALICE, "PUT", f"/v1/objects/{blue}", b"blue", key_id=key_arn, context={"tenant": "blue"}).status == 201
    assert gw.as_(ALICE, "GET", f"/v1/objects/{blue}").body == b"blue"
    denied = gw.as_(ALICE, "PUT", f"/v1/objects/{red}", b"red", key_id=key_arn, context={"tenant": "red"})
    assert (denied.status, denied.code) == (403, "AccessDeniedException")
    assert not gw.stored(red)
    # An object the root wrote under the other context: alice may not read it either.
    assert gw.as_(gw.root, "PUT", f"/v1/objects/{red}", b"red", key_id=key_arn, context={"tenant": "red"}).status == 201
    read = gw.as_(ALICE, "GET", f"/v1/objects/{red}")
    assert (read.status, read.code) == (403, "AccessDeniedException")


def test_another_principals_cached_data_key_is_never_used(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key = unique("cached")
    context = {"purpose": "cache-isolation"}
    assert gw.as_(ALICE, "PUT", f"/v1/objects/{key}", b"alice's", key_id=key_arn, context=context).status == 201
    assert gw.as_(ALICE, "GET", f"/v1/objects/{key}").body == b"alice's"  # her decryption cache holds the key now
    # Same object, same header: the read is decided by the KMS for carol, not served from alice's cache.
    read = gw.as_(CAROL, "GET", f"/v1/objects/{key}")
    assert (read.status, read.code) == (403, "AccessDeniedException")
    # Same key and context as alice's cached encryption materials: carol still needs her own Allow.
    write = gw.as_(CAROL, "PUT", f"/v1/objects/{unique('c')}", b"x", key_id=key_arn, context=context)
    assert (write.status, write.code) == (403, "AccessDeniedException")
    assert gw.as_(ALICE, "GET", f"/v1/objects/{key}").body == b"alice's"


def test_a_grant_lets_a_principal_read(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key = unique("granted")
    assert gw.as_(ALICE, "PUT", f"/v1/objects/{key}", b"shared", key_id=key_arn, context={"team": "x"}).status == 201
    assert gw.as_(BOB, "GET", f"/v1/objects/{key}").status == 403
    kms = gw.server.kms_client()
    grant = kms.create_grant(KeyId=key_arn, GranteePrincipal=BOB.arn, Operations=["Decrypt"],
                             Constraints={"EncryptionContextSubset": {"team": "x"}})
    got = gw.as_(BOB, "GET", f"/v1/objects/{key}")
    assert (got.status, got.body) == (200, b"shared")
    kms.revoke_grant(KeyId=key_arn, GrantId=grant["GrantId"])


def test_deny_statement_overrides_allow_for_the_gateway(gw: AuthGateway) -> None:
    deny = {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": {"AWS": ALICE.arn}, "Action": "kms:Decrypt",
            "Resource": "*"}
    key_arn = gw.create_key(allow(ALICE, USE), deny)
    key = unique("denied")
    assert gw.as_(ALICE, "PUT", f"/v1/objects/{key}", b"x", key_id=key_arn).status == 201
    read = gw.as_(ALICE, "GET", f"/v1/objects/{key}")
    assert (read.status, read.code) == (403, "AccessDeniedException")


def test_root_bearer_token_reads_what_users_wrote(gw: AuthGateway) -> None:
    key_arn = gw.create_key(allow(ALICE, USE))
    key = unique("root")
    assert gw.as_(ALICE, "PUT", f"/v1/objects/{key}", b"for root", key_id=key_arn).status == 201
    assert gw.as_(gw.root, "GET", f"/v1/objects/{key}").body == b"for root"


def test_a_context_key_in_two_cases_passes_neither_the_key_policy_nor_the_read_check(gw: AuthGateway) -> None:
    tenant_alice = allow(ALICE, USE, "TenantAlice", Condition={"StringEquals": {"kms:EncryptionContext:tenant": "alice"}})
    tenant_bob = allow(BOB, USE, "TenantBob", Condition={"StringEquals": {"kms:EncryptionContext:tenant": "bob"}})
    key_arn = gw.create_key(tenant_alice, tenant_bob, allow(CAROL, USE, "AnyTenant"))
    for forged in ({"tenant": "bob", "TENANT": "alice"}, {"TENANT": "alice", "tenant": "bob"}):
        name = unique("forged")
        put = gw.as_(ALICE, "PUT", f"/v1/objects/{name}", b"forged", key_id=key_arn, context=forged)
        assert (put.status, put.code) == (403, "AccessDeniedException")
        assert not gw.stored(name)
        # Written by carol, who may use any context: not bob's to read as tenant=bob.
        assert gw.as_(CAROL, "PUT", f"/v1/objects/{name}", b"two tenants", key_id=key_arn, context=forged).status == 201
        read = gw.as_(BOB, "GET", f"/v1/objects/{name}", context={"tenant": "bob"})
        assert (read.status, read.code) == (403, "AccessDeniedException")
        # A reader who may decrypt it learns that the object's context is not the one expected.
        read = gw.as_(CAROL, "GET", f"/v1/objects/{name}", context={"tenant": "bob"})
        assert (read.status, read.code) == (400, "EncryptionContextMismatch")
        assert gw.as_(CAROL, "GET", f"/v1/objects/{name}", context=forged).body == b"two tenants"
        message = gw.as_(CAROL, "POST", "/v1/encrypt", b"streamed", key_id=key_arn, context=forged)
        assert message.status == 200
        read = gw.as_(CAROL, "POST", "/v1/decrypt", message.body, context={"tenant": "bob"})
        assert (read.status, read.code) == (400, "EncryptionContextMismatch")
        assert gw.as_(CAROL, "POST", "/v1/decrypt", message.body, context=forged).body == b"streamed"
