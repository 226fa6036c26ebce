"""The credentials of crontask's proxy (``HTTP_PROXY=http://user:password@proxy:3128``) are
hidden in what an http run keeps, as the request's own secrets are (README, *The HTTP
action*): httpx sends them to the proxy as ``Proxy-Authorization: Basic <base64>`` with each
request, and a proxy's error page that quotes the request headers (a ``502`` for an origin it
cannot reach, a ``407`` refusing a ``CONNECT``) put them in the run's output or message, which
readers below ``admin`` and every notification's ``outputTail`` see. A real forward proxy
(answering what it is asked, quoting the request), real runs through the dispatcher."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import logging
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner.http import HttpRun
from reconciler.runner.http_secrets import Secrets, proxy_secrets
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions, serve_http

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
USER = "proxyUSER7"
# "?&<" and "/" are escaped by a URL, HTML and JSON; its Basic form holds "/", "+" and "=".
PASSWORD = "s3cret?&X~</"  # noqa: S105 (a test's)
WRITTEN = urllib.parse.quote(PASSWORD, safe="~")  # as the proxy URL writes it
CREDENTIAL = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
# What no form of the credentials may keep: the password and the base64 up to its first "/".
LEAKS = (USER, "s3cret", CREDENTIAL.partition("/")[0])
ASKED: list[str] = []  # the Proxy-Authorization values the proxy was sent


class EchoingProxy(BaseHTTPRequestHandler):
    """A forward proxy that reaches no origin: a plain request gets a 502 whose body quotes
    the request's headers in the ways error pages write them (as sent, as JSON, JSON with
    ``\\/``, HTML, in a link's query, the Basic credential decoded, as it is and as HTML and
    JSON write it); a ``CONNECT`` a 407 whose reason phrase quotes the credential and the
    user."""

    def do_GET(self) -> None:
        said = self.headers.get("Proxy-Authorization", "")
        ASKED.append(said)
        headers = json.dumps(dict(self.headers))
        decoded = base64.b64decode(said.partition(" ")[2]).decode()
        body = "\n".join(
            (
                f"cannot reach {self.path}",
                str(self.headers),
                headers,
                headers.replace("/", "\\/"),
                html.escape(str(self.headers)),
                f'<a href="/retry?auth={urllib.parse.quote(said, safe="")}">retry</a>',
                f"user {decoded.partition(':')[0]} with password {decoded.partition(':')[2]}",
                f"credentials: {decoded}",
                f"<p>credentials: {html.escape(decoded)}</p>",
                f"credentials: {json.dumps(decoded)}",
            )
        ).encode()
        self.send_response(502, f"Bad Gateway for {decoded.partition(':')[0]}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        said = self.headers.get("Proxy-Authorization", "")
        ASKED.append(said)
        self.send_response(407, f"Proxy Authentication Required ({USER}): {said} refused")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


# What a status endpoint says: words and numbers a proxy's credentials may be too.
# A Slack-style webhook path: hidden whole, as the URL's path always is.
HOOK_PATH = "/services/T0AbCdEf/B0GhIjKl/XyZ123abc456def789ghi"
ORDINARY = json.dumps(
    {"role": "admin", "version": "latest", "count": 1000, "id": 123456, "ts": 1701234567}
)


class AnsweringProxy(BaseHTTPRequestHandler):
    """A forward proxy whose origin answers ``ORDINARY``."""

    def do_GET(self) -> None:
        ASKED.append(self.headers.get("Proxy-Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ORDINARY)))
        self.end_headers()
        self.wfile.write(ORDINARY.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def proxied(
    monkeypatch: pytest.MonkeyPatch, handler: type[BaseHTTPRequestHandler], userinfo: str
) -> Iterator[None]:
    """``HTTP_PROXY`` and ``HTTPS_PROXY``: a proxy served by ``handler``, with ``userinfo``."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    ASKED.clear()
    with serve_http(handler) as url:
        with_credentials = url.replace("://", f"://{userinfo}@")
        monkeypatch.setenv("HTTP_PROXY", with_credentials)
        monkeypatch.setenv("HTTPS_PROXY", with_credentials)
        yield


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``HTTP_PROXY`` and ``HTTPS_PROXY``: the echoing proxy, with the credentials."""
    with proxied(monkeypatch, EchoingProxy, f"{USER}:{WRITTEN}"):
        yield
    # What makes the test worth its name: the proxy was sent the credentials.
    assert ASKED, "the proxy was not asked"
    assert set(ASKED) == {f"Basic {CREDENTIAL}"}


def leaked(text: str | None) -> list[str]:
    return [s for s in LEAKS if s in (text or "")]


def run_through_dispatcher(url: str) -> RunRecord:
    """One real run of a task GETting ``url`` (the runner built as ``crontask run`` builds it,
    after the environment names the proxy): its record, as the store keeps it."""
    store = MemoryRunStore()
    d = Dispatcher(store, owner="h:1:a", clock=lambda: SLOT, actions=local_actions())
    task = definition("viaproxy", http={"url": url, "timeoutSeconds": 10}, command=None)

    async def scenario() -> None:
        d.fire(task, SLOT)
        assert await d.drain(20)

    asyncio.run(scenario())
    record = store.get(run_id("default/viaproxy", SLOT))
    assert record is not None
    return record


@pytest.mark.usefixtures("proxy")
def test_a_proxy_page_quoting_the_request_is_kept_without_the_proxy_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    record = run_through_dispatcher("http://origin.invalid/status")
    assert (record.status, record.exit_code) == (RunStatus.FAILED, 502)
    assert record.output is not None
    assert leaked(record.output) == [], record.output
    assert leaked(record.message) == [], record.message
    # crontask's own lines (httpx's and httpcore's, which quote every request, are silenced
    # by crontask's logging set-up).
    ours = [str(r.__dict__) for r in caplog.records if r.name.startswith("crontask")]
    assert ours
    assert leaked("\n".join(ours)) == []
    # What is no secret stays: the page, the header's name and its scheme.
    assert "cannot reach http://origin.invalid***" in record.output, record.output
    assert "Proxy-Authorization: ***" in record.output, record.output
    assert '"Proxy-Authorization": "***"' in record.output, record.output
    assert "user *** with password ***" in record.output, record.output
    assert "<p>credentials: ***</p>" in record.output, record.output
    assert record.message == "HTTP 502 Bad Gateway for *** (expected 200-299)"


@pytest.mark.usefixtures("proxy")
def test_a_proxy_refusing_a_connect_is_said_without_the_proxy_credentials() -> None:
    """An https request goes through a ``CONNECT``: a refusal fails it with the proxy's reason
    phrase in the message (httpx's ProxyError)."""
    action = HttpAction.model_validate({"url": "https://origin.invalid/", "timeoutSeconds": 10})
    outcome = asyncio.run(asyncio.wait_for(HttpRun(action, env={}).run(), 30))
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert leaked(outcome.message) == [], outcome.message
    assert "407 Proxy Authentication Required (***): *** refused" in str(outcome.message)


def test_what_is_hidden_of_a_proxy_url() -> None:
    """The userinfo and the password as the URL writes them too, escapes in either case; the
    user name only as a whole word; a proxy without credentials adds nothing."""
    url = f"http://{USER}:{WRITTEN}@proxy.example:3128"
    secrets = Secrets(*proxy_secrets([url, "http://proxy.example:8080"]))
    assert secrets.hide(url) == "http://***@proxy.example:3128"
    assert secrets.hide(f"{USER} and {WRITTEN}") == "*** and ***"
    lower = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), WRITTEN)
    assert (lower, secrets.hide(lower)) == ("s3cret%3f%26X~%3c%2f", "***")
    assert secrets.hide(f"{USER}s {USER}") == f"{USER}s ***"
    assert proxy_secrets(["http://proxy.example:8080", "socks5://proxy.example"]) == (set(), set())


def test_an_ordinary_answer_through_a_proxy_is_kept_as_it_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy's user name and password that are ordinary words of an answer (``admin``,
    ``123456``) are not hidden alone: the answer is kept as it came, still JSON."""
    with proxied(monkeypatch, AnsweringProxy, "admin:123456"):
        record = run_through_dispatcher("http://origin.invalid/status")
    assert set(ASKED) == {f"Basic {base64.b64encode(b'admin:123456').decode()}"}
    assert record.status == RunStatus.SUCCEEDED
    assert record.output == ORDINARY


def test_the_proxy_credential_without_its_padding_is_hidden() -> None:
    assert CREDENTIAL.endswith("=")
    unpadded = CREDENTIAL.rstrip("=")
    secrets = Secrets(*proxy_secrets([f"http://{USER}:{WRITTEN}@proxy.example:3128"]))
    assert secrets.hide(f"auth [{unpadded}] and [{CREDENTIAL}]") == "auth [***] and [***]"


@pytest.mark.usefixtures("proxy")
def test_many_long_valuefrom_values_do_not_crowd_out_the_proxy_credentials() -> None:
    """Twenty long ``Basic`` values of a task's own make more forms to hide than are kept
    (``MAX_FORMS``), all longer than the proxy's and the URL's: those, few, are kept first
    (ranking only the proxy's first pushed a webhook's path out instead)."""
    names = [f"X-Key-{i}" for i in range(20)]
    # "/<&" in the password: each value has 13 forms (JSON, HTML, percent-encoding differ).
    passwords = [f"{'Qz7/<&' * 12}{i:02}" for i in range(20)]
    env = {
        f"KEY_{i}": "Basic " + base64.b64encode(f"user{i:02}:{password}".encode()).decode()
        for i, password in enumerate(passwords)
    }
    action = HttpAction.model_validate(
        {
            "url": f"http://origin.invalid{HOOK_PATH}",
            "timeoutSeconds": 10,
            "headers": [
                {"name": name, "valueFrom": {"env": f"KEY_{i}"}} for i, name in enumerate(names)
            ],
        }
    )
    outcome = asyncio.run(asyncio.wait_for(HttpRun(action, env=env).run(), 30))
    assert "X-Key-19: ***" in outcome.output, outcome.output  # the task's are hidden too
    assert "T0AbCdEf" not in outcome.output + outcome.message, outcome.output  # and its path
    assert leaked(outcome.output) == [], outcome.output
    assert leaked(outcome.message) == [], outcome.message


def test_a_socks_proxy_adds_nothing_to_hide() -> None:
    """A SOCKS proxy is given its credentials in its handshake, not in an HTTP request."""
    socks = [f"socks5://{USER}:{WRITTEN}@proxy.example:1080", "socks5h://u9:pa55word@p:1080"]
    assert proxy_secrets(socks) == (set(), set())


def test_a_proxy_user_without_a_password_hides_no_ordinary_word() -> None:
    """``http://1000@proxy`` is sent as ``1000:``: that and ``:123456`` are no distinctive
    form, the base64 credential is."""
    for url, userinfo in (("http://1000@p:3128", "1000:"), ("http://:123456@p:3128", ":123456")):
        secrets = Secrets(*proxy_secrets([url]))
        credential = base64.b64encode(userinfo.encode()).decode()
        text = f'{ORDINARY} {{"x": "{userinfo}1", "id":123456}} {credential}'
        assert secrets.hide(text) == text.replace(credential, "***")


def test_a_proxy_user_without_a_password_is_the_credential() -> None:
    """``http://abc123xyz@proxy`` (an API key as the user name): the key is hidden as a word,
    as a password is, though it does not look like a credential by itself."""
    secrets = Secrets(*proxy_secrets(["http://abc123xyz@p:3128"]))
    assert secrets.hide('{"X-Proxy-User": "abc123xyz", "role": "admin"}') == (
        '{"X-Proxy-User": "***", "role": "admin"}'
    )
