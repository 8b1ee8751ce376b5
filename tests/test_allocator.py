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
