"""docker-compose.yml and the Dockerfile against the code (no Docker engine here): every command
they run exists with the options they pass, every environment variable they set is one the code
reads, every file they copy or mount exists, and every long-running service has a health check.
And the deployment's safety rules: compose refuses to start without its secrets (interpolated
here as ``docker compose config`` does), no secret has a default, published ports listen on
loopback unless the operator opts in, plain MQTT never leaves the broker's loopback, each service
connects to the database as its own role, and the image runs as an unprivileged user."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from psycopg.conninfo import conninfo_to_dict

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


def test_each_stage_service_checks_its_own_stage_is_alive() -> None:
    from core.metrics import STAGES

    runs = {name: s["command"][0] for name, s in OURS.items() if s.get("entrypoint") is None}
    stage_services = {name: cmd for name, cmd in runs.items() if cmd in STAGES}
    assert set(stage_services.values()) == set(STAGES) - {"gateway"}, stage_services
    for name, stage in stage_services.items():
        test = OURS[name].get("healthcheck", {}).get("test", [])
        checked = [test[i + 1] for i, word in enumerate(test[:-1]) if word == "--stage"]
        assert checked == [stage], f"{name} runs 'shouwang {stage}' but its health check {test}"
        check_command(test[2:])
    # ... and a service that is no stage checks none
    for name in set(OURS) - set(stage_services):
        health = OURS[name].get("healthcheck", COMPOSE["x-shouwang"]["healthcheck"])
        assert "--stage" not in health.get("test", []), name


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
            source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
            if source.startswith("./tls"):  # the operator's certificates (scripts/certs.sh)
                assert ":ro" in str(mount) or mount.get("read_only"), f"{name}: {mount} writable"
            elif source.startswith("./"):
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


# --- Secrets, ports, TLS, roles -------------------------------------------------------------

ENV_EXAMPLE = (ROOT / ".env.example").read_text()
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$")


class MissingVariable(Exception):
    def __init__(self, missing: dict[str, str]) -> None:
        super().__init__(f"required variables unset: {sorted(missing)}")
        self.missing = missing


def interpolate(value: Any, env: dict[str, str], missing: dict[str, str]) -> Any:
    """``value`` with variables substituted as compose does: ``$$`` is a dollar; ``${V:-d}``
    (unset or empty: d), ``${V-d}`` (unset: d), ``${V:?m}`` / ``${V?m}`` (an error m)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name = m.group("name") or m.group("bare")
        op, arg, got = m.group("op"), m.group("arg") or "", env.get(name)
        empty = got is None or (got == "" and op is not None and op.startswith(":"))
        if op in (":?", "?") and empty:
            missing[name] = arg
            return ""
        if op in (":-", "-") and empty:
            return arg
        return got or ""

    parts = value.split("$$")
    return "$".join(VARIABLE.sub(one, p) for p in parts)


def resolve(env: dict[str, str]) -> dict[str, Any]:
    """The configuration ``docker compose config`` would print with ``env``; raises
    :class:`MissingVariable` where compose would refuse."""
    missing: dict[str, str] = {}
    out = interpolate(COMPOSE, env, missing)
    if missing:
        raise MissingVariable(missing)
    return dict(out)


def example_env() -> dict[str, str]:
    """.env.example's variables (the uncommented ones), each given a value."""
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=$", ENV_EXAMPLE, re.MULTILINE)
    return {
        n: "https://shouwang.example.org" if n.endswith("URL") else f"{n.lower()}-x" for n in names
    }


def required_variables() -> dict[str, set[str]]:
    """Every variable the compose file requires, with the messages it gives."""
    out: dict[str, set[str]] = {}
    for part in (ROOT / "docker-compose.yml").read_text().split("$$"):
        for m in VARIABLE.finditer(part):
            if m.group("op") in (":?", "?"):
                out.setdefault(m.group("name"), set()).add(m.group("arg"))
    return out


def test_compose_refuses_to_start_without_its_secrets() -> None:
    required = required_variables()
    with pytest.raises(MissingVariable) as refused:
        resolve({})
    assert set(refused.value.missing) == set(required)
    assert all(msg.strip() for msgs in required.values() for msg in msgs), "say what to set"
    for name in required:  # each one alone missing, or empty, is enough to refuse
        for value in (None, ""):
            env = example_env()
            if value is None:
                del env[name]
            else:
                env[name] = value
            with pytest.raises(MissingVariable, match=name):
                resolve(env)
    resolve(example_env())  # and with .env.example filled in it starts


def test_every_secret_is_required_and_none_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for m in (m for part in text.split("$$") for m in VARIABLE.finditer(part)):
        name = m.group("name") or m.group("bare")
        if SECRET_NAME.search(name) or name.endswith("_URL"):
            assert m.group("op") == ":?", f"${{{name}}} must be ${{{name}:?what to set}}"
    # No literal secret anywhere: every password-like setting is exactly a required variable,
    # and every database URL's password is one.
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key}={value}"
            if key.endswith("DATABASE_URL"):
                assert re.fullmatch(
                    r"postgresql://\w+:\$\{\w+:\?[^}]+\}@[\w.-]+:\d+/\w+", str(value)
                ), f"{name}: {key}={value}"
    # .env.example holds exactly the required variables, with no value.
    assert set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE)) == set(
        required_variables()
    )
    assert re.findall(r"^[A-Z][A-Z0-9_]*=(.+)$", ENV_EXAMPLE, re.MULTILINE) == []


def test_published_ports_listen_on_loopback_unless_the_operator_opts_in() -> None:
    opt_in = {"SHOUWANG_BIND", "SHOUWANG_MQTT_BIND"}
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            m = re.fullmatch(r"\$\{(\w+):-127\.0\.0\.1\}:(\d+):(\d+)", str(port))
            assert m and m.group(1) in opt_in, f"{name} publishes {port!r} beyond loopback"
    published = {
        name: [str(p).rsplit(":", 1)[1] for p in resolve(example_env())["services"][name]["ports"]]
        for name, s in SERVICES.items()
        if s.get("ports")
    }
    assert published == {"broker": ["8883"], "api": ["8080"], "grafana": ["3000"]}
    for service in resolve(example_env())["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    opened = resolve(example_env() | {"SHOUWANG_MQTT_BIND": "0.0.0.0"})["services"]
    assert opened["broker"]["ports"] == ["0.0.0.0:8883:8883"]
    assert opened["api"]["ports"] == ["127.0.0.1:8080:8080"]


def test_plain_mqtt_stays_on_the_brokers_loopback_and_every_client_uses_tls() -> None:
    [config] = [
        args
        for args in shouwang_invocations(SERVICES["setup"])
        if args[:2] == ["broker", "broker-config"]
    ]
    check_command(config)
    options = dict(zip(config[2::2], config[3::2], strict=False))
    assert options["--host"] == "127.0.0.1" and options["--port"] == "1883"
    assert options["--tls-dir"] == "/tls" and options["--tls-port"] == "8883"
    env = resolve(example_env())
    for name, service in env["services"].items():
        if name not in OURS:
            continue
        assert service["environment"]["SHOUWANG_MQTT_TLS"] == "true", name
        assert service["environment"]["SHOUWANG_MQTT_PORT"] == "8883", name
        ca = service["environment"]["SHOUWANG_MQTT_CA_FILE"]
        assert any(
            (m["target"] if isinstance(m, dict) else m.split(":")[1]) in (ca, str(Path(ca).parent))
            for m in service["volumes"]
        ), f"{name} does not mount {ca}"
    broker_mounts = SERVICES["broker"]["volumes"]
    assert "./tls:/tls:ro" in broker_mounts


def test_each_service_connects_to_the_database_as_its_own_role() -> None:
    from core.roles import STAGE_ROLES, default_login

    env = resolve(example_env())["services"]
    user = {
        name: conninfo_to_dict(s["environment"]["SHOUWANG_DATABASE_URL"])["user"]
        for name, s in env.items()
        if name in OURS
    }
    owner = conninfo_to_dict(env["setup"]["environment"]["SHOUWANG_DATABASE_URL"])["user"]
    assert owner == SERVICES["db"]["environment"]["POSTGRES_USER"]
    assert [n for n, u in user.items() if u == owner] == ["setup"], "the owner is for setup only"
    for stage in STAGE_ROLES:
        assert user[stage] == default_login(stage), stage
    assert user["broker-sync"] == default_login("api") and user["simulator"] == default_login(
        "ingest"
    )
    logins = [a[2] for a in shouwang_invocations(SERVICES["setup"]) if a[:2] == ["db", "login"]]
    assert sorted(logins) == sorted(STAGE_ROLES)
    # The broker's admin account (it may publish anything) only where accounts are written.
    admin = [n for n, s in SERVICES.items() if "SHOUWANG_MQTT_ADMIN_PASSWORD" in str(s)]
    assert sorted(admin) == ["broker-sync", "setup"]
    assert "SHOUWANG_MQTT_ADMIN_PASSWORD" not in str(COMPOSE["x-shouwang"])


def test_the_image_runs_as_an_unprivileged_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.splitlines()]
    users = [i for i, line in enumerate(lines) if line.startswith("USER ")]
    runs = [i for i, line in enumerate(lines) if line.startswith("RUN ")]
    assert users and users[-1] > runs[-1], "USER after the last RUN"
    uid = lines[users[-1]].split()[1].split(":")[0]
    assert uid not in ("0", "root")
    assert uid == "1883", "the eclipse-mosquitto image's mosquitto user: it reads our files"
    for name, service in SERVICES.items():
        assert service.get("user") in (None, "1883:1883"), f"{name} overrides the user"


def test_the_interpolation_here_is_composes() -> None:
    missing: dict[str, str] = {}
    got = interpolate(
        ["$${A}", "${A:-d}", "${A-d}", "${B:?say}", "x$A", "${C:-}y"], {"A": ""}, missing
    )
    assert got == ["${A}", "d", "", "", "x", "y"] and missing == {"B": "say"}
