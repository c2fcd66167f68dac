"""The worker's web token (issue 14): /alerts and /status need it, /metrics and /healthz never.

The worker's own web server is started on an ephemeral loopback port (no broker:
``_serve_web`` needs none) and asked over HTTP, with and without the token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from detectors.errors import ConfigError
from detectors.events import STREAMS
from streams.settings import Settings
from streams.topics import Layout
from streams.web import authorised
from streams.worker import Worker

TOKEN = "kz-7f3a9c2e1b54d8f0a6c4e2b1"
GUARDED = ("/alerts", "/status")
OPEN = ("/metrics", "/healthz")

Get = Callable[..., Awaitable[tuple[int, dict[str, str], bytes]]]


#: The worker refuses to start without a state key; this one is for tests only.
STATE_KEY = bytes(range(32))


def _worker(token: str | None) -> Worker:
    settings = Settings(web_host="127.0.0.1", web_port=0, web_token=token, state_key=STATE_KEY)
    return Worker(settings, Layout(inputs=dict.fromkeys(STREAMS, 1), state=1))


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[str | None], Awaitable[Get]]]:
    """Start a worker's web server with a token (or none); return a GET for it."""
    runners = []

    async def start(token: str | None) -> Get:
        runner = await _worker(token)._serve_web()
        runners.append(runner)
        host, port = runner.addresses[0][:2]

        async def get(path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://{host}:{port}{path}", headers=headers) as response,
            ):
                return response.status, dict(response.headers), await response.read()

        return get

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("path", GUARDED)
async def test_guarded_pages_refuse_a_request_without_the_token(serve, path):
    get = await serve(TOKEN)
    status, headers, body = await get(path)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN.encode() not in body


@pytest.mark.parametrize("path", GUARDED)
@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN[:-1]}",  # one character short
        f"Bearer {TOKEN}x",  # one too many
        f"Bearer {TOKEN.upper()}",  # tokens are case-sensitive
        f"Basic {TOKEN}",  # another scheme
        TOKEN,  # no scheme
        "Bearer ",
        "Bearer kz-ключ",  # not ASCII: compared, never a crash
    ],
)
async def test_guarded_pages_refuse_a_wrong_token(serve, path, header):
    get = await serve(TOKEN)
    status, _, _ = await get(path, Authorization=header)
    assert status == 401


@pytest.mark.parametrize("path", GUARDED)
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_guarded_pages_answer_with_the_token(serve, path, scheme):
    get = await serve(TOKEN)
    status, headers, _ = await get(path, Authorization=f"{scheme} {TOKEN}")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")


async def test_a_bad_query_with_the_token_is_still_a_bad_query(serve):
    get = await serve(TOKEN)
    status, _, _ = await get("/alerts?limit=0", Authorization=f"Bearer {TOKEN}")
    assert status == 400


async def test_a_bad_query_without_the_token_learns_nothing(serve):
    get = await serve(TOKEN)
    status, _, _ = await get("/alerts?limit=0")
    assert status == 401


@pytest.mark.parametrize("path", OPEN)
async def test_metrics_and_healthz_stay_open_with_a_token_set(serve, path):
    get = await serve(TOKEN)
    status, _, _ = await get(path)
    assert status == 200


@pytest.mark.parametrize("path", GUARDED + OPEN)
async def test_without_a_token_every_page_is_open(serve, path):
    get = await serve(None)
    status, _, _ = await get(path)
    assert status == 200


async def test_startup_log_says_the_token_is_required_never_what_it_is(serve, caplog):
    caplog.set_level(logging.INFO, logger="streams.worker")
    await serve(TOKEN)
    messages = [r.getMessage() for r in caplog.records if r.name == "streams.worker"]
    assert any("require the token" in m for m in messages), messages
    assert not any(TOKEN in m for m in messages)


async def test_startup_log_says_the_pages_are_open_without_a_token(serve, caplog):
    caplog.set_level(logging.INFO, logger="streams.worker")
    await serve(None)
    records = [r for r in caplog.records if r.name == "streams.worker"]
    assert any("open" in r.getMessage() and r.levelno == logging.INFO for r in records)


async def test_open_pages_off_loopback_are_a_warning(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="streams.worker")
    worker = _worker(None)
    settings = Settings(web_host="0.0.0.0", web_port=0, state_key=STATE_KEY)
    monkeypatch.setattr(worker, "settings", settings)
    # The test binds loopback all the same: only the log is under test.
    loopback_site = web.TCPSite
    monkeypatch.setattr(
        web, "TCPSite", lambda runner, host, port: loopback_site(runner, "127.0.0.1", 0)
    )
    runner = await worker._serve_web()
    try:
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("KUZET_WEB_TOKEN" in r.getMessage() for r in warnings)
    finally:
        await runner.cleanup()


# -- the token's settings ---------------------------------------------------------------


def test_no_token_by_default_and_the_web_host_is_loopback():
    settings = Settings.from_env({})
    assert settings.web_token is None
    assert settings.web_host == "127.0.0.1"


def test_the_token_is_read_from_the_environment_and_never_shown():
    settings = Settings.from_env({"KUZET_WEB_TOKEN": TOKEN})
    assert settings.web_token == TOKEN
    assert TOKEN not in repr(settings)


def test_an_empty_token_variable_leaves_the_pages_open():
    assert Settings.from_env({"KUZET_WEB_TOKEN": ""}).web_token is None


def test_the_token_is_read_from_a_file_without_its_newline(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert Settings.from_env({"KUZET_WEB_TOKEN_FILE": str(path)}).web_token == TOKEN


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KUZET_WEB_TOKEN": TOKEN, "KUZET_WEB_TOKEN_FILE": "/x"}, "not both"),
        ({"KUZET_WEB_TOKEN_FILE": "/nonexistent/kuzet-token"}, "cannot be read"),
        ({"KUZET_WEB_TOKEN": "two words"}, "printable ASCII"),
        ({"KUZET_WEB_TOKEN": "ключ"}, "printable ASCII"),
    ],
)
def test_bad_token_settings_are_refused_without_echoing_the_token(env, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        Settings.from_env(env)
    assert env.get("KUZET_WEB_TOKEN", "\0") not in str(info.value)


def test_an_empty_token_file_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        Settings.from_env({"KUZET_WEB_TOKEN_FILE": str(path)})


# -- the comparison itself --------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer {TOKEN}", True),
        (f"  Bearer   {TOKEN}  ", True),
        (f"Bearer {TOKEN[:8]}", False),
        (f"Bearer {TOKEN} {TOKEN}", False),
        ("Bearer \udcff", False),  # a surrogate from a header aiohttp could not decode
        ("", False),
        (None, False),
    ],
)
def test_authorised(header, expected):
    assert authorised(header, TOKEN) is expected
