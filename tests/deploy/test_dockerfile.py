"""deploy/Dockerfile, read as text (no container engine here): multi-stage on a slim Python base,
installing kmsgate as the README says and starting `kmsgate serve` as a non-root user with /data as
its volume; its HEALTHCHECK command is run against a live kmsgate."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import KmsgateServer, free_port
from tests.deploy.conftest import DEPLOY, REPO


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.arguments)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value)
        return value


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions per stage (the ARGs before the first FROM form stage 0's prelude)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = [[]]
    for line in logical:
        keyword, _, arguments = line.strip().partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


DOCKERFILE = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
PRELUDE, STAGES = DOCKERFILE[0], DOCKERFILE[1:]
FINAL = STAGES[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    (found,) = [i for i in stage if i.keyword == keyword]
    return found


def env_of(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                name, _, value = pair.partition("=")
                values[name] = value
    return values


def readme_commands() -> list[list[str]]:
    """The shell commands of the README's code blocks, one word list per line."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return [shlex.split(line, comments=True) for line in lines]


def test_the_image_is_built_in_stages_on_one_slim_python_base() -> None:
    assert len(STAGES) >= 2
    (arg,) = [i for i in PRELUDE if i.keyword == "ARG"]
    name, _, base = arg.arguments.partition("=")
    assert re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", base), base
    minor = int(base.split(".")[1].split("-")[0])
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and minor >= 11
    assert [stage[0].arguments.split()[0] for stage in STAGES] == ["${" + name + "}"] * len(STAGES)


def test_it_installs_kmsgate_as_the_readme_does_and_copies_only_the_environment() -> None:
    readme_install = [words for words in readme_commands() if words[:2] == ["pip", "install"]]
    assert readme_install, "the README says how to install kmsgate with pip"
    build = STAGES[0]
    installs = [shlex.split(i.arguments) for i in build if i.keyword == "RUN" and "pip install" in i.arguments]
    (install,) = installs
    assert install[0].endswith("/bin/pip") and install[1:] in [words[1:] for words in readme_install]
    venv = str(Path(install[0]).parent.parent)
    copies = [i.arguments.split() for i in FINAL if i.keyword == "COPY"]
    assert copies == [["--from=build", venv, venv]]
    assert env_of(FINAL)["PATH"].startswith(f"{venv}/bin:")


def test_what_the_build_copies_exists_and_is_not_excluded_by_dockerignore() -> None:
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    sources = [word for i in STAGES[0] if i.keyword == "COPY" for word in i.arguments.split()[:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, source
    assert "*" in (REPO / ".dockerignore").read_text().splitlines()  # everything else stays out


def test_the_entry_point_is_kmsgate_serve_as_the_readme_starts_it() -> None:
    entrypoint = only(FINAL, "ENTRYPOINT").exec_form()
    assert entrypoint == ["kmsgate", "serve"]
    assert any(words[:2] == entrypoint for words in readme_commands())
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kmsgate"] == "kmsgate.cli:main"


def test_it_runs_as_a_non_root_user_with_its_data_dir_on_the_volume() -> None:
    user = only(FINAL, "USER").arguments
    assert user.split(":")[0] not in ("root", "0")
    assert only(FINAL, "VOLUME").exec_form() == ["/data"]
    env = env_of(FINAL)
    assert env["KMSGATE_DATA_DIR"] == "/data"
    exposed = {int(port) for i in FINAL if i.keyword == "EXPOSE" for port in i.arguments.split()}
    assert exposed == {int(env["KMSGATE_PORT"]), int(env["KMSGATE_S3_PORT"])}


def healthcheck_command() -> list[str]:
    arguments = only(FINAL, "HEALTHCHECK").arguments
    options, _, command = arguments.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    words = json.loads(command)
    assert words[0] == "python" and "/healthz" in " ".join(words)
    return [sys.executable, *words[1:]]


def test_the_healthcheck_passes_against_a_live_kmsgate_and_fails_without_one(kmsgate_server: KmsgateServer) -> None:
    command = healthcheck_command()
    alive = subprocess.run(command, env={"KMSGATE_PORT": str(kmsgate_server.port)}, capture_output=True, timeout=30)
    assert alive.returncode == 0, alive.stderr
    nobody = subprocess.run(command, env={"KMSGATE_PORT": str(free_port())}, capture_output=True, timeout=30)
    assert nobody.returncode != 0
