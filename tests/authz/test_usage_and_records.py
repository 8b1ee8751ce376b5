"""The pure pieces behind grants and GetKeyLastUsage: grant records and the usage recorder."""

from __future__ import annotations

from kmsgate.auth.grants import new_grant
from kmsgate.kms.grant_records import grant_from_record, grant_to_record
from kmsgate.kms.usage import UsageRecorder, latest

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BOB = "arn:aws:iam::111122223333:role/app/bob"


def test_grant_records_round_trip_with_and_without_constraints() -> None:
    plain = new_grant(key_arn=KEY_ARN, grantee_principal=BOB, operations=["Encrypt"], account_id="111122223333",
                      now=1.5)
    constrained = new_grant(
        key_arn=KEY_ARN, grantee_principal=BOB, operations=["Decrypt", "RetireGrant"], account_id="111122223333",
        now=2.5, retiring_principal=BOB, encryption_context_subset={"a": "1"},
        encryption_context_equals={"b": "2"}, name="n",
    )
    for grant in (plain, constrained):
        assert grant_from_record(grant_to_record(grant)) == grant


def test_usage_recorder_keeps_the_latest_and_restores_after_a_failed_flush() -> None:
    recorder = UsageRecorder()
    recorder.note("k1", 10.0, "Encrypt")
    recorder.note("k1", 11.0, "Decrypt")
    assert recorder.peek("k1") == (11.0, "Decrypt")
    drained = recorder.drain()
    assert drained == {"k1": (11.0, "Decrypt")} and recorder.peek("k1") is None
    recorder.note("k1", 12.0, "GenerateDataKey")  # a use noted while the flush was failing
    recorder.restore(drained)
    assert recorder.peek("k1") == (12.0, "GenerateDataKey")
    recorder.restore({"k2": (5.0, "Encrypt")})
    assert recorder.peek("k2") == (5.0, "Encrypt")


def test_latest_ignores_missing_entries() -> None:
    assert latest(None, None) is None
    assert latest((3.0, "Encrypt"), None, (4.0, "Decrypt")) == (4.0, "Decrypt")
