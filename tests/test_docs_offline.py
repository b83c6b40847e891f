"""/docs and /redoc load from the hub alone (no CDN), the webhook endpoints are in the OpenAPI
document as they answer, and every error of the app is `{"error", "reason"}`."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.observability.metrics import Metrics
from hub.runtime.migrate import upgrade
from hub.web import docs
from integrations.registry import ENDPOINT_FACTORIES
from tests import conftest
from tests.signing import github_request, slack_request, stripe_event, stripe_request

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "hub" / "web" / "static"
ASSET_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
}
WEBHOOK_ANSWERS = {"200", "400", "401", "404", "405", "413", "415", "429", "503"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A migrated SQLite hub with a secret for every provider (tests/conftest.py)."""
    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url)
    return conftest.make_settings(url, **overrides)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("docs")))) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


# --- /docs and /redoc, offline ------------------------------------------------------------------


def referenced_urls(html: str) -> list[str]:
    """Every URL the page loads: src= and href= attributes, and Swagger UI's `url: '...'`."""
    attributes = re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
    return attributes + re.findall(r"""\burl:\s*'([^']+)'""", html)


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {docs.SWAGGER_JS, docs.SWAGGER_CSS, docs.FAVICON, "/openapi.json"}),
        ("/redoc", {docs.REDOC_JS, docs.FAVICON, "/openapi.json"}),
    ],
)
def test_the_docs_pages_load_only_same_origin_assets(client, page, assets):
    answer = client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert "://" not in html, "an absolute URL: another host, needing the internet"
    assert "cdn.jsdelivr.net" not in html and "fonts.googleapis" not in html
    urls = referenced_urls(html)
    assert set(urls) == assets
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        assert not urlsplit(url).netloc, url
        fetched = client.get(url)
        assert fetched.status_code == 200, url
        media = fetched.headers["content-type"].partition(";")[0]
        expected = ASSET_TYPES.get(Path(url).suffix, {"application/json"})
        assert media in expected, (url, media)


def test_the_vendored_bundles_are_the_real_ones(client):
    swagger = client.get(docs.SWAGGER_JS).content
    redoc = client.get(docs.REDOC_JS).content
    assert len(swagger) > 1_000_000 and b"SwaggerUIBundle" in swagger
    assert len(redoc) > 500_000 and b"Redoc" in redoc
    assert b".swagger-ui" in client.get(docs.SWAGGER_CSS).content
    # Each library ships with its licence.
    for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (STATIC / licence).stat().st_size > 0


def test_the_docs_follow_a_proxy_prefix(tmp_path):
    # Behind a proxy that strips /hub, the pages must point at /hub/static/..., not /static.
    with TestClient(create_app(make_settings(tmp_path)), root_path="/hub") as c:
        html = c.get("/docs").text
    assert set(referenced_urls(html)) == {
        "/hub" + u for u in (docs.SWAGGER_JS, docs.SWAGGER_CSS, docs.FAVICON, "/openapi.json")
    }


def test_an_install_carries_the_assets():
    # The image installs the package non-editable: a file package-data misses is not there.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["hub"]
    carried = {p for pattern in patterns for p in (ROOT / "hub").glob(pattern) if p.is_file()}
    vendored = {p for p in STATIC.rglob("*") if p.is_file()}
    assert vendored, "no vendored assets"
    assert vendored <= carried, sorted(str(p.relative_to(ROOT)) for p in vendored - carried)


# --- the webhook endpoints in the OpenAPI --------------------------------------------------------


def registry_paths() -> set[str]:
    return {
        f"/webhooks/{endpoint.path}"
        for factory in ENDPOINT_FACTORIES.values()
        for endpoint in factory(["any-secret"], 300)
    }


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_webhook_endpoint_is_documented_and_nothing_else(spec):
    documented = {p for p in spec["paths"] if p.startswith("/webhooks/")}
    assert documented == registry_paths()
    for path in documented:
        assert list(spec["paths"][path]) == ["post"], path
        operation = spec["paths"][path]["post"]
        assert operation["tags"] == ["webhooks"]
        assert operation["security"] == [], "the signature is the authentication, not a token"
        assert set(operation["responses"]) == WEBHOOK_ANSWERS, path
        for status, answer in operation["responses"].items():
            schema = answer["content"]["application/json"]["schema"]
            if status != "200":
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, status)
        answers = operation["responses"]
        assert "not set" in answers["404"]["description"], "404: a provider without a secret"
        assert "Retry-After" in answers["503"]["headers"]
        assert {"Retry-After", "X-RateLimit-Limit"} <= set(answers["429"]["headers"])


@pytest.mark.parametrize(
    ("path", "headers", "media"),
    [
        ("/webhooks/stripe", {"Stripe-Signature"}, {"application/json"}),
        (
            "/webhooks/github",
            {"X-Hub-Signature-256", "X-GitHub-Event", "X-GitHub-Delivery"},
            {"application/json", "application/x-www-form-urlencoded"},
        ),
        (
            "/webhooks/slack/events",
            {"X-Slack-Signature", "X-Slack-Request-Timestamp"},
            {"application/json"},
        ),
        (
            "/webhooks/slack/interactions",
            {"X-Slack-Signature", "X-Slack-Request-Timestamp"},
            {"application/x-www-form-urlencoded"},
        ),
        (
            "/webhooks/slack/commands",
            {"X-Slack-Signature", "X-Slack-Request-Timestamp"},
            {"application/x-www-form-urlencoded"},
        ),
    ],
)
def test_each_webhook_documents_its_signed_headers_and_bodies(spec, path, headers, media):
    operation = spec["paths"][path]["post"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == headers
    assert all(p["in"] == "header" and p["required"] for p in parameters.values())
    assert operation["requestBody"]["required"] is True
    assert set(operation["requestBody"]["content"]) == media


def test_the_slack_handshake_answer_is_documented(spec):
    ok = spec["paths"]["/webhooks/slack/events"]["post"]["responses"]["200"]
    choices = ok["content"]["application/json"]["schema"]["oneOf"]
    assert {c["$ref"].rsplit("/", 1)[1] for c in choices} == {"WebhookAccepted", "SlackChallenge"}


def test_the_document_is_valid_openapi(spec):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert spec["openapi"].startswith("3.1")
    OPENAPI_31_VALIDATOR.validate(spec)
    # And every reference resolves.
    for ref in set(re.findall(r'"\$ref":\s*"([^"]+)"', json.dumps(spec))):
        resolve(spec, {"$ref": ref})


def documented_200(spec: dict[str, Any], path: str) -> jsonschema.Draft202012Validator:
    schema = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
    return jsonschema.Draft202012Validator({**schema["schema"], "components": spec["components"]})


def test_real_answers_match_the_documented_200s(client, spec):
    sent = {
        "/webhooks/stripe": stripe_request(stripe_event()),
        "/webhooks/github": github_request("ping", {"zen": "Keep it logically awesome."}),
        "/webhooks/slack/events": slack_request(
            json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        ),
        "/webhooks/slack/commands": slack_request(
            b"command=%2Fincident&text=list", "application/x-www-form-urlencoded"
        ),
    }
    for path, (body, headers) in sent.items():
        answer = client.post(path, content=body, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        documented_200(spec, path).validate(answer.json())


def test_a_provider_without_a_secret_is_documented_and_answers_404(tmp_path):
    with TestClient(create_app(make_settings(tmp_path, slack_signing_secrets=[]))) as c:
        assert "/webhooks/slack/events" in c.get("/openapi.json").json()["paths"]
        body, headers = slack_request(b'{"type": "url_verification", "challenge": "c"}')
        answer = c.post("/webhooks/slack/events", content=body, headers=headers)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    assert "signing secret is configured" in answer.json()["reason"]


# --- every error as {"error", "reason"} ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/", 404, "not_found"),
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/static/nope.js", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("POST", "/admin/events", 405, "method_not_allowed"),
        ("POST", "/docs", 405, "method_not_allowed"),
    ],
)
def test_every_error_is_error_and_reason(client, method, path, status, error):
    answer = client.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "reason"}
    assert body["error"] == error
    assert body["reason"]


def test_an_unknown_path_says_where_things_are(client):
    assert client.get("/nope").json()["reason"] == (
        "nothing at /nope; the admin API is under /admin, webhooks are POSTed to "
        "/webhooks/{provider}, the API documentation is at /docs"
    )


def test_a_405_names_the_methods_the_path_takes(client):
    answer = client.delete("/healthz")
    assert answer.headers["allow"] == "GET"
    assert answer.json()["reason"] == "DELETE is not allowed here; this path takes GET"


def test_a_500_is_error_and_reason_and_names_no_detail(tmp_path, monkeypatch):
    def boom(self: Metrics) -> bytes:
        raise RuntimeError("secret-looking detail")

    monkeypatch.setattr(Metrics, "render", boom)
    app = create_app(make_settings(tmp_path))
    with TestClient(app, raise_server_exceptions=False) as c:
        answer = c.get("/metrics", headers={"X-Request-ID": "req-500"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-500"
    assert answer.json() == {
        "error": "internal_error",
        "reason": "the hub failed to answer this request; "
        "its log has the X-Request-ID of this answer",
    }
