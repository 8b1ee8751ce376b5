"""deploy/systemd/kmsgate.service: `systemd-analyze verify` accepts it without a warning, and
`systemd-analyze security` rates its sandbox as well confined."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import DEPLOY, require_tool

UNIT = DEPLOY / "systemd" / "kmsgate.service"
INSTALLED_BINARY = "/opt/kmsgate/bin/kmsgate"
HOW = "Debian's systemd package brings it"
EXPOSURE_THRESHOLD = 20
"""`systemd-analyze security --threshold` counts tenths: 20 is an exposure of 2.0 ("OK" ends at 3.9)."""


def installed_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's kmsgate instead of /opt/kmsgate (verify
    checks that the program exists); nothing else changed."""
    text = UNIT.read_text() if text is None else text
    assert INSTALLED_BINARY in text
    path = tmp_path / "kmsgate.service"
    path.write_text(text.replace(INSTALLED_BINARY, str(Path(sys.prefix) / "bin" / "kmsgate")))
    return path


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze", HOW)
    return subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    result = verify(installed_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_reports_a_misspelt_sandbox_setting(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt")
    result = verify(installed_copy(tmp_path, text))
    assert "strickt" in result.stderr


def test_the_sandbox_is_rated_well_confined(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze", HOW)
    result = subprocess.run([tool, "security", "--offline=yes", f"--threshold={EXPOSURE_THRESHOLD}",
                             str(installed_copy(tmp_path))], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


def test_it_runs_unprivileged_confined_and_on_loopback() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["DynamicUser"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes" and service["CapabilityBoundingSet"] == ""
    assert service["StateDirectory"] == "kmsgate" and service["ReadWritePaths"] == "/var/lib/kmsgate"
    environment = dict(pair.split("=", 1) for pair in UNIT.read_text().split("\nEnvironment=")[1].split("\n")[0].split())
    assert environment["KMSGATE_HOST"] == "127.0.0.1"
    assert service["ExecStart"] == f"{INSTALLED_BINARY} serve"
