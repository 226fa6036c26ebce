"""The status page in a real browser (Debian's chromium, headless, driven by Playwright) against
the real ``crontask run``: real runs in the list, filters, Run now, a viewer who cannot, the
refresh said only where the script runs, no request beyond 127.0.0.1, and a screenshot of each
page under the test's temporary folder.

Skipped, saying why, where chromium or Playwright is missing; CI installs both (.ci/run).
Playwright's own browser downloads are never used (no ``playwright install``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import STATIC_TOKENS
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for
from tests.web.chromium import (
    CHROMIUM,
    FLAGS,
    PAST_A_REFRESH,
    playwright_api,
    require_chromium,
)

# Slow: chromium and two crontasks start for the module (15 s before the first test).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHOTS_WIDTH, SHOTS_HEIGHT = 1280, 720


class Browser:
    """One headless chromium with a fresh profile, every request it makes recorded."""

    def __init__(self, pw: Any, profile: Path, shots: Path) -> None:
        self.shots = shots
        self.requests: list[str] = []
        self.context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": SHOTS_WIDTH, "height": SHOTS_HEIGHT},
        )
        self.context.route("**/*", self._guard)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()

    def _guard(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "about:")):
            route.continue_()
        else:
            route.abort()  # and the test below fails on it

    def shot(self, name: str) -> Path:
        """A screenshot of the page, for a person to look at (the path is printed)."""
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5_000  # a page, not a blank
        print(f"screenshot: {path}")
        return path

    def elsewhere(self) -> list[str]:
        return [
            u
            for u in self.requests
            if urlsplit(u).hostname != "127.0.0.1" and not u.startswith(("data:", "about:"))
        ]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    require_chromium()
    with playwright_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # pytest's temporary folders outlive the run (the last three are kept): the screenshots
    # are there to be looked at.
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def shots(folder: Path) -> Path:
    path = folder / "screenshots"
    path.mkdir()
    return path


def _start(folder: Path, name: str, extra: list[str]) -> Crontask:
    home = folder / name
    tasks = home / "tasks"
    tasks.mkdir(parents=True)
    ops = "metadata: {name: bad, namespace: ops}"
    (tasks / "ok.yaml").write_text(task("ok", ["sh", "-c", "echo all good"]))
    (tasks / "bad.yaml").write_text(
        task("bad", ["sh", "-c", "echo disk full >&2; exit 3"], failedRunsHistoryLimit=20).replace(
            "metadata: {name: bad}", ops
        )
    )
    (tasks / "nightly.yaml").write_text(
        task(
            "nightly",
            ["sh", "-c", "echo backed up"],
            schedule="0 2 * * *",
            timeZone="Europe/Berlin",
        ).replace("metadata: {name: nightly}", "metadata: {name: nightly, namespace: ops}")
    )
    return Crontask(home, tasks, extra).start()


@pytest.fixture(scope="module")
def open_app(folder: Path) -> Iterator[Crontask]:
    app = _start(folder, "open", [])
    yield app
    app.stop()


@pytest.fixture(scope="module")
def guarded_app(folder: Path) -> Iterator[Crontask]:
    auth = folder / "auth.yaml"
    tokens = "".join(
        f"  - {{name: {role.value}-bot, sha256: {hashlib.sha256(t.encode()).hexdigest()}, "
        f"role: {role.value}}}\n"
        for role, t in STATIC_TOKENS.items()
    )
    auth.write_text(f"tokens:\n{tokens}")
    app = _start(folder, "guarded", ["--auth-config", str(auth)])
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser(playwright: Any, folder: Path, shots: Path) -> Iterator[Browser]:
    profile = folder / "profile"  # a fresh --user-data-dir
    chromium = Browser(playwright, profile, shots)
    yield chromium
    chromium.context.close()
    assert chromium.elsewhere() == [], "the page made requests beyond 127.0.0.1"


@pytest.fixture(scope="module")
def launched(playwright: Any) -> Iterator[Any]:
    """A chromium without a profile, for what the persistent one cannot be: a context without
    JavaScript, a tab on Playwright's fake clock (tests/web/chromium.py's ``page``, which this
    module cannot use: it opens Playwright a second time)."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
    yield chromium
    chromium.close()


def rows(browser: Browser) -> list[str]:
    keys: list[str] = browser.page.eval_on_selector_all(
        "tr[data-task]", "rows => rows.map(r => r.dataset.task)"
    )
    return keys


def test_the_list_shows_real_runs_and_filters_narrow_it(
    browser: Browser, open_app: Crontask
) -> None:
    page = browser.page
    page.goto(open_app.server + "/")
    # Refreshed in place: the strips fill as runs happen, without reloading the page.
    page.wait_for_selector('tr[data-task="default/ok"] .cell.succeeded >> nth=2', timeout=20_000)
    page.wait_for_selector('tr[data-task="ops/bad"] .badge.failing', timeout=20_000)
    assert rows(browser) == ["default/ok", "ops/bad", "ops/nightly"]
    assert "at 02:00 every day" in page.inner_text('tr[data-task="ops/nightly"]')
    browser.shot("tasks")

    page.select_option('select[name="state"]', "failing")
    wait_for("only the failing task", lambda: rows(browser) == ["ops/bad"])
    assert "state=failing" in page.url  # the filtered list has its own address
    page.select_option('select[name="state"]', "")
    page.fill('input[name="q"]', "nigh")
    wait_for("only the text's match", lambda: rows(browser) == ["ops/nightly"])
    page.fill('input[name="q"]', "")
    page.fill('input[name="namespace"]', "ops")
    wait_for("the namespace's tasks", lambda: rows(browser) == ["ops/bad", "ops/nightly"])


def pager(page: Any) -> str:
    """What the list's footer says, as a person reads it."""
    return " ".join(page.inner_text(".pager").split())


def test_the_list_says_it_refreshes_only_where_the_script_runs(
    launched: Any, open_app: Crontask
) -> None:
    """The HTML holds "refreshed every 5 s" hidden, and crontask.js shows it: on load, and in
    each list a refresh or a filter puts in place. Without JavaScript the page never refreshes,
    and says to reload instead (tests/web/test_web_refresh_said_with_script.py reads the HTML;
    this runs the script)."""
    context = launched.new_context()
    try:
        page = context.new_page()
        page.clock.install()  # before the page loads: its timers are the fake clock's
        page.set_default_timeout(10_000)
        page.goto(open_app.server + "/")
        assert pager(page) == "3 tasks shown · refreshed every 5 s"
        page.clock.run_for(PAST_A_REFRESH)
        page.wait_for_selector('html[data-refreshes="1"]', state="attached")
        assert pager(page) == "3 tasks shown · refreshed every 5 s"
        page.fill('input[name="q"]', "nigh")
        page.clock.run_for(1_000)  # past the pause after typing
        # Waited on by what the filter brings, not by the refresh count: the installed clock
        # also runs in real time, so under load a refresh of its own may come first.
        page.wait_for_url("**q=nigh**")
        page.wait_for_function(
            "() => document.querySelector('.pager')?.textContent.includes('1 task shown')"
        )
        assert pager(page) == "1 task shown · refreshed every 5 s"
    finally:
        context.close()

    context = launched.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(open_app.server + "/")
        assert pager(page) == "3 tasks shown · reload the page to update it"
    finally:
        context.close()


def test_a_task_its_runs_and_run_now(browser: Browser, open_app: Crontask) -> None:
    page = browser.page
    page.goto(open_app.server + "/tasks/ops/bad")
    page.wait_for_selector("svg.timeline rect.run.failed")
    page.wait_for_selector('tr[data-status="failed"]')
    browser.shot("task")
    page.click('tr[data-status="failed"] a')
    page.wait_for_selector("pre.output")
    assert "disk full" in page.inner_text("pre.output")
    assert "NonZeroExit" in page.inner_text("main") or "3" in page.inner_text("main")
    browser.shot("run")

    page.goto(open_app.server + "/tasks/ops/nightly")
    page.click("text=Run now")
    page.wait_for_url("**/runs/ops.nightly.*")
    page.wait_for_selector(".attempt .status.succeeded", timeout=20_000)  # it refreshes itself
    assert "manual" in page.inner_text(".attempt")
    manual = httpx.get(
        f"{open_app.server}/api/v1/runs", params={"task": "ops/nightly", "trigger": "manual"}
    ).json()["items"]
    assert len(manual) == 1

    page.goto(open_app.server + "/sources")
    page.wait_for_selector(".source-card")
    browser.shot("sources")


def test_a_viewer_signs_in_and_cannot_run_now(browser: Browser, guarded_app: Crontask) -> None:
    page = browser.page
    page.goto(guarded_app.server + "/tasks/ops/nightly")
    page.wait_for_url(lambda url: "/login?next=" in url)
    browser.shot("login")
    page.fill('input[name="token"]', STATIC_TOKENS[_role("viewer")])
    page.click("button.primary")
    page.wait_for_url("**/tasks/ops/nightly")
    assert page.locator("text=Run now").count() == 0
    assert "viewer-bot" in page.inner_text("header")
    # Posting it anyway, with the page's own CSRF token, is refused.
    status = page.evaluate(
        """async () => {
            const token = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/tasks/ops/nightly/run', {method: 'POST',
              headers: {'Content-Type': 'application/x-www-form-urlencoded'},
              body: 'csrf=' + token});
            return r.status;
        }"""
    )
    assert status == 403
    cookies = browser.context.cookies(guarded_app.server)
    session = next(c for c in cookies if c["name"].startswith("crontask_session_"))
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read it

    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.fill('input[name="token"]', STATIC_TOKENS[_role("operator")])
    page.click("button.primary")
    page.goto(guarded_app.server + "/tasks/ops/nightly")
    page.click("text=Run now")
    page.wait_for_url("**/runs/ops.nightly.*")
    runs = wait_for(
        "the operator's manual run",
        lambda: [r for r in guarded_app.runs("ops/nightly") if r.trigger.value == "manual"],
    )
    assert len(runs) == 1


def _role(name: str) -> Any:
    from reconciler.api.auth import Role

    return Role(name)
