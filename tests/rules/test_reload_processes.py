"""A reload reaches every process: `hub serve` re-reads its rules file on SIGHUP, and its
worker process (a child of its own, as `make run` starts it) follows within seconds; a file
that does not load is refused and the old rules stay."""

from __future__ import annotations

import http.client
import json
import os
import signal
import uuid

from tests.conftest import ADMIN_TOKEN, make_settings
from tests.handlers import payloads as p
from tests.signing import stripe_request
from tests.test_services import wait_for

BEFORE = "defaults: {slack_channel: '#ops'}\nrules: []\n"
AFTER = """defaults: {slack_channel: '#ops'}
rules:
  - name: subs
    match: {provider: stripe, type: customer.subscription.deleted}
    incident:
      key: "stripe:sub:{{ payload.data.object.customer }}"
      title: "Subscription cancelled for {{ payload.data.object.customer }}"
      slack_channel: "#billing"
"""


def request(port: int, method: str, path: str, body: bytes = b"", headers=None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        conn.close()


def cancelled(port: int) -> str:
    obj = {"id": "sub_1", "object": "subscription", "customer": "cus_42"}
    event = p.stripe_event("customer.subscription.deleted", obj,
                           event_id=f"evt_{uuid.uuid4().hex[:24]}")  # fmt: skip
    body, headers = stripe_request(event)
    status, answer = request(port, "POST", "/webhooks/stripe", body, headers)
    assert status == 200, answer
    return str(answer["event_id"])


def test_sighup_reloads_hub_serve_and_its_worker_process(sqlite_url, serve, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(BEFORE)
    settings = make_settings(sqlite_url, rules_file=str(rules), rules_poll_s=0.5,
                             routes_refresh_s=0.5, embedded_workers="process")  # fmt: skip
    hub = serve(settings)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    _, before = request(hub.port, "GET", "/admin/rules", headers=auth)
    assert before["rules"] == []

    rules.write_text(AFTER)
    # To the whole process group, as a closed terminal sends it: the API reloads, its
    # worker process ignores the signal and follows the reload the API records.
    os.killpg(hub.proc.pid, signal.SIGHUP)
    wait_for(lambda: request(hub.port, "GET", "/admin/rules", headers=auth)[1]["hash"]
             != before["hash"], 10, "the API to use the new file")  # fmt: skip

    def raised() -> bool:
        cancelled(hub.port)
        return "[slack #billing] " in hub.output()

    # The worker process follows the reload and the API stops storing the kind `ignored`.
    wait_for(raised, 20, "the worker process to raise by the new rule")

    rules.write_text("rules: [oops\n")
    os.kill(hub.proc.pid, signal.SIGHUP)
    wait_for(lambda: "rules reload refused" in hub.output(), 10, "the refusal in the log")
    _, after = request(hub.port, "GET", "/admin/rules", headers=auth)
    assert [r["name"] for r in after["rules"]] == ["subs"]
    assert hub.proc.poll() is None
    assert "exited with" not in hub.output()  # the worker process was never restarted


def test_hub_serve_refuses_to_start_on_a_bad_rules_file(sqlite_url, tmp_path):
    import subprocess
    import sys

    from tests.conftest import settings_env

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: x\n    match: {where: 'payload.a =='}\n    suppress: {}\n")
    settings = make_settings(sqlite_url, rules_file=str(rules))
    done = subprocess.run([sys.executable, "-m", "hub.cli", "serve", "--port", "0"],
                          env=settings_env(settings), cwd=tmp_path, capture_output=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode().startswith(f"hub: {rules}:3: rule x: match: where: Syntax error")
