"""The one configuration model: flags > environment > file > defaults, empty variables, `config show`,
one-line refusals of bad values, and the README table against the declaration."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kmsgate.config import DEFAULTS, OPTIONS, ConfigError, Option, load_config, readme_table
from tests.conftest import KmsgateServer, free_port, wait_for_port

README = Path(__file__).resolve().parents[2] / "README.md"


def _kmsgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kmsgate", *args], capture_output=True, text=True, timeout=60,
                          check=False, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_flags_win_over_the_environment_which_wins_over_the_file_which_wins_over_the_defaults(
        tmp_path: Path) -> None:
    config_file = tmp_path / "kmsgate.toml"
    config_file.write_text('port = 7001\nregion = "eu-west-1"\ncache_max_age = 60\ninsecure_no_auth = true\n')
    loaded = load_config({"port": "7003"}, {"KMSGATE_PORT": "7002", "KMSGATE_REGION": "eu-north-1"}, config_file)
    assert loaded.config.port == 7003 and loaded.sources["port"] == "flag"
    assert loaded.config.region == "eu-north-1" and loaded.sources["region"] == "env"
    assert loaded.config.cache_max_age_seconds == 60.0 and loaded.sources["cache_max_age_seconds"] == "file"
    assert loaded.config.insecure_no_auth is True
    assert loaded.config.s3_port == DEFAULTS.s3_port and loaded.sources["s3_port"] == "default"


def test_the_config_file_is_found_through_kmsgate_config(tmp_path: Path) -> None:
    config_file = tmp_path / "kmsgate.toml"
    config_file.write_text("max_in_flight = 9\n")
    loaded = load_config({}, {"KMSGATE_CONFIG": str(config_file)})
    assert loaded.config.max_in_flight == 9 and loaded.file == config_file


@pytest.mark.parametrize("option", OPTIONS, ids=lambda opt: opt.env)
def test_an_empty_environment_variable_is_unset_for_every_option(option: Option) -> None:
    loaded = load_config({}, {option.env: ""})
    assert loaded.sources[option.name] == "default", f"{option.env}='' was taken as a value"
    assert getattr(loaded.config, option.name) == getattr(DEFAULTS, option.name)


def test_an_empty_kmsgate_host_serves_on_loopback_only(tmp_path: Path) -> None:
    """``KMSGATE_HOST=""`` used to bind every interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # picks the outgoing address; sends nothing
        except OSError:
            pytest.skip("no non-loopback IPv4 address on this machine")
        other_address = probe.getsockname()[0]
    if other_address.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this machine")
    server = KmsgateServer(data_dir=tmp_path / "data")
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsgate", "serve", "--port", str(port), "--s3-port", "0", "--workers", "0",
         "--data-dir", str(server.data_dir)],
        env={**server.env(), "KMSGATE_HOST": ""}, stdout=log, stderr=log,
    )
    try:
        wait_for_port(port, process)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other_address, port), timeout=5).close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_an_empty_kmsgate_kms_endpoint_keeps_the_embedded_kms(tmp_path: Path) -> None:
    """``KMSGATE_KMS_ENDPOINT=""`` used to make the gateway a client of a remote KMS at ''."""
    server = KmsgateServer(data_dir=tmp_path / "data", extra_env={"KMSGATE_KMS_ENDPOINT": ""})
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("POST", "/v1/encrypt", body=b"hello",
                           headers={"Authorization": f"Bearer {server.root_token}"})
        response = connection.getresponse()
        assert response.status == 200, response.read()[:300]
        connection.close()
    finally:
        server.stop()


def test_config_show_names_each_source_and_masks_secrets(tmp_path: Path) -> None:
    config_file = tmp_path / "kmsgate.toml"
    config_file.write_text('region = "eu-west-1"\n')
    password = "s3cr3t-Pa55word-in-the-url"
    result = _kmsgate("config", "show", "--config", str(config_file), "--port", "7443",
                      env={"KMSGATE_KEY_STORE": f"postgresql://kmsgate:{password}@db.internal/kmsgate",
                           "KMSGATE_MAX_IN_FLIGHT": "12"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "port = 7443  # flag" in lines
    assert "max_in_flight = 12  # env KMSGATE_MAX_IN_FLIGHT" in lines
    assert 'region = "eu-west-1"  # file' in lines
    assert 'host = "127.0.0.1"  # default' in lines
    assert 'key_store = "********"  # env KMSGATE_KEY_STORE' in lines
    assert password not in result.stdout + result.stderr
    assert "db.internal" not in result.stdout


def test_config_show_prints_a_refused_combination_then_the_reason_and_exits_2() -> None:
    result = _kmsgate("config", "show", "--storage", "s3", "--port", "7443")
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert 'storage = "s3"  # flag' in lines
    assert "port = 7443  # flag" in lines
    assert "# s3_bucket is unset  # default" in lines
    assert result.stderr.splitlines() == ["kmsgate: --storage s3 needs --s3-bucket"]


def test_config_show_of_an_accepted_combination_says_nothing_on_stderr() -> None:
    result = _kmsgate("config", "show", "--storage", "s3", "--s3-bucket", "objects")
    assert result.returncode == 0
    assert 's3_bucket = "objects"  # flag' in result.stdout.splitlines()
    assert result.stderr == ""


def test_a_secret_is_never_echoed_in_a_refusal() -> None:
    password = "s3cr3t-Pa55word-in-the-url"
    with pytest.raises(ConfigError) as refused:
        load_config({"key_store": f"mysql://kmsgate:{password}@db/kmsgate"}, {})
    assert "--key-store (flag)" in str(refused.value)
    assert password not in str(refused.value)


@pytest.mark.parametrize(
    ("where", "expected_line"),
    [
        ("flag", "kmsgate: --port (flag) must be a whole number, not '80x'"),
        ("env", "kmsgate: --port (env KMSGATE_PORT) must be a whole number, not '80x'"),
        ("file", "kmsgate: --port (file {file}) must be a whole number, not '80x'"),
    ],
)
def test_a_bad_value_stops_the_start_on_one_line_naming_option_source_and_expectation(
        where: str, expected_line: str, tmp_path: Path) -> None:
    config_file = tmp_path / "kmsgate.toml"
    config_file.write_text('port = "80x"\n' if where == "file" else "")
    args = ["serve", "--config", str(config_file), "--data-dir", str(tmp_path / "data")]
    result = _kmsgate(*args, *(["--port", "80x"] if where == "flag" else []),
                      env={"KMSGATE_PORT": "80x"} if where == "env" else {})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [expected_line.format(file=config_file)]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("flags", "environ", "toml", "says"),
    [
        ({"cache_max_messages": "0"}, {}, "", "--cache-max-messages (flag) must be at least 1, not '0'"),
        ({}, {"KMSGATE_STORAGE": "ftp"}, "", "--storage (env KMSGATE_STORAGE) must be one of file, s3, not 'ftp'"),
        ({}, {}, "kms_timeout = -1\n", "--kms-timeout (file {file}) must be a positive number, not '-1.0'"),
        ({}, {}, "s3_port = 70000\n", "--s3-port (file {file}) must be a port number from 0 to 65535, not '70000'"),
        ({}, {}, "workers = 2.5\n", "--workers (file {file}) must be a whole number, not '2.5'"),
        ({}, {}, 'audit_stdout = "yes"\n', "--audit-stdout (file {file}) must be true or false, not 'yes'"),
        ({}, {}, "prot = 8080\n", "prot (file {file}) is not an option (did you mean port?): expected one of the "
                                  "keys of `kmsgate config show`"),
        ({"account_id": "12345"}, {}, "", "--account-id (flag) must be 12 digits, not '12345'"),
    ],
)
def test_bad_values_are_refused_with_what_was_expected(
        flags: dict[str, str], environ: dict[str, str], toml: str, says: str, tmp_path: Path) -> None:
    config_file = tmp_path / "kmsgate.toml"
    config_file.write_text(toml)
    with pytest.raises(ConfigError) as refused:
        load_config(flags, environ, config_file)
    assert str(refused.value) == says.format(file=config_file)


def test_the_readme_table_is_what_the_declaration_generates() -> None:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert readme_table() in section, "regenerate it: python -c 'from kmsgate.config import readme_table; " \
                                      "print(readme_table())'"


def test_serve_help_names_every_option_and_its_environment_variable() -> None:
    result = _kmsgate("serve", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    text = re.sub(r"\s+", " ", result.stdout)
    for opt in OPTIONS:
        assert opt.flag in text and f"[{opt.env}]" in text


def test_store_migrate_reads_its_options_from_the_same_file_and_ignores_the_others(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "keys.sqlite3"
    config_file = tmp_path / "kmsgate.toml"
    config_file.write_text(f'key_store = "sqlite:///{database}"\nport = 7000\n')
    result = _kmsgate("store", "migrate", env={"KMSGATE_CONFIG": str(config_file), "KMSGATE_PORT": "not-used-here",
                                               "KMSGATE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert database.exists()
    assert not (tmp_path / "data").exists()
