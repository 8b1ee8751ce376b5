"""kmsgate itself as the system under test: a local server started per configuration, or a remote URL.

Local servers run ``python -m kmsgate serve --host 127.0.0.1 --port P --data-dir D``
with the root credentials and gateway token in their environment (the same values the
load generator signs with), ``--s3-port`` (a free port when a scenario asks for the S3 API,
else 0: off), plus ``--workers``, ``--cache-max-messages`` and
``--insecure-no-auth`` (and a key store URL in ``KMSGATE_KEY_STORE``) and any further flags as a scenario needs. Each is stopped by PID when the scenario
ends. ``/metrics`` is scraped for ``kmsgate_kms_calls_total`` to count KMS calls.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass

from bench.kmsreq import Credentials
from bench.procs import ServerProcess, free_port

KMS_CALLS_METRIC = "kmsgate_kms_calls_total"
MAX_METRICS_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Secrets:
    """What clients present: SigV4 root credentials for the KMS, a bearer token for the gateway."""

    credentials: Credentials
    token: str

    @classmethod
    def from_env_or_random(cls) -> Secrets:
        key = os.environ.get("KMSGATE_ROOT_ACCESS_KEY_ID") or "AKIAKMSGATEBENCH0001"
        secret = os.environ.get("KMSGATE_ROOT_SECRET_ACCESS_KEY") or secrets.token_urlsafe(30)[:40]
        token = os.environ.get("KMSGATE_ROOT_TOKEN") or secrets.token_urlsafe(32)
        return cls(Credentials(key, secret), token)

    def env(self) -> dict[str, str]:
        return {
            "KMSGATE_ROOT_ACCESS_KEY_ID": self.credentials.access_key_id,
            "KMSGATE_ROOT_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "KMSGATE_ROOT_TOKEN": self.token,
        }

    def bearer(self) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {self.token}"),)


@dataclass(frozen=True, slots=True)
class ServerOptions:
    workers: int = 1
    cache_max_messages: int | None = None
    no_auth: bool = False
    key_store: str | None = None  # KMSGATE_KEY_STORE (a postgresql:// URL); None: SQLite in the data directory
    s3: bool = False  # serve the S3 API on a port of its own (``LocalKmsgate.s3_url``)
    extra_args: tuple[str, ...] = ()  # more ``kmsgate serve`` flags (connection caps and deadlines)


class LocalKmsgate:
    """A kmsgate server started for one configuration, with its own data directory."""

    def __init__(self, options: ServerOptions, secrets_: Secrets, log_dir: str) -> None:
        self.options = options
        self.data_dir = tempfile.mkdtemp(prefix="kmsgate-bench-data-")
        port = free_port()
        self.s3_port = free_port() if options.s3 else 0
        argv = [sys.executable, "-m", "kmsgate", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--s3-port", str(self.s3_port), "--data-dir", self.data_dir]
        # Always explicit: the server's default is the CPU count, and a figure is compared
        # with a ceiling running the same number of processes.
        argv += ["--workers", str(options.workers)]
        if options.cache_max_messages is not None:
            argv += ["--cache-max-messages", str(options.cache_max_messages)]
        if options.no_auth:
            argv.append("--insecure-no-auth")
        argv += options.extra_args
        env = dict(os.environ)
        env.update(secrets_.env())
        if options.key_store is not None:  # in the environment: a URL may hold a password
            env["KMSGATE_KEY_STORE"] = options.key_store
        self.log_path = os.path.join(log_dir, f"kmsgate-{port}.log")
        self.server = ServerProcess(argv, port=port, env=env, log_path=self.log_path)
        try:
            self.server.wait_ready()
            if self.s3_port:
                self.server.wait_ready(port=self.s3_port)
        except Exception:
            self.close()
            raise

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def s3_url(self) -> str:
        """The S3 API's base URL (``ServerOptions.s3``)."""
        if not self.s3_port:
            raise RuntimeError("this server was started without the S3 API")
        return f"http://{self.server.host}:{self.s3_port}"

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalKmsgate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_metric_total(text: str, name: str = KMS_CALLS_METRIC) -> float | None:
    """Sum every sample of one metric in a Prometheus exposition; ``None`` if absent."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name):]
        if rest and rest[0] not in "{ ":
            continue
        try:
            total += float(line.rsplit(None, 1)[1])
            seen = True
        except (IndexError, ValueError):
            continue
    return total if seen else None


def scrape_metric(url: str, token: str, name: str = KMS_CALLS_METRIC) -> float | None:
    """Read ``/metrics`` of a server and sum one metric; ``None`` when unavailable."""
    request = urllib.request.Request(url.rstrip("/") + "/metrics", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            text = resp.read(MAX_METRICS_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    return parse_metric_total(text, name)
