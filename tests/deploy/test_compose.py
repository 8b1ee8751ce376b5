"""deploy/compose.yaml: valid against the Compose Specification's JSON schema (the copy that
check-jsonschema ships, as `vendor.compose-spec`), and wired to the files it mounts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY, require_tool

COMPOSE = DEPLOY / "compose.yaml"
HOW = "PyPI's check-jsonschema, with the compose-spec schema; `make tools` installs it"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("check-jsonschema", HOW)
    return subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_compose_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["kmsgate"]["restart"] = ["unless-stopped"]  # a string in the specification
    broken["services"]["kmsgate"]["helthcheck"] = {}
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = validate(path)
    assert result.returncode != 0
    assert "helthcheck" in result.stdout + result.stderr


def test_it_runs_kmsgate_prometheus_with_the_alerts_and_grafana_with_the_dashboard() -> None:
    services = compose()["services"]
    assert set(services) == {"kmsgate", "prometheus", "grafana"}
    build = services["kmsgate"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"

    prometheus = services["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    config_dir = mounts["./prometheus"]
    (config_flag,) = [arg for arg in prometheus["command"] if arg.startswith("--config.file=")]
    config_in_container = Path(config_flag.split("=", 1)[1])
    assert config_in_container.parent == Path(config_dir)
    config = yaml.safe_load((DEPLOY / "prometheus" / config_in_container.name).read_text())
    assert config["rule_files"] == ["alerts.yml"] and (DEPLOY / "prometheus" / "alerts.yml").exists()
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["kmsgate:8080"]

    for volume in services["grafana"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def test_kmsgate_is_published_on_loopback_only_and_runs_confined() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    kmsgate = compose()["services"]["kmsgate"]
    assert kmsgate["read_only"] is True and kmsgate["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in kmsgate["security_opt"]
    assert "kmsgate-data:/data" in kmsgate["volumes"]
