"""Audit lines as serialised for speed are the same bytes the documented format gives."""

from __future__ import annotations

import datetime
import json

import pytest

from kmsgate.auth.audit import MAX_FIELD_CHARS, AuditRecord


def reference_line(record: AuditRecord) -> bytes:
    """The format written out the slow, obvious way: stdlib JSON, datetime formatting."""
    moment = datetime.datetime.fromtimestamp(record.time, datetime.timezone.utc)

    def cap(value: str | None) -> str | None:
        return value if value is None or len(value) <= MAX_FIELD_CHARS else value[:MAX_FIELD_CHARS] + "…"

    context = record.encryption_context
    fields = {
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "request_id": cap(record.request_id),
        "operation": cap(record.operation),
        "outcome": record.outcome,
        "error_code": cap(record.error_code),
        "principal_arn": cap(record.principal_arn),
        "access_key_id": cap(record.access_key_id),
        "source_ip": cap(record.source_ip),
        "key_arn": cap(record.key_arn),
        "encryption_context": None if context is None else {cap(k): cap(v) for k, v in context.items()},
        "authorized_by": cap(record.authorized_by),
        "grant_id": cap(record.grant_id),
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize("when", [0.0, 1.25, 59.999, 1767225600.0, 1767225600.123, 1767225601.9991, 1767225659.5])
def test_time_field_matches_datetime_formatting(when: float) -> None:
    record = AuditRecord(time=when, request_id="r", operation="Encrypt", outcome="success")
    assert record.to_line() == reference_line(record)


@pytest.mark.parametrize(
    "text", ["plain", 'quote " and backslash \\', "line\nbreak\ttab\x00nul\x1f", "é ü 日本 \u2028 \U0001f600", "x" * 5000]
)
def test_string_fields_match_stdlib_json(text: str) -> None:
    record = AuditRecord(
        time=1767225600.5,
        request_id=text,
        operation="Decrypt",
        outcome="denied",
        error_code="AccessDeniedException",
        principal_arn=text,
        source_ip="127.0.0.1",
        encryption_context={text: text, "k": "v"},
    )
    line = record.to_line()
    assert line == reference_line(record)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")


def test_sink_line_is_the_records_line(tmp_path) -> None:
    from kmsgate.auth.adapters import KmsAuditSink
    from kmsgate.core.principal import Caller

    class Lines:
        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def record_line(self, line: bytes) -> None:
            self.lines.append(line)

    entries = [
        {"request_id": "r1", "operation": "Encrypt", "caller": Caller("arn:aws:iam::111122223333:user/a", "111122223333", "AKIAA"),
         "source_ip": "127.0.0.1", "key_id": "k", "encryption_context": {"a": "b"}, "error_code": None},
        {"request_id": "r2", "operation": "Decrypt", "caller": None, "access_key_id": "AKIAX",
         "key_arn": "arn:aws:kms:us-east-1:111122223333:key/k", "error_code": "AccessDeniedException",
         "authorized_by": "grant", "grant_id": "g" * 3000},
    ]
    lines = Lines()
    sink = KmsAuditSink(lines, clock=lambda: 1767225600.25)  # type: ignore[arg-type]
    for entry in entries:
        sink.record(entry)
    assert lines.lines == [sink.to_record(entry).to_line() for entry in entries]
