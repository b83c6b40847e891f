"""The Kubernetes manifests (deploy/k8s), checked without a cluster.

They are rendered the way `kubectl apply -k` would (the kustomization's resources, with its
image override), each object is validated against the Kubernetes OpenAPI schemas bundled
in `kubernetes-validate` (strict: an unknown field, such as a misspelt probe, fails), and
then checked for what a schema cannot see: probes on the hub's real endpoints and port,
settings the hub actually reads, one image for every role, grace periods longer than the
hub's own drain timeouts, and an autoscaler aimed at the workers."""

from __future__ import annotations

import copy
import os
import re
import socket
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hub.cli.main import GRACEFUL_SHUTDOWN_S
from hub.config import Settings
from hub.workers import STOP_MS
from tests.test_deploy import SECRETS as COMPOSE_SECRETS

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
# The oldest Kubernetes the manifests are meant for (autoscaling/v2 and policy/v1 are GA
# well before it), and the newest whose schemas the validator ships.
MIN_VERSION = "1.27"
VERSIONS = [MIN_VERSION, kubernetes_validate.latest_version()]
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "images"}
# The compose file's secrets, and the database URL (it carries the password here).
SECRETS = COMPOSE_SECRETS | {"HUB_DATABASE_URL"}
Obj = dict[str, Any]


def kustomization() -> Obj:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def render() -> list[Obj]:
    """What `kustomize build deploy/k8s` prints, for the features this kustomization uses
    (test_the_kustomization_uses_only_what_render_understands keeps that true)."""
    config = kustomization()
    objects: list[Obj] = []
    for name in config["resources"]:
        objects += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    for override in config.get("images", []):
        for obj in objects:
            for container in containers(obj):
                image = container["image"]
                repo, tag = image.rsplit(":", 1) if ":" in image else (image, None)
                if repo == override["name"]:
                    repo = override.get("newName", repo)
                    tag = override.get("newTag", tag)
                    container["image"] = f"{repo}:{tag}" if tag else repo
    return objects


def pod_spec(obj: Obj) -> Obj:
    if obj["kind"] in {"Deployment", "Job"}:
        return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return {}


def containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render()


def one(objects: list[Obj], kind: str, component: str | None = None) -> Obj:
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (component is None or labels(o).get("app.kubernetes.io/component") == component)
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects for {component}"
    return found[0]


def labels(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels", {})  # type: ignore[no-any-return]


def command(obj: Obj) -> list[str]:
    (container,) = pod_spec(obj)["containers"]
    return [str(part) for part in container["command"]]


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


# --- rendering and schemas -----------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_uses_only_what_render_understands():
    config = kustomization()
    assert set(config) <= KUSTOMIZE_FIELDS, sorted(set(config) - KUSTOMIZE_FIELDS)
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(config["resources"]) == sorted(files)


def test_the_manifests_are_the_production_shape(objects):
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PodDisruptionBudget",
            "Secret",
            "Service",
        ]
    )
    for obj in objects:
        # Namespace-agnostic: `kubectl apply -k deploy/k8s -n <yours>`.
        assert "namespace" not in obj["metadata"], obj["metadata"]["name"]
        assert labels(obj).get("app.kubernetes.io/name") == "webhook-hub"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The validator must work offline (CI has no cluster and no schema download)."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("schema validation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_matches_the_kubernetes_schema(objects, version, no_network):
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}")


def test_the_schema_check_catches_a_misspelt_field(objects):
    broken = copy.deepcopy(one(objects, "Deployment", "api"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_selectors_match_their_pods(objects):
    for obj in (o for o in objects if o["kind"] == "Deployment"):
        selector = obj["spec"]["selector"]["matchLabels"]
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), obj["metadata"]["name"]
    api_pods = one(objects, "Deployment", "api")["spec"]["template"]["metadata"]["labels"]
    worker_pods = one(objects, "Deployment", "worker")["spec"]["template"]["metadata"]["labels"]
    for obj in (one(objects, "Service"), one(objects, "PodDisruptionBudget")):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= api_pods.items()
        assert not selector.items() <= worker_pods.items()  # workers serve no HTTP


# --- what the hub needs ----------------------------------------------------------------------


def test_each_role_runs_its_command_from_one_image(objects):
    api, worker = one(objects, "Deployment", "api"), one(objects, "Deployment", "worker")
    job = one(objects, "Job")
    assert command(job) == ["hub", "migrate"]
    assert command(api)[:2] == ["hub", "serve"]
    assert flag(command(api), "--host") == "0.0.0.0"
    assert command(worker)[:2] == ["hub", "worker"]
    assert int(flag(command(worker), "--processes")) >= 1
    assert int(flag(command(worker), "--threads")) >= 1
    images = {c["image"] for o in (api, worker, job) for c in containers(o)}
    override = kustomization()["images"][0]
    assert images == {f"{override['newName']}:{override['newTag']}"}
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


def test_the_api_probes_ask_the_hub_on_its_port(objects):
    api = one(objects, "Deployment", "api")
    (container,) = pod_spec(api)["containers"]
    port = int(flag(command(api), "--port"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in ports.values()

    def probe_port(probe: Obj) -> int:
        target = probe["httpGet"]["port"]
        return int(ports[target] if isinstance(target, str) else target)

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for name in ("readinessProbe", "livenessProbe", "startupProbe"):
        if name in container:
            assert probe_port(container[name]) == port, name
    target = one(objects, "Service")["spec"]["ports"][0]["targetPort"]
    assert (ports[target] if isinstance(target, str) else target) == port


def test_the_api_drains_before_it_is_killed(objects):
    api = one(objects, "Deployment", "api")
    spec = pod_spec(api)
    (container,) = spec["containers"]
    # The endpoint leaves the Service before SIGTERM...
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # ...and the pod's grace period (which the preStop sleep spends from) outlasts uvicorn's
    # drain, so requests in flight are answered rather than cut by SIGKILL.
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + GRACEFUL_SHUTDOWN_S + 5
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_workers_get_to_finish_their_messages(objects):
    worker = one(objects, "Deployment", "worker")
    # hub/workers/processes.py: running messages get STOP_MS, the supervisor waits 5 s more.
    assert pod_spec(worker)["terminationGracePeriodSeconds"] > STOP_MS / 1000 + 5


def test_the_autoscaler_drives_the_worker_deployment(objects):
    hpa = one(objects, "HorizontalPodAutoscaler")
    worker = one(objects, "Deployment", "worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": worker["apiVersion"],
        "kind": "Deployment",
        "name": worker["metadata"]["name"],
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is measured against the request: without one the HPA cannot scale.
    (container,) = pod_spec(worker)["containers"]
    assert "cpu" in container["resources"]["requests"]
    # The autoscaler owns the replica count: a `replicas` here would reset it on each apply.
    assert "replicas" not in worker["spec"]
    # Queue-depth scaling is documented next to it, with the metrics the hub exports.
    text = (K8S / "worker-hpa.yaml").read_text()
    assert "hub_events_active" in text
    assert "hub_broker_backlog_messages" in text


def test_the_pods_run_as_the_images_non_root_user(objects):
    for obj in objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # deploy/Dockerfile's `hub`
        assert spec["automountServiceAccountToken"] is False
        for container in containers(obj):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


# --- settings --------------------------------------------------------------------------------


def environment(objects: list[Obj], obj: Obj) -> dict[str, str]:
    """The variables a workload's containers get: envFrom sources, then env entries."""
    sources = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    env: dict[str, str] = {}
    for container in containers(obj):
        for source in container.get("envFrom", []):
            kind, ref = (
                ("ConfigMap", source["configMapRef"])
                if "configMapRef" in source
                else ("Secret", source["secretRef"])
            )
            assert (kind, ref["name"]) in sources, f"{kind} {ref['name']} is not in deploy/k8s"
            data = sources[(kind, ref["name"])]
            env.update(data.get("data") or {})
            env.update(data.get("stringData") or {})
        for var in container.get("env", []):
            env[var["name"]] = str(var.get("value", ""))
    return env


def test_every_hub_variable_is_a_real_setting(objects):
    known = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    mentioned = set()
    for obj in objects:
        if obj["kind"] in {"ConfigMap", "Secret"}:
            mentioned |= set(obj.get("data") or {}) | set(obj.get("stringData") or {})
        for container in containers(obj):
            mentioned |= {var["name"] for var in container.get("env", [])}
    hub_vars = {name for name in mentioned if name.startswith("HUB_")}
    assert hub_vars, "no hub settings at all"
    assert not hub_vars - known, f"{sorted(hub_vars - known)} are not hub settings"


def test_secrets_are_in_the_secret_only_and_unusable_until_filled_in(objects):
    secret = one(objects, "Secret")
    config = one(objects, "ConfigMap")
    values = secret["stringData"]
    assert set(values) == SECRETS
    assert not SECRETS & set(config["data"]), "a secret in the ConfigMap"
    # Placeholders fail closed: an empty value is unset to the hub (provider not mounted,
    # admin API refuses all); a guessable placeholder would be a working secret.
    assert {k: v for k, v in values.items() if k != "HUB_DATABASE_URL" and v} == {}
    assert values["HUB_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "FILL-IN" in values["HUB_DATABASE_URL"]
    text = (K8S / "secret.yaml").read_text()
    assert text.count("FILL IN") >= len(SECRETS)


@pytest.mark.parametrize("component", ["api", "worker", None])
def test_each_workload_environment_loads_as_production_settings(
    objects, component, monkeypatch, tmp_path
):
    """What a pod gets, as it stands: Settings accept it, it is PostgreSQL + Redis (an API pod
    without HUB_REDIS_URL would run workers on a private queue), and nothing is mounted
    or authorised until the Secret is filled in."""
    workload = one(objects, "Job") if component is None else one(objects, "Deployment", component)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    for key, value in environment(objects, workload).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.redis_url
    assert all(not secrets for secrets in settings.webhook_secrets().values())
    assert settings.admin_tokens == []
    assert settings.slack_bot_token is None
    assert settings.github_token is None
    assert settings.github_incident_repo is None


def test_the_docs_first_apply_is_the_settings_and_the_migration_only(objects):
    """docs/operations.md applies in two steps so that no pod runs before the schema is
    migrated; its first step's label selector must pick exactly the settings and the Job."""
    guide = (K8S.parents[1] / "docs" / "operations.md").read_text()
    match = re.search(r"kubectl apply -k deploy/k8s -n hub \\\n\s+-l '([^']+)'", guide)
    assert match, "the operations guide's first apply step is gone"
    terms = [term.split("!=") for term in match[1].split(",")]

    def selected(obj: Obj) -> bool:
        return all(labels(obj).get(key) != value for key, value in terms)

    assert sorted(o["kind"] for o in objects if selected(o)) == ["ConfigMap", "Job", "Secret"]
