"""Schemathesis against the hub's own OpenAPI: every /admin operation, plus /healthz, /readyz
and /metrics, called in-process (ASGI) with a valid admin token.

Every check schemathesis 4 has is on (one narrowed for opaque cursors, see OPAQUE_CURSOR):
no 5xx, every status code documented, content types as documented, JSON bodies valid against
their response models, documented headers present, schema-violating input refused with a 4xx
and schema-valid input not refused, 405s naming the allowed methods, and every operation
refusing a request without the token. The app is seeded (events, incidents) so that
`test_seeded_rows_answer_2xx_that_match_the_schema` reaches the by-id routes' 200s too."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.bootstrap import create_app
from hub.cli import demo_payloads
from hub.config import Settings
from hub.runtime.migrate import upgrade
from tests.signing import GITHUB_SECRET, SLACK_SECRET, STRIPE_SECRET

pytestmark = pytest.mark.fuzz

TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Operations under test: the admin API and the operations endpoints.
PATHS = r"^/(admin/|healthz$|readyz$|metrics$)"
# Generated requests per operation, besides schemathesis's own coverage cases: 25 under the
# `ci` Hypothesis profile (tests/fuzz/conftest.py), more under `deep`.
EXAMPLES = max(10, settings.default.max_examples // 8)

# Every check schemathesis has is on; one is narrowed, for four operations, and this is why.
# `positive_data_acceptance` expects a request that fits the schema to be accepted. A page
# cursor is opaque: any string fits its schema, but only one this API issued is a cursor, and
# anything else is answered 400 `bad_cursor`, as documented (tests/test_admin_api.py
# `test_a_cursor_this_api_did_not_issue_is_400`). So 400 is expected there too; that the 400
# is documented and its body matches `ErrorOut` is still checked, as everywhere.
OPAQUE_CURSOR = {
    "include-path": ["/admin/events", "/admin/audit"],
    "include-method": "GET",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]
        }
    },
}
# The same narrowing, for what is a language rather than a shape: a rules draft (YAML with
# CEL and Jinja2 inside) and a silence's CEL `match` fit their schema as any string, but only
# ones that compile are accepted, and a silence must end in the future; anything else is
# answered 422 naming what is wrong (tests/rules/). The 422's body is still checked.
LANGUAGES = {
    "include-path": ["/admin/rules/test", "/admin/silences"],
    "include-method": "POST",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
        }
    },
}
CONFIG = {
    "headers": AUTH,
    # Deterministic exactly when the Hypothesis profile is (under CI=true; conftest.py).
    "generation": {"max-examples": EXAMPLES, "deterministic": settings.default.derandomize},
    "operations": [OPAQUE_CURSOR, LANGUAGES],
}


@dataclass
class Seeded:
    """Rows the fixture made, so GET-by-id paths can hit their 200s too."""

    events: list[str]
    incidents: list[str]


def make_settings(tmp_path: Path, *, migrate: bool = True) -> Settings:
    url = f"sqlite:///{tmp_path}/hub.db"
    if migrate:
        upgrade(url)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        redis_url=None,
        stripe_webhook_secrets=[STRIPE_SECRET],
        github_webhook_secrets=[GITHUB_SECRET],
        slack_signing_secrets=[SLACK_SECRET],
        admin_tokens=[TOKEN],
        embedded_workers="thread",  # as tests/conftest.py: no worker process per app
        # Thousands of requests a minute from one token and one address: rate limits would
        # turn most of them into 429s and test nothing else.
        admin_rate_limit="1000000/minute",
        unverified_rate_limit="1000000/minute",
        worker_min_backoff_ms=50,
        worker_max_backoff_ms=200,
        worker_max_retries=1,
    )


def seed(client: TestClient) -> Seeded:
    """Deliver what the demo sends (a dispute, CI red), wait for the workers' incidents."""
    secrets = {"stripe": STRIPE_SECRET, "github": GITHUB_SECRET, "slack": SLACK_SECRET}
    requests = [
        demo_payloads.dispute_created(),
        demo_payloads.workflow_run("failure", 41, "Break the build"),
        demo_payloads.dispute_created(),
    ]
    events = []
    for request in requests:
        headers = demo_payloads.signed(request, secrets[request.provider])
        answer = client.post(request.path, content=request.body, headers=headers)
        assert answer.status_code == 200, answer.text
        events.append(answer.json()["event_id"])
    deadline = time.monotonic() + 10
    while True:
        items = client.get("/admin/incidents", headers=AUTH).json()["items"]
        if len(items) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert items, "the workers made no incident from the seeded events"
    return Seeded(events=events, incidents=[i["id"] for i in items])


class Hub:
    """The ASGI app schemathesis calls: the hub under test, swapped in by the `seeded` fixture.

    The schema is loaded at import, from an app that is never started, because
    `schemathesis.pytest.from_fixture` (which would load it inside a fixture) fails on pytest
    9.2 (`'Function' object has no attribute '_nodeid'`). And schemathesis ends an ASGI app's
    lifespan after every test item and starts it again on the next request, while the hub
    starts its services (workers, sweeper) once per app: so the fixture owns the lifespan,
    and lifespan events from schemathesis are answered as unsupported (returning without
    reading one is how an app says so)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        assert self.app is not None, "the `seeded` fixture is not active"
        await self.app(scope, receive, send)


HUB = Hub()


def _load_schema() -> schemathesis.BaseSchema:
    """The OpenAPI of an app that is built but never started (nothing is seeded or served)."""
    with tempfile.TemporaryDirectory() as tmp:
        HUB.app = create_app(make_settings(Path(tmp), migrate=False))
        try:
            loaded = schemathesis.openapi.from_asgi(
                "/openapi.json", HUB, config=schemathesis.Config.from_dict(CONFIG)
            )
        finally:
            HUB.app = None
    # The webhook paths (POST /webhooks/...) are in the document for readers of /docs, but the
    # ingress in front of FastAPI answers them and needs real provider signatures: generated
    # requests could only be refused (tests/test_docs_offline.py checks their documentation
    # against signed deliveries). Excluded explicitly: `include` alone is ORed with the filter
    # that CONFIG's `operations` makes, which lets every operation through.
    return loaded.include(path_regex=PATHS).exclude(path_regex=r"^/webhooks/")


schema = _load_schema()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Swap in the app under test (migrated, started, seeded) for this module's tests."""
    app = create_app(make_settings(tmp_path_factory.mktemp("schema")))
    with TestClient(app) as client:
        rows = seed(client)
        HUB.app = app
        try:
            yield rows
        finally:
            HUB.app = None


def test_seeded_rows_answer_2xx_that_match_the_schema(seeded: Seeded) -> None:
    """The by-id routes with ids that exist: generated ids almost never do. First in the
    module, so the incident is still open (ack, resolve, reopen apply in that order)."""
    event, incident = seeded.events[0], seeded.incidents[0]

    def call(method: str, path: str, body: object = None, **params: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"path_parameters": params, "headers": dict(AUTH)}
        if body is not None:
            kwargs["body"] = body
        response = schema[path][method].Case(**kwargs).call_and_validate()
        assert 200 <= response.status_code < 300, (method, path, response.text)
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    assert call("GET", "/admin/events/{event_id}", event_id=event)["id"] == event
    call("POST", "/admin/events/{event_id}/replay", event_id=event)
    replay = call("POST", "/admin/replays", {"provider": "stripe", "dry_run": False})
    assert replay["matched"] >= 1
    call("GET", "/admin/replays/{replay_id}", replay_id=replay["replay_id"])
    call("POST", "/admin/replays", {"status": "processed", "dry_run": True})
    assert call("GET", "/admin/incidents/{incident_id}", incident_id=incident)["timeline"]
    for verb in ("ack", "resolve", "reopen"):
        call(
            "POST", f"/admin/incidents/{{incident_id}}/{verb}", {"note": verb}, incident_id=incident
        )
    call("POST", "/admin/tokens", {"name": "fuzz.reader", "scopes": ["read"]})
    call("DELETE", "/admin/tokens/{name}", name="fuzz.reader")
    call("POST", "/admin/retention/run", {"dry_run": True})
    call("GET", "/admin/audit")


@schema.parametrize()
def test_admin_api_matches_its_schema(case: schemathesis.Case, seeded: Seeded) -> None:
    case.call_and_validate()


# What schemathesis found, as fixed cases: a derandomized CI run need not draw them again.
REGRESSIONS = [
    pytest.param(
        "GET /admin/events", {"query": {"cursor": "\x80"}}, 400,
        id="500: base64 raised ValueError on a non-ASCII cursor",
    ),
    pytest.param(
        "GET /admin/events", {"query": {"since": "0001-01-01T00:00:00+00:01"}}, 422,
        id="500: OverflowError converting a date-time before year 1 in UTC",
    ),
    pytest.param(
        "GET /admin/audit", {"query": {"until": "9999-12-31T23:59:59-00:01"}}, 422,
        id="500: OverflowError converting a date-time after year 9999 in UTC",
    ),
    pytest.param(
        "GET /admin/incidents", {"query": {"since": "20260131"}}, 422,
        id="200: a number was read as Unix time (20260131 as 1970-08-23)",
    ),
    pytest.param(
        "POST /admin/replays", {"body": {"dry_run": 0}}, 422,
        id="202: dry_run 0 passed as false, a real replay; the schema says boolean",
    ),
    pytest.param(
        "POST /admin/retention/run", {"body": {"dry_run": "no"}}, 422,
        id="200: dry_run 'no' passed as false; the schema says boolean",
    ),
    pytest.param(
        "POST /admin/retention/run", {"body": b"`\xffs", "media_type": "application/json"}, 422,
        id="undocumented 400 with a detail body for a body that is not UTF-8",
    ),
    pytest.param(
        "POST /admin/replays", {"body": {"provider": "none-such"}}, 202,
        id="undocumented 202, the answer to every bulk replay but a dry run",
    ),
    pytest.param("GET /metrics", {}, 200, id="text/plain documented as application/json"),
    pytest.param(
        "POST /admin/rules/test", {"body": {"since": "1000000000D"}}, 422,
        id="500: OverflowError on a span of time too long for a timedelta",
    ),
    pytest.param(
        "POST /admin/rules/test", {"body": {"since": "5000000d"}}, 422,
        id="500: OverflowError going a span back from now, before year 1",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("label", "data", "status"), REGRESSIONS)
def test_what_schemathesis_found_stays_fixed(
    seeded: Seeded, label: str, data: dict[str, Any], status: int
) -> None:
    method, path = label.split(" ", 1)
    case = schema[path][method].Case(headers=dict(AUTH), **data)
    assert case.call_and_validate().status_code == status


def test_a_405_names_every_method_of_the_path(seeded: Seeded) -> None:
    # `Allow` named only the first route's method: GET, though POST /admin/tokens exists.
    response = schema["/admin/tokens"]["GET"].Case(method="OPTIONS", headers=dict(AUTH)).call()
    assert response.status_code == 405
    assert response.headers["allow"] == ["GET, POST"]
    assert response.json()["error"] == "method_not_allowed"


def test_the_schema_says_which_token_names_are_taken() -> None:
    # `{"name": ", "}` fitted the schema and was refused with 422: the rule is documented now.
    name = schema.raw_schema["components"]["schemas"]["TokenRequest"]["properties"]["name"]
    assert name["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
