"""The console's signed session cookie, without a browser."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from hub.web.console.session import Sessions, session_key
from tests.conftest import make_settings

DIGEST = b"\x01" * 32


@pytest.fixture
def sessions() -> Sessions:
    return Sessions(b"k" * 32, 3600)


def test_a_cookie_reads_back_and_binds_to_its_token(sessions: Sessions):
    session = sessions.read(sessions.issue("env-token-1", DIGEST))
    assert session is not None and session.actor == "env-token-1"
    assert sessions.still_bound(session, DIGEST)
    assert not sessions.still_bound(session, b"\x02" * 32)
    assert sessions.csrf_ok(session, sessions.csrf(session))
    assert not sessions.csrf_ok(session, None) and not sessions.csrf_ok(session, "x")


@pytest.mark.parametrize("tamper", ["payload", "signature", "key", "garbage"])
def test_a_cookie_not_signed_with_this_key_is_refused(sessions: Sessions, tamper: str):
    cookie = sessions.issue("env-token-1", DIGEST)
    payload, signature = cookie.split(".")
    forged = {
        "payload": payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature,
        "signature": payload + "." + signature[::-1],
        "key": Sessions(b"other" * 8, 3600).issue("env-token-1", DIGEST),
        "garbage": "not a cookie",
    }[tamper]
    assert sessions.read(forged) is None


def test_an_expired_cookie_is_refused():
    sessions = Sessions(b"k" * 32, -1)
    assert sessions.read(sessions.issue("env-token-1", DIGEST)) is None


def test_the_cookie_never_holds_the_token_or_its_digest(sessions: Sessions):
    cookie = sessions.issue("grafana", DIGEST)
    assert DIGEST.hex() not in cookie and "AQEB" not in cookie.split(".")[0][40:]


def test_the_key_is_shared_by_processes_with_the_same_settings(tmp_path):
    url = f"sqlite:///{tmp_path}/hub.db"
    one, two = make_settings(url), make_settings(url)
    assert session_key(one) == session_key(two)
    rotated = make_settings(url, admin_tokens=[SecretStr("another")])
    assert session_key(rotated) != session_key(one)
    chosen = make_settings(url, console_secret=SecretStr("s3cret"))
    assert session_key(chosen) == session_key(
        make_settings(url, console_secret="s3cret", admin_tokens=[])
    )
    alone = make_settings(url, admin_tokens=[])
    assert session_key(alone) != session_key(alone)  # per process: random, with a warning


def test_guessing_tokens_at_the_sign_in_form_is_limited(tmp_path):
    from starlette.testclient import TestClient

    from hub.bootstrap import create_app
    from hub.runtime.migrate import upgrade

    url = f"sqlite:///{tmp_path}/hub.db"
    upgrade(url)
    with TestClient(create_app(make_settings(url, unverified_rate_limit="3/minute"))) as client:
        codes = [
            client.post("/console/signin", data={"token": f"guess-{n}"}).status_code
            for n in range(4)
        ]
    assert codes == [401, 401, 401, 429]
