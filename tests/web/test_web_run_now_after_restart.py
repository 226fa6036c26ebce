"""Run now on a task page left open across a restart of crontask, in a real browser (Debian's
chromium, headless, driven by Playwright) against the real ``crontask run``. Without
``--auth-config`` the form's token is derived from a secret of the process, and the form is
outside the refreshed region: the page went on refreshing as current, and its Run now was
refused 403 "the form is stale". A refresh now brings the token the server expects, and
crontask.js puts it in the forms outside the refreshed regions; the server checks it as before.
With ``--auth-config`` alike: a page left open when the browser signed in again (another
token) held the token of the session replaced.

The page's timers run on Playwright's fake clock (a refresh happens when the test moves the
clock past it). Skipped where chromium or Playwright is missing, as tests/web/test_browser.py
is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.api.auth import Role
from tests.api.conftest import STATIC_TOKENS, write_auth
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.web.chromium import chromium, page
from tests.web.test_web_refresh_focus import counter, tick_until

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name

META = 'meta[name="csrf-token"]'
FIELD = 'form.run-now input[name="csrf"]'


def started(folder: Any, *extra: str) -> Crontask:
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "manual.yaml").write_text(task("manual", ["true"], schedule="0 2 1 1 *"))
    return Crontask(folder, tasks, list(extra)).start()


@pytest.fixture
def app(tmp_path: Any) -> Iterator[Crontask]:
    crontask = started(tmp_path)
    yield crontask
    crontask.stop()


@pytest.fixture
def guarded(tmp_path: Any) -> Iterator[Crontask]:
    crontask = started(tmp_path, "--auth-config", str(write_auth(tmp_path)))
    yield crontask
    crontask.stop()


def run_now_starts_a_run(page: Any, app: Crontask) -> None:
    with page.expect_navigation() as navigation:
        page.click("form.run-now button")
    answer = navigation.value
    assert answer.status == 200, page.inner_text("main")  # was 403 "the form is stale"
    assert page.url.startswith(f"{app.server}/runs/default.manual."), page.url
    [run] = app.runs("default/manual")
    assert run.trigger.value == "manual"


def sign_in(page: Any, app: Crontask, role: Role) -> None:
    page.goto(f"{app.server}/login?next=/tasks/default/manual")
    page.fill('input[name="token"]', STATIC_TOKENS[role])
    with page.expect_navigation():
        page.click("form button.primary")
    assert page.url == f"{app.server}/tasks/default/manual"


@pytest.mark.slow  # crontask starts twice: 10 s
def test_run_now_after_a_restart_starts_the_run(page: Any, app: Crontask) -> None:
    page.goto(f"{app.server}/tasks/default/manual")
    # Served on loopback without --auth-config: the header says so, as before.
    assert page.inner_text("header .who") == "open (loopback)"
    before = page.get_attribute(FIELD, "value")
    assert before == page.get_attribute(META, "content")

    app.stop()
    app.start()  # the same port and state folder, a new secret
    tick_until(page, "refreshes", counter(page, "refreshes"))
    assert page.locator("#stale").count() == 0
    renewed = page.get_attribute(FIELD, "value")
    in_meta = page.get_attribute(META, "content")

    run_now_starts_a_run(page, app)
    assert renewed == in_meta != before  # the new process's token, in the form and the meta


@pytest.mark.slow  # crontask starts: 8 s
def test_run_now_after_signing_in_again_in_another_tab_starts_the_run(
    page: Any, guarded: Crontask
) -> None:
    sign_in(page, guarded, Role.OPERATOR)
    other = page.context.new_page()
    sign_in(other, guarded, Role.ADMIN)  # the browser's cookie now holds another credential
    other.close()
    tick_until(page, "refreshes", counter(page, "refreshes"))
    run_now_starts_a_run(page, guarded)
