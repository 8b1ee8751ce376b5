"""The command line: option parsing with flag > environment > default, help text, start-up guards."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmsgate.cli import build_parser, load_from_args
from kmsgate.config import DEFAULTS, ConfigError, split_host_names
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.stores import open_store


def parse(argv: list[str], environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    env = environ or {}
    return load_from_args(build_parser(env).parse_args(["serve", *argv]), env).config


def test_defaults_match_the_documented_values() -> None:
    config = parse([])
    assert (config.host, config.port, config.region, config.account_id) == (
        "127.0.0.1",
        8080,
        "us-east-1",
        "111122223333",
    )
    assert config.data_dir == Path("./data")
    assert config.max_object_size == 5 * 2**30
    assert config.cache_max_messages == 100_000


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    environ = {"KMSGATE_PORT": "9001", "KMSGATE_REGION": "eu-west-1", "KMSGATE_CACHE_MAX_MESSAGES": "7"}
    from_env = parse([], environ)
    assert (from_env.port, from_env.region, from_env.cache_max_messages) == (9001, "eu-west-1", 7)
    from_flags = parse(["--port", "9002", "--cache-max-messages", "1"], environ)
    assert (from_flags.port, from_flags.region, from_flags.cache_max_messages) == (9002, "eu-west-1", 1)


@pytest.mark.parametrize(
    ("variable", "value", "flag", "says"),
    [
        ("KMSGATE_PORT", "80x", "--port", "must be a whole number"),
        ("KMSGATE_KMS_TIMEOUT", "soon", "--kms-timeout", "must be a number"),
        ("KMSGATE_CACHE_MAX_MESSAGES", "1.5", "--cache-max-messages", "must be a whole number"),
        ("KMSGATE_STORAGE", "ftp", "--storage", "must be one of file, s3"),
        ("KMSGATE_AUDIT_FSYNC", "always", "--audit-fsync", "must be one of batch, none"),
        ("KMSGATE_LOG_LEVEL", "loud", "--log-level", "must be one of debug, info, warning, error"),
    ],
)
def test_an_unreadable_environment_value_is_refused_naming_the_variable(
        variable: str, value: str, flag: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse([], {variable: value})
    assert str(refused.value) == f"{flag} (env {variable}) {says}, not {value!r}"


def test_the_multipart_max_age_defaults_to_seven_days_and_is_set_by_environment_or_flag() -> None:
    assert parse([]).multipart_max_age_seconds == 7 * 24 * 3600
    environ = {"KMSGATE_MULTIPART_MAX_AGE": "3600"}
    assert parse([], environ).multipart_max_age_seconds == 3600
    assert parse(["--multipart-max-age", "60"], environ).multipart_max_age_seconds == 60


def test_an_empty_environment_value_means_the_default() -> None:
    config = parse([], {"KMSGATE_PORT": "", "KMSGATE_STORAGE": "", "KMSGATE_CACHE_MAX_AGE": ""})
    assert (config.port, config.storage, config.cache_max_age_seconds) == (8080, "file", 300.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--account-id", "12345"],
        ["--storage", "s3"],
        ["--cache-max-messages", "0"],
        ["--max-object-size", "0"],
        ["--cache-max-age", "0"],
        ["--multipart-max-age", "0"],
    ],
)
def test_invalid_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse(argv)


def _kmsgate(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmsgate", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_explains_every_serve_option() -> None:
    result = _kmsgate("serve", "--help")
    assert result.returncode == 0
    for action in build_parser({})._subparsers._group_actions[0].choices["serve"]._actions:  # type: ignore[union-attr]
        for option in action.option_strings:
            assert option in result.stdout
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help text"


def test_insecure_no_auth_is_refused_on_a_non_loopback_address(tmp_path: Path) -> None:
    result = _kmsgate("serve", "--insecure-no-auth", "--insecure-http", "--host", "0.0.0.0", "--port", "0",
                      "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "non-loopback" in result.stderr


def test_s3_domains_are_read_from_the_flag_or_environment_and_must_be_host_names() -> None:
    assert split_host_names(parse([]).s3_domain) == ()
    assert split_host_names(parse([], {"KMSGATE_S3_DOMAIN": "s3.example.com"}).s3_domain) == ("s3.example.com",)
    assert split_host_names(parse(["--s3-domain", "S3.Example.com., s3.internal"]).s3_domain) == \
        ("s3.example.com", "s3.internal")
    for bad in ("10.0.0.1", "s3_example.com", "-s3.example.com", "s3..example.com"):
        with pytest.raises(ConfigError) as refused:
            parse([f"--s3-domain={bad}"])
        assert "--s3-domain" in str(refused.value)


def _serve(data_dir: Path, *args: str, root_key: str | None = None) -> subprocess.CompletedProcess[str]:
    """``kmsgate serve`` in the supervisor's own process, for a start that should be refused."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KMSGATE_")}
    if root_key is not None:
        env["KMSGATE_ROOT_KEY"] = root_key
    return subprocess.run(
        [sys.executable, "-m", "kmsgate", "serve", "--data-dir", str(data_dir), "--port", "0", "--s3-port", "0",
         "--workers", "0", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )


def _one_refusal_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_sqlite_key_store_started_with_another_root_key_is_refused_with_the_same_line_as_postgresql(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    open_store(DEFAULTS.key_store, data_dir, RootKey(os.urandom(32))).close()
    other = base64.b64encode(os.urandom(32)).decode()
    line = _one_refusal_line(_serve(data_dir, root_key=other))
    # tests/kms/test_nodes.py expects this same start of line from a PostgreSQL key store.
    assert line == ("kmsgate: refusing to start: the root key is not the one this key store was created with; "
                    f"every node needs the same root key (sqlite:///{data_dir / 'kms.sqlite3'})")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("env-not-base64", "kmsgate: refusing to start: root key from KMSGATE_ROOT_KEY is not valid base64"),
        ("env-16-bytes", "kmsgate: refusing to start: root key from KMSGATE_ROOT_KEY must decode to 32 bytes"),
        ("file-missing", "kmsgate: refusing to start: root key file {file} cannot be read: No such file or directory"),
        ("file-binary", "kmsgate: refusing to start: root key from {file} is not valid base64"),
    ],
    ids=["env-not-base64", "env-16-bytes", "file-missing", "file-binary"],
)
def test_a_root_key_that_cannot_be_used_is_refused_with_one_line_naming_its_source(
        case: str, expected: str, tmp_path: Path) -> None:
    key_file = tmp_path / "root.key"
    secret = os.urandom(32)
    args: list[str] = []
    root_key = None
    if case == "env-not-base64":
        root_key = "not base64!"
    elif case == "env-16-bytes":
        root_key = base64.b64encode(secret[:16]).decode()
    else:
        args = ["--root-key-file", str(key_file)]
        if case == "file-binary":
            key_file.write_bytes(b"\x99" + secret)
            key_file.chmod(0o600)
    result = _serve(tmp_path / "data", *args, root_key=root_key)
    assert _one_refusal_line(result) == expected.format(file=key_file)
    assert secret.hex() not in result.stderr and "\\x99" not in result.stderr


def test_a_data_directory_that_cannot_be_created_is_refused_with_one_line(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    line = _one_refusal_line(_serve(occupied / "data"))
    assert line == f"kmsgate: cannot create the data directory {occupied / 'data'}: Not a directory"
