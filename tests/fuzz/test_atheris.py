"""Each atheris target (``atheris_targets.py``) run under libFuzzer in a subprocess: no crash, all the runs asked.

``KMSGATE_ATHERIS_RUNS`` inputs per target (``make test``: ``ATHERIS_RUNS_DEFAULT``, a few seconds
each; ``make fuzz``: 10,000 or more), from the committed seeds in ``corpus/<target>/`` and a
scratch corpus that libFuzzer grows. ``KMSGATE_ATHERIS_MAX_SECONDS`` bounds a run (libFuzzer's
``-max_total_time``); a run it cuts short has not run what was asked, and fails. An input that makes a
target raise is written to the test's temporary directory and shown in the failure, with how to
replay it. Without atheris (no wheel for the platform) these tests skip, saying so.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .atheris_targets import CORPUS, TARGETS

ROOT = Path(__file__).resolve().parents[2]
ATHERIS_RUNS_DEFAULT = 2000
ATHERIS_MAX_SECONDS_DEFAULT = 600
RSS_LIMIT_MB = 1024
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)


def atheris_runs() -> int:
    return int(os.environ.get("KMSGATE_ATHERIS_RUNS", ATHERIS_RUNS_DEFAULT))


def atheris_max_seconds() -> int:
    return int(os.environ.get("KMSGATE_ATHERIS_MAX_SECONDS", ATHERIS_MAX_SECONDS_DEFAULT))


def run_target(target: str, runs: int, max_seconds: int, scratch: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                                   list[Path]]:
    """Run ``target`` under libFuzzer; its completed process and the reproducers it wrote."""
    working, artifacts = scratch / "corpus", scratch / "artifacts"
    working.mkdir()
    artifacts.mkdir()
    command = [sys.executable, "-m", "tests.fuzz.atheris_runner", target, f"-runs={runs}",
               f"-max_total_time={max_seconds}", f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={artifacts}/",
               str(working), str(ROOT / "tests" / "fuzz" / "corpus" / target)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, errors="replace",
                             timeout=max_seconds + 120)
    return process, sorted(artifacts.iterdir())


def _report(target: str, process: subprocess.CompletedProcess[str], reproducers: list[Path]) -> str:
    lines = [f"exit status {process.returncode}", "--- libFuzzer's output (end) ---", process.stderr[-6000:]]
    for path in reproducers:
        data = path.read_bytes()
        lines += [f"--- reproducer {path} ({len(data)} bytes) ---", repr(data[:2000]),
                  f"base64: {base64.b64encode(data[:4000]).decode()}",
                  f"replay: TARGETS[{target!r}].setup(); TARGETS[{target!r}].run(Path({str(path)!r}).read_bytes())"]
    return "\n".join(lines)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_seed_of_the_target_passes_it_without_atheris(target: str) -> None:
    """The committed corpus, the reproducers of defects found (``regression-*``) among it, replayed in
    process: atheris or not, a defect that comes back fails here."""
    TARGETS[target].setup()
    paths = sorted(path for path in (CORPUS / target).iterdir() if path.is_file())
    assert paths
    for path in paths:
        try:
            TARGETS[target].run(path.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{path.name}: {exc!r}") from exc


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (PyPI has no wheel of it for this platform or Python, "
                           "and make .venv/.installed builds none): the coverage-guided targets cannot run")
@pytest.mark.timeout(atheris_max_seconds() + 180)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_libfuzzer_run_of_the_target_ends_clean_after_every_run_asked(target: str, tmp_path: Path) -> None:
    runs = atheris_runs()
    process, reproducers = run_target(target, runs, atheris_max_seconds(), tmp_path)
    assert process.returncode == 0 and not reproducers, _report(target, process, reproducers)
    done = _DONE.findall(process.stderr)
    assert done, _report(target, process, reproducers)
    ran, seconds = map(int, done[-1])
    assert ran >= runs, f"{target}: libFuzzer stopped after {ran} of {runs} runs ({seconds} s)\n" + \
        _report(target, process, reproducers)
    print(f"{target}: {ran} runs in {seconds} s")
