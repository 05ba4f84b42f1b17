"""docker-compose.yml and the Dockerfile against the code (no Docker engine here): every command
they run exists with the options they pass, every environment variable they set is one the code
reads, every file they copy or mount exists, and every long-running service has a health check."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from core.settings import Settings
from shouwang.cli import app
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if s.get("image") == "shouwang:latest"}
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def check_command(args: list[str]) -> None:
    """Parse ``shouwang <args>`` the way the CLI would, without running it."""
    command: Any = typer.main.get_command(app)
    name = "shouwang"
    while True:
        ctx = command.make_context(name, list(args), resilient_parsing=False)
        if not hasattr(command, "list_commands"):  # a command, not a group
            return
        rest = [*ctx._protected_args, *ctx.args]
        assert rest, f"'shouwang {' '.join(args)}' names a group without a command"
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"'shouwang' has no command {rest[0]!r} (from {args})"
        command, name, args = sub, rest[0], rest[1:]


def shouwang_invocations(service: dict[str, Any]) -> list[list[str]]:
    """Every shouwang command line a service runs: its command under the image's entrypoint,
    or the ``shouwang ...`` parts of a shell script."""
    command = service.get("command")
    if service.get("entrypoint") is None:
        return [list(command)] if command else []
    script = " ".join(command) if isinstance(command, list) else str(command)
    script = script.replace("$$", "$")
    out = []
    for part in re.split(r"&&|;|\bdo\b|\bdone\b|\|\|", script):
        words = shlex.split(part)
        if ">" in words:
            words = words[: words.index(">")]
        if words[:1] == ["shouwang"]:
            out.append(words[1:])
    return out


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_a_service_runs_exists_with_its_options(name: str) -> None:
    invocations = shouwang_invocations(OURS[name])
    assert invocations, f"service {name} runs no shouwang command"
    for args in invocations:
        check_command(args)
    health = OURS[name].get("healthcheck", COMPOSE["x-shouwang"]["healthcheck"])
    if not health.get("disable"):
        test = health["test"]
        assert test[:2] == ["CMD", "shouwang"]
        check_command(test[2:])


def test_a_wrong_command_or_option_would_be_caught() -> None:
    with pytest.raises(AssertionError, match="no command 'ingets'"):
        check_command(["ingets"])
    with pytest.raises(Exception, match="No such option: --nmae"):
        check_command(["notify", "--nmae", "x"])


def test_every_environment_variable_is_one_the_code_reads() -> None:
    fields = {f"SHOUWANG_{n.upper()}" for n in Settings.model_fields}
    provisioning = "".join(
        p.read_text() for p in (ROOT / "dashboards" / "provisioning").rglob("*.yaml")
    )
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        script = str(service.get("command", ""))
        for var in env:
            if not var.startswith("SHOUWANG_"):
                continue
            used = (
                var in fields
                or (name in OURS and var in script)
                or (name == "grafana" and var in provisioning)
            )
            assert used, f"{name}: {var} is read by nothing"
    assert "SHOUWANG_STATE_DIR" in DOCKERFILE and "SHOUWANG_STATE_DIR" in fields


def test_the_platform_is_all_there_with_health_checks() -> None:
    assert SERVICES["db"]["image"].startswith("timescale/timescaledb:")
    assert SERVICES["broker"]["image"].startswith("eclipse-mosquitto:")
    assert SERVICES["grafana"]["image"].startswith("grafana/")
    commands = {tuple(s["command"][:1]) for s in OURS.values() if s.get("entrypoint") is None}
    for needed in ("ingest", "analytics", "notify", "api"):
        assert (needed,) in commands, f"no service runs 'shouwang {needed}'"
    assert SERVICES["simulator"]["profiles"] == ["sim"]
    for name, service in SERVICES.items():
        if name in ("setup",):
            continue
        health = service.get("healthcheck") or (
            COMPOSE["x-shouwang"]["healthcheck"] if name in OURS else None
        )
        assert health and not health.get("disable"), f"{name} has no health check"
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_the_image_holds_every_package_and_the_entrypoint() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set(re.findall(r"^COPY (\S+) ", DOCKERFILE, re.MULTILINE))
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"not in the image: {sorted(packages - copied)}"
    entry = re.search(r'^ENTRYPOINT \["(\w+)"\]', DOCKERFILE, re.MULTILINE)
    assert entry and entry.group(1) in project["project"]["scripts"]
    assert Path(ROOT / "Dockerfile").read_text().startswith("#")


def test_every_long_running_service_is_restarted_when_it_dies() -> None:
    for name, service in SERVICES.items():
        policy = service.get("restart")
        if name == "setup":
            assert policy == "no", "the one-shot setup runs once"
            continue
        assert policy in ("unless-stopped", "always", "on-failure"), f"{name}: restart {policy!r}"
