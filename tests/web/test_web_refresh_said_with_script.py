"""Only crontask.js refreshes the page, so only it says so: the list's "refreshed every 5 s"
(and the store-down banner's "This page keeps trying") was in the HTML, and a browser without
the script told its person the page refreshed while it never did. The HTML as served keeps
those words in elements ``hidden`` (which the script shows) and says, in ``<noscript>``, to
reload; the script shows what is marked so. The page's policy allows no inline script: the
attribute that marks them is the one the served script selects."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.api.conftest import TestClient
from tests.web.test_web_store_down import SwitchedStore, client, store

__all__ = ["client", "store"]  # fixtures, used by name

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})
VOID_TOO = frozenset({"source", "track", "wbr"})
CLAIMS = ("refreshed every", "keeps trying")
# What the script shows: each element with the attribute it selects, unhidden.
SHOWS = re.compile(
    r'querySelectorAll\("\[([\w-]+)\]"\)\.forEach\(function \((\w+)\) \{\s*\2\.hidden = false;'
)


class _Text(HTMLParser):
    """The text of a page as a browser without the script shows it (``shown``: outside every
    ``hidden`` element, ``<noscript>`` included), and the attributes of each hidden element
    with the text it holds (``held``)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[str] = []
        self.held: list[tuple[dict[str, str | None], list[str]]] = []
        self._open: list[tuple[str, bool]] = []  # each open element, and whether it hides

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID or tag in VOID_TOO:
            return
        hides = any(name == "hidden" for name, _ in attrs)
        self._open.append((tag, hides))
        if hides:
            self.held.append((dict(attrs), []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:  # closes what an end tag left open, as a browser would
            if self._open.pop()[0] == tag:
                return

    def handle_data(self, data: str) -> None:
        if any(hides for _, hides in self._open):
            self.held[-1][1].append(data)
        else:
            self.shown.append(data)


def read(html: str) -> _Text:
    parsed = _Text()
    parsed.feed(html)
    parsed.close()
    return parsed


def assert_the_script_shows(client: TestClient, html: str, parsed: _Text) -> None:
    """Each hidden element of the page is marked with what the script it loads shows."""
    assert '<script src="/static/crontask.js' in html
    script = client.get("/static/crontask.js").text
    revealed = {selected for selected, _ in SHOWS.findall(script)}
    assert revealed, "the script unhides nothing"
    for attrs, text in parsed.held:
        assert revealed & set(attrs), (attrs, text)


def test_the_list_claims_no_refresh_without_the_script(page: TestClient) -> None:
    html = page.get("/").text
    parsed = read(html)
    shown = " ".join("".join(parsed.shown).split())
    assert "refreshed every" not in shown
    assert "reload the page to update it" in shown  # the <noscript> text
    held = [(attrs, " ".join("".join(text).split())) for attrs, text in parsed.held]
    assert [text for _, text in held if "refreshed every" in text] == ["· refreshed every 5 s"]
    assert_the_script_shows(page, html, parsed)


def test_the_store_down_banner_says_to_reload_without_the_script(
    client: TestClient, store: SwitchedStore
) -> None:
    store.down = True
    html = client.get("/").text
    assert 'class="banner store-down"' in html
    parsed = read(html)
    shown = " ".join("".join(parsed.shown).split())
    for claim in CLAIMS:
        assert claim not in shown
    assert "Reload the page to try again." in shown
    held = " ".join(" ".join("".join(text).split()) for _, text in parsed.held)
    assert "This page keeps trying." in held
    assert_the_script_shows(client, html, parsed)
