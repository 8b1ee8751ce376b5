"""Configuration: one frozen dataclass, parsed once (flags > environment > defaults) and passed in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    region: str = "us-east-1"
    account_id: str = "111122223333"
    root_key_file: Path | None = None
    log_level: str = "info"
    insecure_no_auth: bool = False
    maintenance_interval_seconds: float = 30.0
    identities_file: Path | None = None
    audit_fsync: str = "batch"
    audit_stdout: bool = False
    workers: int = 1
    drain_timeout_seconds: float = 30.0
