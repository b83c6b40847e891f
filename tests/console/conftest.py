"""Browser tests of the console: one hub (uvicorn in a thread, embedded workers as threads,
the fake Slack server) and one Chromium per xdist worker; a fresh browser context per test.

Chromium is Debian's (/usr/bin/chromium, installed by `make install`); nothing is downloaded.
Without it the tests skip with that reason, except under CI=true, where they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import Engine

from hub.bootstrap import create_app
from hub.config import Settings
from hub.runtime.db import make_engine
from tests.conftest import ADMIN_TOKEN, ROOT, make_settings
from tests.fakes.slack import SlackServer
from tests.serving import uvicorn_thread

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / ".artifacts" / "console"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@dataclass
class Hub:
    url: str
    settings: Settings
    engine: Engine
    slack: SlackServer
    http: httpx.Client


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (make install adds it with apt)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Hub]:
    path = tmp_path_factory.mktemp("console") / "hub.db"
    shutil.copyfile(sqlite_template, path)
    with SlackServer() as slack:
        # A slow replay pace, so that a bulk replay's progress can be watched and cancelled.
        settings = make_settings(
            f"sqlite:///{path}",
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
            replay_per_second=20.0,
        )
        with uvicorn_thread(create_app(settings)) as port:
            url = f"http://127.0.0.1:{port}"
            engine = make_engine(settings.database_url)
            with httpx.Client(base_url=url, timeout=10) as http:
                yield Hub(url, settings, engine, slack, http)
            engine.dispose()


@pytest.fixture
def context(browser: Browser, hub: Hub) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=hub.url, viewport=LAPTOP)
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page that fails the test on any dialog (an XSS payload that ran would open one)."""
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert errors == [], f"the page raised: {errors}"


def sign_in(page: Page, token: str = ADMIN_TOKEN, to: str = "/console/") -> None:
    page.goto(to)
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{to}*")


def shoot(page: Page, name: str) -> None:
    """Screenshots of the current page at laptop and phone width, for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(LAPTOP)


def csrf(page: Page) -> str:
    return str(page.locator("form.who input[name=csrf]").input_value())


def post_form(page: Page, path: str, fields: dict[str, str]) -> Any:
    """A form POST from inside the page (same origin, the session's cookie), as a script
    on the page could send: the status (or "redirect") and the text of the answer."""
    return page.evaluate(
        """async ([path, fields]) => {
            const r = await fetch(path, {method: "POST", body: new URLSearchParams(fields),
                                         redirect: "manual"});
            if (r.type === "opaqueredirect") return ["redirect", ""];
            return [r.status, await r.text()];
        }""",
        [path, fields],
    )
