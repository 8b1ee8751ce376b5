"""The access log line: the same JSON whether it goes straight to kmsgate's handler or through a LogRecord."""

from __future__ import annotations

import asyncio
import io
import logging

import orjson

from json_logging import json_logger

from kmsgate.web.access import AccessLog

FIELDS = dict(method="PUT", route="object", path="/v1/objects/" + "k" * 300, status=201, error=None,
              bytes_in=1024, bytes_out=57, seconds=0.0123456, remote="127.0.0.1",
              principal="arn:aws:iam::111122223333:user/alice")


def access_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger, _ = json_logger(stream)
    return logger, stream


def logged_lines(logger: logging.Logger, stream: io.StringIO) -> list[dict]:
    async def main() -> None:
        AccessLog(logger).log(**FIELDS)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(main())
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_direct_line_equals_the_line_made_from_a_record() -> None:
    direct_logger, direct_stream = access_logger()
    (direct,) = logged_lines(direct_logger, direct_stream)

    record_logger, record_stream = access_logger()
    record_logger.addFilter(lambda record: True)  # a filter must see a record: the ordinary path
    (via_record,) = logged_lines(record_logger, record_stream)

    assert list(direct) == list(via_record)  # same keys in the same order
    direct.pop("time"), via_record.pop("time")
    assert {**direct, "logger": ""} == {**via_record, "logger": ""}
    assert direct["message"] == "request" and direct["level"] == "info"
    assert direct["path"] == FIELDS["path"][:256]
    assert direct["duration_ms"] == 12.346


def test_filters_and_other_handlers_still_see_records() -> None:
    logger, stream = access_logger()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Keep())
    assert len(logged_lines(logger, stream)) == 1
    assert [record.__dict__["status"] for record in seen] == [201]

    dropping, dropped_stream = access_logger()
    dropping.addFilter(lambda record: False)
    assert logged_lines(dropping, dropped_stream) == []


def test_nothing_is_made_when_info_is_off() -> None:
    logger, stream = access_logger()
    logger.setLevel(logging.WARNING)
    assert logged_lines(logger, stream) == []
