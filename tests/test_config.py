"""The defaults DESIGN.md's configuration table promises, which clients and the README rely on."""

from __future__ import annotations

import pytest

from hub.config import Settings


def test_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_DATABASE_URL", "HUB_SLACK_API_URL", "HUB_GITHUB_API_URL",
                 "HUB_SLACK_INCIDENT_CHANNEL", "HUB_REDIS_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "sqlite:///./hub.db"
    assert settings.redis_url is None
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.github_api_url == "https://api.github.com"
    assert settings.slack_incident_channel == "#incidents"


def test_worker_niceness_defaults_by_where_the_workers_run():
    # The embedded worker process always shares the API's core: it yields the most.
    assert Settings(_env_file=None).nice(embedded_process=True) == 19  # type: ignore[call-arg]
    # Threads and `hub worker` processes may share cores with other busy work.
    assert Settings(_env_file=None).nice() == 10  # type: ignore[call-arg]
    chosen = Settings(_env_file=None, worker_nice=0)  # type: ignore[call-arg]
    assert (chosen.nice(), chosen.nice(embedded_process=True)) == (0, 0)
