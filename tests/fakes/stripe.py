"""A local Stripe API for tests: `StripeClient(key, base_addresses={"api": stripe.api_base})`.

What the stripe SDK sees, as Stripe answers it (read-only: the hub never writes to Stripe):

- `GET /v1/disputes/<id>`, `/v1/payouts/<id>`, `/v1/radar/early_fraud_warnings/<id>`,
  `/v1/payment_intents/<id>`, `/v1/invoices/<id>`: the object set with `put`, as JSON.
- `Authorization: Bearer <key>` missing or another key: 401 with
  `{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_...***"}}`
  (Stripe repeats part of the key in that message: the hub must not pass it on).
- An unknown id, or an object of a connected account asked for without its `Stripe-Account`
  (or thin-event `Stripe-Context`) header: 404, code `resource_missing`.
- Faults: `fail_next(n, status=500 | 429 | 401..., retry_after=...)` answers the next `n`
  requests with that status in Stripe's error shape (`{"error": {"type", "code", "message"}}`),
  a 429 with `Retry-After` when given (Stripe often sends none); `set_down("close" | "503")`.
- `slow_next(seconds)` answers the next request that late (a client's timeout).
- Every request is in `calls` (method, path, headers): tests assert what was fetched.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.fakes.http import Call, FakeServer, Reply

API_KEY = "sk_test_hub_fake_51Hsecretvalue"
_RESOURCES = {
    "/v1/disputes/": "dispute",
    "/v1/payouts/": "payout",
    "/v1/radar/early_fraud_warnings/": "radar.early_fraud_warning",
    "/v1/payment_intents/": "payment_intent",
    "/v1/invoices/": "invoice",
}
_ERRORS = {
    400: ("invalid_request_error", "parameter_invalid", "Invalid request."),
    401: ("invalid_request_error", None, "Invalid API Key provided: sk_test_****alue"),
    403: ("invalid_request_error", "secret_key_required", "This key cannot read this."),
    404: ("invalid_request_error", "resource_missing", "No such object."),
    409: ("invalid_request_error", "lock_timeout", "This object is locked; try again."),
    429: ("invalid_request_error", "rate_limit", "Too many requests hit the API too quickly."),
}


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: float | None
    delay_s: float = 0.0  # with status 200: answer normally, this late


def error_reply(status: int, headers: dict[str, str] | None = None) -> Reply:
    kind, code, message = _ERRORS.get(status, ("api_error", None, "An unknown error occurred."))
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    return Reply.json(status, {"error": error}, {"Request-Id": "req_fake", **(headers or {})})


class StripeServer(FakeServer):
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self._objects: dict[tuple[str, str], tuple[str | None, dict[str, Any]]] = {}
        self._faults: deque[_Fault] = deque()
        super().__init__()

    @property
    def api_base(self) -> str:
        return self.url

    def put(self, obj: dict[str, Any], *, account: str | None = None) -> None:
        """Stripe now has `obj` (its `object` tag and `id` say where it lives), in `account`
        when given (then only a request made for that account finds it)."""
        with self.lock:
            self._objects[(str(obj["object"]), str(obj["id"]))] = (account, copy.deepcopy(obj))

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: float | None = None) -> None:
        with self.lock:
            self._faults.extend([_Fault(status, retry_after)] * n)

    def slow_next(self, seconds: float, n: int = 1) -> None:
        """The next `n` requests are answered normally, `seconds` late (a client timeout)."""
        with self.lock:
            self._faults.extend([_Fault(200, None, seconds)] * n)

    def fetched(self) -> list[str]:
        """Paths of the object reads answered, in order (failed ones included)."""
        with self.lock:
            return [c.path for c in self.calls if c.method == "GET"]

    def handle(self, call: Call) -> Reply:
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.status == 200:
            reply = self._answer(call)
            reply.delay_s = fault.delay_s
            return reply
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return error_reply(fault.status, headers)
        return self._answer(call)

    def _answer(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            return error_reply(401)
        if call.method != "GET":
            return error_reply(400)
        found = self._find(call)
        return Reply.json(200, found, {"Request-Id": "req_fake"}) if found else error_reply(404)

    def _find(self, call: Call) -> dict[str, Any] | None:
        for prefix, tag in _RESOURCES.items():
            if call.path.startswith(prefix):
                entry = self._objects.get((tag, call.path.removeprefix(prefix)))
                if entry is None:
                    return None
                account, obj = entry
                asked = call.headers.get("stripe-account") or call.headers.get("stripe-context")
                return obj if account == asked else None
        return None
