"""Which providers exist and how their endpoints are built: one line per provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from integrations import github, slack, stripe
from integrations.base import Endpoint

ENDPOINT_FACTORIES: dict[str, Callable[[Sequence[str], int], list[Endpoint]]] = {
    "stripe": stripe.endpoints,
    "github": github.endpoints,
    "slack": slack.endpoints,
}


def build_endpoints(
    secrets: Mapping[str, Sequence[str]], tolerance: int = 300
) -> dict[str, Endpoint]:
    """path -> endpoint, only for providers that have at least one secret (others are not mounted).

    Blank entries (as `a,,b` in a comma-separated setting yields) are dropped rather than used
    as keys: an empty HMAC key would accept requests signed by anyone.
    """
    mounted: dict[str, Endpoint] = {}
    for provider, factory in ENDPOINT_FACTORIES.items():
        usable = [s for s in secrets.get(provider, ()) if s.strip()]
        if not usable:
            continue
        for endpoint in factory(usable, tolerance):
            if endpoint.path in mounted:
                raise ValueError(f"two endpoints claim the path {endpoint.path!r}")
            mounted[endpoint.path] = endpoint
    return mounted
