"""Browser tests of the web client: real Chromium through Playwright (pytest-playwright).

Each test gets a live Kith server of its own (uvicorn in a thread, its own event loop, a
SQLite copy of the migrated template, the worker's real SMTP server), and drives it from one
or more browser contexts, one per person. Playwright cannot download its browser here: the
system's Chromium is used (`KITH_CHROMIUM`, else `chromium` on PATH; `.ci/run` installs it).
axe-core comes from npm, installed by `make` into `.web-tools/` (`KITH_AXE_JS` overrides).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserType, Page, Playwright, expect, sync_playwright

from kith.core.config import Settings
from kith.main import create_app
from tests.conftest import IN_CI, Mailbox
from tests.helpers import API, PASSWORD
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
# Assertions wait up to this long for the page to get there (Playwright's default is 5 s): the
# suite shares two cores with servers and fault tests, and a live event may queue behind them.
expect.set_options(timeout=15_000)
AXE_JS = Path(os.environ.get("KITH_AXE_JS", ROOT / ".web-tools/node_modules/axe-core/axe.min.js"))


def chromium_executable() -> str | None:
    """The Chromium to drive: `KITH_CHROMIUM`, else the system's (Debian's `chromium`)."""
    configured = os.environ.get("KITH_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


# pytest-playwright starts Playwright once per session. Its sync API keeps an event loop
# marked as running in the main thread for as long as it is started, and every async test
# that an xdist worker runs after a browser test would then fail ("cannot be called from a
# running event loop"). So Playwright and the browser live for one module here: pytest ends
# them before the worker moves on to a test of another module.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    started = sync_playwright().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    chosen: BrowserType = getattr(playwright, browser_name)
    return chosen


@pytest.fixture(scope="module")
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="module")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture(scope="session", autouse=True)
def _template_before_the_browser(sqlite_template: Path) -> Path:
    """The migrated SQLite template, made before Playwright starts: Playwright's sync API keeps
    an event loop running in this thread, where the migrations' `asyncio.run` cannot run."""
    return sqlite_template


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    executable = chromium_executable()
    if executable is None:
        message = "no Chromium: install Debian's `chromium` (.ci/run does) or set KITH_CHROMIUM"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # Two browsers (one per xdist worker) on a small machine: no GPU process, no sandbox
    # helpers that need privileges the CI container may lack.
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": ["--no-sandbox", "--disable-gpu"],
    }


class LiveServer:
    """Kith served by uvicorn in a thread of its own, stoppable and restartable on its port."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(self.settings.model_copy(deep=True))
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, ws="websockets-sansio", lifespan="on"
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
        self._server = self._thread = None

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)


def live_settings(tmp_path: Path, template: Path, smtp_port: int, port: int, **overrides: Any) -> Settings:
    database = tmp_path / "kith.db"
    shutil.copy(template, database)
    values: dict[str, Any] = {
        "env": "test",
        "var_dir": tmp_path / "var",
        "database_url": f"sqlite+aiosqlite:///{database}",
        "public_url": f"http://127.0.0.1:{port}",
        "email_backend": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "rate_limits_enabled": False,
        "log_level": "WARNING",
        "_env_file": None,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def live_server_factory(
    tmp_path: Path, sqlite_template: Path, smtp_server: tuple[Mailbox, int]
) -> Iterator[Any]:
    started: list[LiveServer] = []

    def make(**overrides: Any) -> LiveServer:
        port = free_port()
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        server = LiveServer(
            live_settings(directory, sqlite_template, smtp_server[1], port, **overrides), port
        )
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def live_server(live_server_factory: Any) -> LiveServer:
    server: LiveServer = live_server_factory()
    return server


@dataclass
class Person:
    username: str
    email: str
    password: str = PASSWORD


def register_by_api(server: LiveServer, username: str) -> Person:
    """An account made through the API (for the people a test does not sign up on screen)."""
    person = Person(username, f"{username}@example.com")
    with server.api() as http:
        response = http.post(
            f"{API}/auth/register",
            json={"username": username, "email": person.email, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
    return person


def api_login(server: LiveServer, person: Person) -> dict[str, str]:
    with server.api() as http:
        response = http.post(
            f"{API}/auth/login", json={"username": person.username, "password": person.password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def axe_source() -> str:
    if not AXE_JS.exists():
        message = f"axe-core is not installed at {AXE_JS}: `make test` installs it (npm)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page: Page, source: str) -> list[dict[str, Any]]:
    """The page's serious and critical axe-core violations (an empty list when it passes)."""
    # Evaluated over the DevTools protocol, which the page's CSP does not govern (the page
    # itself can run no inline script).
    page.evaluate(source)
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({
                id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.html).slice(0, 3),
            }))"""
    )
    return violations
