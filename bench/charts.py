"""PNG charts of a run (matplotlib, Agg backend): throughput by payload size, latency, cache."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench.measure import Measurement

SERIES = (
    ("gateway/PUT/", "kmsgate", "PUT"),
    ("gateway/GET/", "kmsgate", "GET"),
    ("stream/encrypt/", "kmsgate", "encrypt"),
    ("stream/decrypt/", "kmsgate", "decrypt"),
    ("ceiling/sink/", "http-ceiling", "sink ceiling"),
    ("ceiling/source/", "http-ceiling", "source ceiling"),
    ("ceiling/echo/", "http-ceiling", "echo ceiling"),
    ("crypto/aesgcm/", "aesgcm", "AESGCM in-process"),
)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def throughput_chart(rows: Sequence[Measurement], path: str) -> bool:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    for prefix, system, name in SERIES:
        pts = sorted((m.payload_bytes, m.extra.get("mb_per_s", m.value if m.unit == "MB/s" else 0.0))
                     for m in rows if m.key.startswith(prefix) and m.system == system and m.payload_bytes)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name,
                    linestyle="--" if "ceiling" in name or "AESGCM" in name else "-")
            drawn = True
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("payload bytes")
    ax.set_ylabel("MB/s")
    ax.set_title("Throughput against payload size")
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def latency_chart(rows: Sequence[Measurement], path: str) -> bool:
    plt = _plt()
    # Open-loop rows first: their latencies count from each request's scheduled send time.
    order = ("latency", "kms", "stream", "gateway")
    chosen = sorted((m for m in rows if m.latency is not None and m.latency.count and m.unit == "req/s"
                     and m.scenario in order), key=lambda m: order.index(m.scenario))[:24]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.35 * len(chosen) + 1)))
    labels = [f"{m.label} [{m.system}]" for m in chosen]
    names = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"))
    height = 0.2
    for i, (name, attr) in enumerate(names):
        ax.barh([y + i * height for y in range(len(chosen))],
                [getattr(m.latency, attr) for m in chosen], height=height, label=name)
    ax.set_yticks([y + 1.5 * height for y in range(len(chosen))])
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency ms")
    ax.set_title("Latency percentiles")
    if chosen:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return bool(chosen)


def cache_chart(rows: Sequence[Measurement], path: str) -> bool:
    plt = _plt()
    series: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for m in rows:
        if m.scenario == "cache" and "kms_calls_per_10k" in m.extra:
            series[m.concurrency].append((int(m.extra["cache_max_messages"]), float(m.extra["kms_calls_per_10k"])))
    fig, ax = plt.subplots(figsize=(7, 5))
    for conc, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [max(p[1], 0.5) for p in pts], marker="o", label=f"{conc} clients")
    if series:
        limits = sorted({p[0] for pts in series.values() for p in pts})
        ax.plot(limits, [10_000 / lim + 1 for lim in limits], linestyle=":", color="gray", label="bound")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("--cache-max-messages")
    ax.set_ylabel("KMS calls per 10,000 PUTs")
    ax.set_title("Data-key cache: KMS calls against cache limit")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return bool(series)


def write_charts(rows: Sequence[Measurement], stem: str) -> dict[str, str]:
    """Write the three charts beside ``stem``; every chart is written, empty ones say so by title."""
    out = {}
    for name, fn in (("throughput", throughput_chart), ("latency", latency_chart), ("cache", cache_chart)):
        path = f"{stem}-{name}.png"
        fn(rows, path)
        out[f"chart_{name}"] = path
    return out
