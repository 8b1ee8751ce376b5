"""The JSON log format and the per-loop-turn batching handler."""

from __future__ import annotations

import asyncio
import io

import orjson

from json_logging import json_logger


def test_each_record_is_one_json_object_with_its_extra_fields() -> None:
    stream = io.StringIO()
    logger, _ = json_logger(stream)
    logger.info("hello %s", "world", extra={"request_id": "r-1", "status": 201})
    (line,) = stream.getvalue().splitlines()
    entry = orjson.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "info"
    assert (entry["request_id"], entry["status"]) == ("r-1", 201)
    assert entry["time"].endswith("Z")


def test_lines_logged_in_one_loop_turn_are_written_together_after_it() -> None:
    stream = io.StringIO()
    logger, _ = json_logger(stream)

    async def main() -> str:
        for n in range(3):
            logger.info("line", extra={"n": n})
        during = stream.getvalue()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return during

    during = asyncio.run(main())
    assert during == ""
    assert [orjson.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2]


def test_close_writes_what_is_pending() -> None:
    stream = io.StringIO()
    logger, handler = json_logger(stream)

    async def main() -> None:
        logger.info("pending")
        handler.close()

    asyncio.run(main())
    assert orjson.loads(stream.getvalue())["message"] == "pending"
