"""Debian's chromium, headless, driven by Playwright, for the tests of what a person sees: its
flags, and the fixtures of a browser for a module and of a tab on Playwright's fake clock.
Importing this skips the importing module where Playwright is not installed; the ``chromium``
fixture skips where chromium is missing (``.ci/run`` installs both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without these chromium reaches for Google's hosts (updates, sync, field trials, DNS prefetch).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
PAST_A_REFRESH = 6_000  # ms: the pages refresh every 5 s

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: install Debian's chromium (.ci/run does)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require_chromium()
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A tab whose timers are Playwright's fake clock (installed before a page loads: its
    refresh timer is the fake clock's), so a test moves time past a refresh, never waits it."""
    context = chromium.new_context()
    tab = context.new_page()
    tab.clock.install()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()
