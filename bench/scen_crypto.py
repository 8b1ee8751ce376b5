"""Crypto ceilings: pyca AESGCM in-process on the gateway payload sizes, and ``openssl speed``.

The AESGCM rate of each size is recorded as its own row and attached to the matching
``/v1/encrypt`` and ``/v1/decrypt`` rows as ``ratio_to_aesgcm``.
"""

from __future__ import annotations

from bench.ceilings import aesgcm_rate, openssl_speed
from bench.context import Context
from bench.measure import Measurement, size_label
from bench.scen_gateway import SIZES


def run_crypto(ctx: Context) -> None:
    seconds = 0.1 if ctx.options.quick else 0.5
    for size in SIZES:
        ctx.tick(f"AESGCM {size_label(size)}")
        rate = aesgcm_rate(size, seconds=seconds)
        ctx.add(Measurement("crypto", f"crypto/aesgcm/{size}", f"AESGCM {size_label(size)}", "aesgcm", "MB/s",
                            rate.mb_per_s, payload_bytes=size, extra={"ops_per_s": rate.ops_per_s}))
        for op in ("encrypt", "decrypt"):
            row = ctx.find(f"stream/{op}/{size}", "kmsgate")
            if row is not None and rate.mb_per_s > 0:
                row.extra["ratio_to_aesgcm"] = row.extra.get("mb_per_s", 0.0) / rate.mb_per_s
    ctx.tick("openssl speed")
    rates, note = openssl_speed(1)
    if note:
        ctx.skip("openssl speed -evp aes-256-gcm", note)
    for rate in rates:
        ctx.add(Measurement("crypto", f"crypto/openssl/{rate.size_bytes}", f"openssl AES-256-GCM {size_label(rate.size_bytes)}",
                            "openssl", "MB/s", rate.mb_per_s, payload_bytes=rate.size_bytes,
                            extra={"ops_per_s": rate.ops_per_s}))
