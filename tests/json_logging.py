"""A test logger wired like kmsgate's own: JSON formatter, loop-batching handler, a string stream."""

from __future__ import annotations

import io
import logging
import uuid

from kmsgate.logs import JsonFormatter, LoopBatchingHandler


def json_logger(stream: io.StringIO) -> tuple[logging.Logger, LoopBatchingHandler]:
    """A fresh logger (its own name, no propagation, INFO) whose only handler writes to ``stream``."""
    handler = LoopBatchingHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"kmsgate.test.{uuid.uuid4().hex}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler
