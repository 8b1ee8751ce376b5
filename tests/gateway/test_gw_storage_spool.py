"""The spool of a write of unknown length: memory up to ``MEMORY_BYTES``, a temporary file beyond."""

from __future__ import annotations

import os

from kmsgate.gateway.storage.spool import MEMORY_BYTES, Spool


async def test_a_spool_keeps_small_bodies_in_memory_and_moves_large_ones_to_a_file() -> None:
    spool = Spool()
    small = os.urandom(MEMORY_BYTES)
    await spool.write(small)
    assert (spool.size, spool.memory_bytes, await spool.body()) == (len(small), len(small), small)
    rest = os.urandom(3 * MEMORY_BYTES + 5)
    for i in range(0, len(rest), 65536):
        await spool.write(rest[i : i + 65536])
        assert spool.memory_bytes == 0
    body = await spool.body()
    assert not isinstance(body, bytes)
    assert (spool.size, body.read()) == (len(small) + len(rest), small + rest)
    await spool.clear()
    await spool.write(b"again")
    body = await spool.body()
    assert not isinstance(body, bytes)
    assert (spool.size, body.read()) == (5, b"again")
    spool.close()
    assert spool.size == 0
