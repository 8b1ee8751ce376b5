"""The generated root credentials file works as an aws CLI profile, as the start-up log says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kmsgate.auth.identities import build_directory, load_root_credentials

from .conftest import ACCOUNT, REGION


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def directory(data_dir: Path):
    """Overrides the shared directory: the root's key is the one generated into ``data_dir``."""
    return build_directory(ACCOUNT, load_root_credentials({}, data_dir, REGION))


def test_aws_cli_profile_kmsgate_from_generated_file(verifying_server, data_dir, aws_env):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        del aws_env[name]
    aws_env["AWS_SHARED_CREDENTIALS_FILE"] = str(data_dir / "credentials")
    done = subprocess.run(
        [sys.executable, "-m", "awscli", "--profile", "kmsgate", "--endpoint-url",
         verifying_server.url, "kms", "list-keys"],
        env=aws_env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert verifying_server.callers[-1].is_account_root
