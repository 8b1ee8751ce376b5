"""Allocator tuning at start-up (glibc's mallopt), run in child processes so the test process keeps its own settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import os, sys; from kmsgate.allocator import tune_allocator; print(tune_allocator(os.environ))"


def run_probe(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def _glibc() -> bool:
    import platform

    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="mallopt tuning applies to glibc only")
def test_glibc_accepts_the_settings() -> None:
    assert run_probe({}) == "True"


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_an_operators_own_setting_is_left_alone(name: str) -> None:
    assert run_probe({name: "131072"}) == "False"


TRIM_PROBE = """
import ctypes, os
from kmsgate.allocator import tune_allocator, trim_heap

def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

assert tune_allocator(os.environ)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
blocks = [libc.malloc(256 * 1024) for _ in range(160)]  # 40 MiB of heap blocks (below the mmap threshold)
for block in blocks:
    ctypes.memset(block, 1, 256 * 1024)  # touched: resident
keep = blocks.pop()  # the last block stays in use, above the freed ones
for block in blocks:
    libc.free(block)
before = rss_kib()
released = trim_heap()
after = rss_kib()
print(released, before - after)
"""


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_trimming_returns_the_free_heap_the_tuning_keeps_to_the_kernel() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    released, shrunk_kib = subprocess.run([sys.executable, "-c", TRIM_PROBE], env=env, capture_output=True,
                                          text=True, check=True).stdout.split()
    assert released == "True"
    assert int(shrunk_kib) >= 30 * 1024  # most of the 39 MiB freed left the resident set
