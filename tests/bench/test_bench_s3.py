"""The S3 scenario in a tiny mode, against a real kmsgate with its S3 API and the bare server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.context import Context, Options
from bench.scen_s3 import S3Sizes, run_s3
from bench.targets import check_targets
from bench.wrkcheck import wrk_path

MIB = 1024 * 1024
TINY = S3Sizes(large_bytes=1 * MIB, small_bytes=1024, multipart_bytes=12 * MIB, part_bytes=5 * MIB)


@pytest.fixture
def ctx() -> Iterator[Context]:
    context = Context(Options(progress=False, quick=True), planned_runs=9)
    yield context
    context.close()


def test_every_s3_figure_is_measured_without_errors_beside_its_ceiling(ctx: Context) -> None:
    run_s3(ctx, TINY)
    assert ctx.skipped == ([] if wrk_path() else [("wrk S3 PutObject 1 KiB", "wrk not installed (apt-get install -y wrk)")])
    ours = {m.key: m for m in ctx.measurements if m.system == "kmsgate"}
    paired = ["s3/PUT/1048576", "s3/GET/1048576", "s3/PUT/1024"] + (["s3/PUT/1024/wrk"] if wrk_path() else [])
    assert set(ours) == {*paired, f"s3/multipart/{12 * MIB}"}
    for key in paired:
        m = ours[key]
        assert m.requests > 0 and m.errors == 0, key
        assert m.ceiling_key and m.ratio is not None and m.ratio > 0, key
    for key in ("s3/PUT/1048576", "s3/GET/1048576"):
        assert ours[key].extra["server_peak_rss_bytes"] > 0
    upload = ours[f"s3/multipart/{12 * MIB}"]
    assert upload.value > 0 and upload.extra["parts"] == 3 and upload.extra["part_bytes"] == 5 * MIB
    assert upload.extra["server_peak_rss_bytes"] >= upload.extra["server_idle_rss_bytes"] > 0

    targets = {t.name: t.value for t in check_targets(ctx.measurements)}
    assert targets["S3 multipart upload 12 MiB, 5 MiB parts: server memory"] == upload.extra["server_rss_growth_parts"]
