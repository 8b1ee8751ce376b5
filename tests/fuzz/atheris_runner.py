"""Runs one atheris target under libFuzzer, in a process of its own (libFuzzer ends it with ``exit``).

``python -m tests.fuzz.atheris_runner TARGET [libFuzzer flags] [corpus directories]`` from the
repository root, e.g. ``-runs=10000 -max_total_time=600 -rss_limit_mb=1024 -artifact_prefix=DIR/``
and a scratch directory for the corpus libFuzzer grows, then ``tests/fuzz/corpus/TARGET`` for the
seeds. kmsgate's modules are instrumented for coverage as they are imported; the target's ``setup``
runs before fuzzing starts. libFuzzer ends with ``Done N runs in S second(s)`` on standard error, or
writes the input that made the target raise to ``<artifact_prefix>crash-<sha1>`` and exits non-zero.
"""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    with atheris.instrument_imports(include=["kmsgate"]):
        from tests.fuzz.atheris_targets import TARGETS
    target = TARGETS[name]
    target.setup()
    atheris.Setup([sys.argv[0], *flags], target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
