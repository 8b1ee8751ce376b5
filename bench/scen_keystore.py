"""Key-store scenario: GenerateDataKey (SigV4) with the PostgreSQL key store against the SQLite store.

Two local servers, alike but for ``--key-store``, run in the same suite with the same load
generator, in alternated rounds (``Context.alternated``): the SQLite one is the ceiling. The
hot path reads keys from memory on both, so the target (``bench.targets``) is a ratio of at
least 0.90; a lower one means the PostgreSQL store reached the request path (a round
trip per request, or a check of the change log that costs more than an attribute read).
"""

from __future__ import annotations

from functools import partial

from bench.context import Context, Skip
from bench.kmsreq import REPLY_MARKER, NotKmsReplyError, prepare_workload, signed_template
from bench.loadgen import RequestTemplate
from bench.measure import Measurement, from_load
from bench.postgres import bench_database
from bench.product import ServerOptions

OPERATION = "GenerateDataKey"
FIGURE_KEY = f"keystore/{OPERATION}/postgresql"
CEILING_KEY = f"keystore/{OPERATION}/sqlite"


def _run(ctx: Context, url: str, key: str, store: str, template: RequestTemplate) -> Measurement:
    plan = ctx.plan(url, (template,), expect_contains=REPLY_MARKER[OPERATION])
    result = ctx.load(plan, f"{OPERATION} ({store} store)")
    return from_load("keystore", key, f"{OPERATION} (SigV4, {store} store)", "kmsgate", result, "req/s",
                     len(template.body), extra={"key_store": store})


def run_keystore(ctx: Context) -> None:
    if not ctx.local:
        raise Skip("needs local servers on each key store (not possible with --target)")
    creds = ctx.secrets.credentials
    with bench_database() as postgres_url, ctx.kmsgate() as sqlite_server, \
            ctx.kmsgate(ServerOptions(key_store=postgres_url)) as postgres_server:
        templates = {}
        for store, url in (("sqlite", sqlite_server), ("postgresql", postgres_server)):
            try:
                templates[store], _ = signed_template(url, prepare_workload(url, creds), OPERATION, creds)
            except (NotKmsReplyError, OSError) as exc:
                raise Skip(f"kmsgate on the {store} store: set-up failed: {exc}") from exc
        ctx.alternated(
            partial(_run, ctx, postgres_server, FIGURE_KEY, "PostgreSQL", templates["postgresql"]),
            partial(_run, ctx, sqlite_server, CEILING_KEY, "SQLite", templates["sqlite"]),
        )
