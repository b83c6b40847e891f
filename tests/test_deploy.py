"""The deployment files, checked without a Docker engine (none runs in CI or here).

`docker compose config` would catch syntax only; these checks catch what it cannot: a HUB_
variable the hub does not read (a typo silently falls back to a default), a service that runs
the wrong command, a health check that does not ask the hub whether it is ready."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
SERVICES = {"postgres", "redis", "migrate", "api", "worker"}
# Values that must come from the operator's environment, never be written in the file.
SECRETS = {
    "HUB_STRIPE_WEBHOOK_SECRETS",
    "HUB_GITHUB_WEBHOOK_SECRETS",
    "HUB_SLACK_SIGNING_SECRETS",
    "HUB_SLACK_BOT_TOKEN",
    "HUB_GITHUB_TOKEN",
    "HUB_ADMIN_TOKENS",
}
INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """Compose accepts a mapping or a list of KEY=VALUE / bare KEY (taken from the host)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {k: v if sep else None for k, sep, v in pairs}
    return {k: None if v is None else str(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def hub_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if name in {"migrate", "api", "worker"}}


def test_the_services_are_the_production_shape(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["postgres"]
    # One image for every hub role, built from this repository.
    builds = {json.dumps(s.get("build"), sort_keys=True) for s in hub_services(services).values()}
    assert len(builds) == 1
    assert next(iter(hub_services(services).values()))["build"]["dockerfile"] == "deploy/Dockerfile"


def test_each_hub_service_runs_its_command(services: dict[str, dict[str, Any]]) -> None:
    assert command(services["migrate"]) == ["hub", "migrate"]
    api = command(services["api"])
    assert api[:2] == ["hub", "serve"]
    assert api[api.index("--host") + 1] == "0.0.0.0"
    assert api[api.index("--port") + 1] == "8000"
    assert any(str(p).endswith("8000") for p in services["api"]["ports"])
    worker = command(services["worker"])
    assert worker[:2] == ["hub", "worker"]
    assert worker[worker.index("--processes") + 1] == "2"
    assert worker[worker.index("--threads") + 1] == "8"
    assert "replicas" in services["worker"]["deploy"]


def test_the_hub_starts_after_migration_on_healthy_services(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart", "no") == "no"  # one-shot
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"


def test_the_api_healthcheck_asks_readyz(services: dict[str, dict[str, Any]]) -> None:
    test = services["api"]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    assert "/readyz" in text
    assert ":8000/" in text


def test_every_hub_variable_is_a_real_setting(services: dict[str, dict[str, Any]]) -> None:
    known = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    for name, service in hub_services(services).items():
        env = environment(service)
        assert env, f"{name} sets no environment"
        unknown = {k for k in env if k.startswith("HUB_")} - known
        assert not unknown, f"{name}: {sorted(unknown)} are not hub settings"


def test_production_urls_and_secrets_from_the_host(services: dict[str, dict[str, Any]]) -> None:
    for service in hub_services(services).values():
        env = environment(service)
        assert env["HUB_DATABASE_URL"] == "postgresql+psycopg://hub:hub@postgres:5432/hub"
        assert env["HUB_REDIS_URL"] == "redis://redis:6379/0"
        for name in SECRETS:
            value = env[name]
            if value is None:
                continue  # passed through from the host, unset when the host has none
            m = INTERPOLATION.match(value)
            assert m and m["name"] == name, f"{name} is written in the file: {value!r}"
            assert not m["default"], f"{name} has a default value in the file"


def test_the_compose_environment_loads_as_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What a host with no secrets exported gets: Settings must accept it as it stands."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    for key, value in environment(services["api"]).items():
        if value is None:
            continue
        m = INTERPOLATION.match(value)
        monkeypatch.setenv(key, (m["default"] or "") if m else value)
    settings = Settings()
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.stripe_webhook_secrets == []
    # An empty string would make these "set"; they must stay unset without the host's value.
    assert settings.slack_bot_token is None
    assert settings.github_token is None


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    pairs = (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def test_the_image_installs_the_project_and_serves_as_non_root() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [arg for op, arg in instructions if op == "RUN"]
    # The runtime lock, every hash checked, and then the hub with nothing resolved on top.
    copied = [arg.split()[0] for op, arg in instructions if op == "COPY"]
    assert RUNTIME_LOCK.name in copied
    from_lock = next(i for i, r in enumerate(runs) if f"-r {RUNTIME_LOCK.name}" in r)
    assert "pip install --require-hashes" in runs[from_lock]
    hub = next(i for i, r in enumerate(runs) if "pip install --no-deps ." in r)
    assert from_lock < hub
    assert "pip check" in runs[hub]
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    cmds = [arg for op, arg in instructions if op == "CMD"]
    assert len(cmds) == 1
    cmd = json.loads(cmds[0])  # exec form: the hub is PID 1 and receives SIGTERM
    assert cmd[:2] == ["hub", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] == "8000"


def locked(path: Path) -> dict[str, str]:
    """`make lock`'s output as {name: "version; marker"}, each pin required to carry a hash."""
    pins: dict[str, set[str]] = {}
    for entry in path.read_text().replace("\\\n", " ").splitlines():
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        pin, _, hashes = entry.partition(" --hash=sha256:")
        assert hashes, f"{path.name}: {pin.strip()} has no hash"
        name, _, rest = pin.partition("==")
        assert rest, f"{path.name}: {pin.strip()} is not pinned"
        # A universal lock may pin one package twice, under exclusive markers.
        pins.setdefault(canonical(name), set()).add(" ".join(rest.split()))
    return {name: " | ".join(sorted(versions)) for name, versions in pins.items()}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def declared(requirements: list[str]) -> set[str]:
    return {canonical(re.split(r"[\[<>=!~;, ]", r, maxsplit=1)[0]) for r in requirements}


def test_the_image_runs_the_versions_the_tests_ran_and_no_dev_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = declared(project["dependencies"])
    dev = declared(project["optional-dependencies"]["dev"])
    full, image = locked(LOCK), locked(RUNTIME_LOCK)
    assert runtime <= set(image), f"not in {RUNTIME_LOCK.name}: {sorted(runtime - set(image))}"
    assert dev <= set(full), f"not in {LOCK.name}: {sorted(dev - set(full))}"
    # No test or lint tool in the image.
    assert (dev - runtime) & set(image) == set()
    # The same resolution: every runtime pin is the dev lock's pin, marker and all.
    assert {name: full.get(name) for name in image} == image
