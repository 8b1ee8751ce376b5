"""Asymmetric and HMAC keys: Sign (ECC_NIST_P256) and GenerateMac (HMAC_256) through the KMS API,
and whether RSA_2048 signing stalls other requests.

For Sign and GenerateMac, in the same run and with the same load generator:

* kmsgate with SigV4 verification, alternated with its ceiling, the bare aiohttp+uvloop handler
  that parses the same JSON body and answers a JSON body of the size of kmsgate's reply;
* the operation alone in this process with pyca/cryptography (ECDSA P-256 over SHA-256 of the
  same message; HMAC-SHA256 of it), one core, no HTTP: the cryptographic ceiling (``ops/s``).

Stall check: a GenerateDataKey at a fixed open-loop rate (latency counted from each request's
scheduled time, so a stalled reply delays no later measurement), first alone and then while
another client keeps ``RSA_SIGNING_CONCURRENCY`` RSA_2048 Sign requests in flight. The report
gives the p99 of both; the ratio is alone / under load (1.0: no stall).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bench.context import Context, Skip
from bench.kmsreq import Credentials, NotKmsReplyError, call, kms_request, send_once
from bench.loadgen import LoadResult, RequestTemplate, run_load
from bench.measure import Measurement, from_load

MESSAGE = b"kmsgate benchmark message: 64 bytes of something worth signing!"
RSA_SIGNING_CONCURRENCY = 32
PROBE_RATE = 100.0  # GenerateDataKey requests/s during the stall check: light, so its latency is the server's
REPLY_MARKERS = {"Sign": b'"Signature"', "GenerateMac": b'"Mac"', "GenerateDataKey": b'"CiphertextBlob"'}


def _key(url: str, credentials: Credentials | None, spec: str, usage: str) -> str:
    created = call(url, "CreateKey", {"KeySpec": spec, "KeyUsage": usage, "Description": "kmsgate-bench"},
                   credentials)
    return str(created["KeyMetadata"]["KeyId"])


def _template(url: str, credentials: Credentials | None, operation: str, payload: dict[str, Any]) -> tuple[RequestTemplate, int]:
    """A signed request; one reply is checked to be the operation's before any timing."""
    template = kms_request(url, operation, payload, credentials)
    status, body = send_once(url, template)
    if status != 200 or REPLY_MARKERS[operation] not in body:
        raise NotKmsReplyError(f"{operation}: HTTP {status}: {body[:200]!r}")
    return template, len(body)


def crypto_rate(operation: str, seconds: float) -> float:
    """Operations per second of the primitive alone, in this process."""
    one: Callable[[], bytes]
    if operation == "Sign":
        ecc_key = ec.generate_private_key(ec.SECP256R1())
        one = partial(ecc_key.sign, MESSAGE, ec.ECDSA(hashes.SHA256()))
    elif operation == "RSASign":
        rsa_key = rsa.generate_private_key(65537, 2048)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        one = partial(rsa_key.sign, MESSAGE, pss, hashes.SHA256())
    else:
        mac_key = hashlib.sha256(b"bench").digest()

        def mac_once() -> bytes:
            h = hmac.HMAC(mac_key, hashes.SHA256())
            h.update(MESSAGE)
            return h.finalize()

        one = mac_once
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(16):
            one()
        count += 16
    return count / (time.perf_counter() - start)


def _run(ctx: Context, url: str, key: str, label: str, system: str, template: RequestTemplate,
         marker: bytes) -> Measurement:
    plan = ctx.plan(url, (template,), expect_contains=marker)
    result = ctx.load(plan, f"{label} ({system})")
    return from_load("asymmetric", key, label, system, result, "req/s", len(template.body))


def run_asymmetric(ctx: Context) -> None:
    """Sign and GenerateMac beside their ceilings; GenerateDataKey's p99 under RSA signing load."""
    creds = ctx.secrets.credentials
    seconds = 0.2 if ctx.options.quick else 1.0
    with ctx.kmsgate() as url:
        try:
            ecc = _key(url, creds, "ECC_NIST_P256", "SIGN_VERIFY")
            mac = _key(url, creds, "HMAC_256", "GENERATE_VERIFY_MAC")
            rsa_key = _key(url, creds, "RSA_2048", "SIGN_VERIFY")
            symmetric = str(call(url, "CreateKey", {"Description": "kmsgate-bench"}, creds)["KeyMetadata"]["KeyId"])
            message = base64.b64encode(MESSAGE).decode()
            shapes = {
                "Sign": _template(url, creds, "Sign", {"KeyId": ecc, "Message": message, "MessageType": "RAW",
                                                       "SigningAlgorithm": "ECDSA_SHA_256"}),
                "GenerateMac": _template(url, creds, "GenerateMac",
                                         {"KeyId": mac, "Message": message, "MacAlgorithm": "HMAC_SHA_256"}),
            }
            rsa_sign, _ = _template(url, creds, "Sign", {"KeyId": rsa_key, "Message": message, "MessageType": "RAW",
                                                         "SigningAlgorithm": "RSASSA_PSS_SHA_256"})
            probe, _ = _template(url, creds, "GenerateDataKey", {"KeyId": symmetric, "KeySpec": "AES_256"})
        except (NotKmsReplyError, OSError) as exc:
            raise Skip(f"kmsgate set-up failed: {exc}") from exc
        for operation, (template, reply_bytes) in shapes.items():
            label = "Sign ECC_NIST_P256" if operation == "Sign" else "GenerateMac HMAC_256"
            bare = replace(template, path=f"/json?reply_bytes={reply_bytes}")
            ctx.alternated(
                partial(_run, ctx, url, f"asymmetric/{operation}/sigv4", f"{label} (SigV4)", "kmsgate", template,
                        REPLY_MARKERS[operation]),
                partial(_run, ctx, ctx.http_ceiling().url, f"asymmetric/{operation}/ceiling",
                        f"bare JSON {operation}", "http-ceiling", bare, b""),
            )
            ctx.tick(f"{operation} with cryptography alone")
            primitive = "ECDSA P-256 SHA-256 sign" if operation == "Sign" else "HMAC-SHA256"
            crypto = ctx.add(Measurement("asymmetric", f"asymmetric/{operation}/cryptography",
                                         f"{primitive} (cryptography, in-process)", "cryptography", "ops/s",
                                         crypto_rate(operation, seconds)))
            ours = ctx.find(f"asymmetric/{operation}/sigv4", "kmsgate")
            if ours is not None and crypto.value > 0:
                ours.extra["ratio_to_cryptography"] = ours.value / crypto.value
        ctx.add(Measurement("asymmetric", "asymmetric/RSASign/cryptography",
                            "RSA-2048 PSS sign (cryptography, in-process)", "cryptography", "ops/s",
                            crypto_rate("RSASign", seconds)))
        _stall_check(ctx, url, probe, rsa_sign)


def _stall_check(ctx: Context, url: str, probe: RequestTemplate, rsa_sign: RequestTemplate) -> None:
    probe_plan = ctx.plan(url, (probe,), mode="open", rate=PROBE_RATE, concurrency=16,
                          expect_contains=REPLY_MARKERS["GenerateDataKey"])
    alone = ctx.load(probe_plan, "GenerateDataKey alone, open loop")
    alone_row = ctx.add(from_load("asymmetric", "asymmetric/GenerateDataKey/alone",
                                  f"GenerateDataKey at {PROBE_RATE:.0f} req/s, alone", "kmsgate", alone,
                                  extra={"p99_ms": alone.latency.p99_ms}))
    # The signing load runs from before the probe starts until after it ends.
    margin = 0.5
    signing_plan = ctx.plan(url, (rsa_sign,), concurrency=RSA_SIGNING_CONCURRENCY,
                            warmup_s=probe_plan.warmup_s + margin, duration_s=probe_plan.duration_s + margin,
                            expect_contains=REPLY_MARKERS["Sign"])
    signing: dict[str, LoadResult | BaseException] = {}

    def sign_load() -> None:
        try:
            signing["result"] = run_load(signing_plan)
        except BaseException as exc:  # reported below, in the scenario's thread
            signing["error"] = exc

    thread = threading.Thread(target=sign_load, name="rsa-signing-load")
    thread.start()
    try:
        time.sleep(margin)  # the signing clients connect and start before the probe does
        loaded = ctx.load(probe_plan, "GenerateDataKey under RSA_2048 signing, open loop")
    finally:
        thread.join()
    if "error" in signing:
        raise Skip(f"RSA_2048 signing load failed: {signing['error']}")
    sign_result = signing["result"]
    assert isinstance(sign_result, LoadResult)
    ctx.add(from_load("asymmetric", "asymmetric/RSASign/sigv4", f"Sign RSA_2048 (SigV4), {RSA_SIGNING_CONCURRENCY} in flight",
                      "kmsgate", sign_result))
    row = from_load("asymmetric", "asymmetric/GenerateDataKey/under-rsa-signing",
                    f"GenerateDataKey at {PROBE_RATE:.0f} req/s, under RSA_2048 signing", "kmsgate", loaded,
                    extra={"p99_ms": loaded.latency.p99_ms, "p99_alone_ms": alone.latency.p99_ms,
                           "signing_rps": sign_result.rps},
                    note="ratio: p99 alone / p99 under load (1.0: signing does not delay it)")
    ratio = alone.latency.p99_ms / loaded.latency.p99_ms if loaded.latency.p99_ms > 0 else None
    ctx.add(replace(row, ceiling_key=alone_row.key, ceiling_label=alone_row.label,
                    ceiling_value=alone.latency.p99_ms, ratio=ratio))
