"""Configuration: one frozen dataclass, parsed once (flags > environment > defaults) and passed in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    s3_port: int = 9000  # the S3 API on the same host; 0: not served
    s3_domains: tuple[str, ...] = ()  # <bucket>.<domain> hosts are virtual-hosted, besides localhost and --host
    data_dir: Path = Path("./data")
    region: str = "us-east-1"
    account_id: str = "111122223333"
    root_key_file: Path | None = None
    key_store: str | None = None  # sqlite:///… or postgresql://…; None: SQLite in <data-dir>/kms.sqlite3
    log_level: str = "info"
    insecure_no_auth: bool = False
    maintenance_interval_seconds: float = 30.0
    identities_file: Path | None = None
    audit_fsync: str = "batch"
    audit_stdout: bool = False
    workers: int = 1
    drain_timeout_seconds: float = 30.0
    liveness_timeout_seconds: float = 30.0  # 0: the supervisor never kills an unresponsive worker
    # Connections (per worker)
    header_timeout_seconds: float = 20.0
    body_read_timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 75.0
    max_connections: int = 4096
    # Gateway
    default_key_alias: str = "alias/kmsgate-default"
    default_bucket: str = "kmsgate"  # the bucket of the /v1/objects API (object ARNs, access policies)
    max_object_size: int = 5 * 2**30
    max_in_flight: int = 1024
    multipart_max_age_seconds: float = 7 * 24 * 3600.0  # multipart uploads older than this are aborted
    storage: str = "file"  # or "s3"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    kms_endpoint: str | None = None  # None: the gateway calls the embedded KMS in-process
    kms_region: str | None = None
    kms_timeout_seconds: float = 5.0
    cache_max_age_seconds: float = 300.0
    cache_max_messages: int = 100_000
    cache_max_bytes: int = 64 * 2**30
    cache_capacity: int = 1000
