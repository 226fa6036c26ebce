"""DNS rebinding: on loopback, the real ``crontask run`` answers only its own loopback names.

A web page whose name was made to resolve to 127.0.0.1 reaches the API in a browser as a
same-origin page: its requests carry ``Host: <its name>``. Before this check, such a page read
the status page's form token, created a command task and ran it (as root, in the review that
found it). Requests go through ``http.client``, which sends the ``Host`` header as given.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api.hosts import host_name, is_loopback_name, names_answered
from reconciler.hostnames import ANY_NAME, allowed_host
from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

EXTERNAL = "crontask.example.com"


def task(name: str) -> dict[str, object]:
    """A command task of this name: each test that writes names its own, as they share one
    crontask (see ``open_app``)."""
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": "0 0 1 1 *", "command": {"args": ["id"]}},
    }


@pytest.mark.parametrize(
    ("header", "name", "loopback"),
    [
        ("127.0.0.1:8080", "127.0.0.1", True),
        ("127.3.4.5", "127.3.4.5", True),
        ("localhost:8080", "localhost", True),
        ("LocalHost.:8080", "localhost", True),
        ("[::1]:8080", "::1", True),
        ("[::1]", "::1", True),
        ("::1", "::1", True),
        ("attacker.example:8080", "attacker.example", False),
        ("localhost.attacker.example", "localhost.attacker.example", False),
        ("127.0.0.1.attacker.example:80", "127.0.0.1.attacker.example", False),
        ("[::ffff:192.0.2.1]:80", "::ffff:c000:201", False),  # its short form
        ("", "", False),
    ],
)
def test_host_names(header: str, name: str, loopback: bool) -> None:
    assert host_name(header) == name
    assert is_loopback_name(name) is loopback


def send(
    app: Crontask,
    method: str,
    path: str,
    host: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    try:
        headers = {"Host": host, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def start(tmp_path: Path, *extra: str) -> Crontask:
    tasks = tmp_path / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    return Crontask(tmp_path, tasks, list(extra)).start()


@pytest.fixture(scope="module")
def open_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    """One crontask for the module: what a request is answered depends on its host and
    headers, not on the tasks other tests created (each its own name), and a start took 5 to
    9 s on two busy cores, eleven times over with one per test."""
    app = start(
        tmp_path_factory.mktemp("hosts"), "--external-url", f"https://{EXTERNAL}:8443/crontask"
    )
    yield app
    app.stop()


def test_without_auth_a_request_for_another_host_is_misdirected(open_app: Crontask) -> None:
    rebound = f"attacker.example:{open_app.port}"
    said = len(open_app.log())  # the shared log: only what this test's requests made it say
    assert send(open_app, "GET", "/", rebound) == 421
    assert send(open_app, "GET", "/api/v1/tasks", rebound) == 421
    assert send(open_app, "POST", "/api/v1/tasks", rebound, task("rebound")) == 421
    assert send(open_app, "POST", "/api/v1/tasks/default/rebound/runs", rebound) == 421
    assert not (open_app.state / "api-tasks" / "default" / "rebound.yaml").exists()
    assert "path=/api/v1/tasks status=421" in open_app.log()[said:]  # refused, and logged


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.:{port}", "[::1]:{port}", EXTERNAL],
)
def test_without_auth_its_own_names_are_answered(open_app: Crontask, host: str) -> None:
    assert send(open_app, "GET", "/api/v1/tasks", host.format(port=open_app.port)) == 200


def test_the_loopback_names_can_still_create_and_run(open_app: Crontask) -> None:
    own = f"127.0.0.1:{open_app.port}"
    assert send(open_app, "POST", "/api/v1/tasks", own, task("created")) == 201
    assert send(open_app, "POST", "/api/v1/tasks/default/created/runs", own) == 202


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ],
)
def test_a_page_of_another_site_cannot_change_anything(
    open_app: Crontask, browser: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """Without auth every caller is the anonymous admin: a page elsewhere may send a POST
    without a body (no preflight) to the loopback address, and the browser says so."""
    own = f"127.0.0.1:{open_app.port}"
    name = f"crossed-{request.node.callspec.id}"
    assert send(open_app, "POST", "/api/v1/tasks", own, task(name)) == 201
    runs = f"/api/v1/tasks/default/{name}/runs"
    assert send(open_app, "POST", runs, own, headers=browser) == 403
    assert send(open_app, "DELETE", f"/api/v1/tasks/default/{name}", own, headers=browser) == 403
    # Reading is not changing, and this server's own pages are the same origin.
    assert send(open_app, "GET", "/api/v1/tasks", own, headers=browser) == 200
    same = {"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"}
    assert send(open_app, "POST", runs, own, headers=same) == 202


@pytest.mark.parametrize(
    ("listen", "answered"),
    [
        ("127.0.0.1", [EXTERNAL]),
        ("127.0.0.2", [EXTERNAL]),
        ("::1", [EXTERNAL]),
        ("localhost", [EXTERNAL]),
        ("0.0.0.0", None),
        ("::", None),
        ("192.0.2.1", None),
        ("crontask.example.com", None),  # a name is not resolved: not known to be loopback
    ],
)
def test_a_server_on_loopback_answers_its_names_whatever_the_auth(
    listen: str, answered: list[str] | None
) -> None:
    """The names ``crontask run`` passes as ``create_app(hosts=...)``; with auth, the routes
    open to all are what a rebinding page read (``test_hosts_with_auth.py``). Elsewhere the
    server is reached by names it cannot know, and auth keeps strangers out: any is answered."""
    assert (
        names_answered(listen, f"https://{EXTERNAL}:8443/crontask", authenticated=True) == answered
    )
    assert names_answered(listen, None, authenticated=True) == (None if answered is None else [])


def test_the_allowed_names_are_answered_beside_the_external_one() -> None:
    external = "https://bücher.example/crontask"  # sent as its ASCII form
    assert names_answered("127.0.0.1", external, ["10.1.2.3"], authenticated=True) == [
        "xn--bcher-kva.example",
        "10.1.2.3",
    ]
    assert names_answered("127.0.0.1", None, [ANY_NAME], authenticated=True) is None
    assert names_answered("0.0.0.0", None, ["a.example"], authenticated=True) is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Crontask.Example.COM.", "crontask.example.com"),
        ("[fd00::1]", "fd00::1"),
        ("fd00::1", "fd00::1"),
        ("10.1.2.3", "10.1.2.3"),
        ("bücher.example", "xn--bcher-kva.example"),
        # As browsers map it (IDNA 2008, UTS 46), not as Python's codec does (IDNA 2003:
        # strasse.example, another domain, which a rebinding page could own).
        ("straße.example", "xn--strae-oqa.example"),
        ("FD00:0::1", "fd00::1"),
        ("*", ANY_NAME),
    ],
)
def test_allow_host_values(text: str, name: str) -> None:
    assert allowed_host(text) == name


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "a.example:8080",
        "http://a.example",
        "a b",
        "x" * 254,
        "*.svc.cluster.local",  # no wildcard: it would be taken as a name
        "fe80::1%eth0",  # a zone: no Host header names one
        "\uff0a",  # a fullwidth asterisk
    ],
)
def test_allow_host_refuses_what_names_no_host(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a host|without a port"):
        allowed_host(text)


def test_a_header_names_an_ipv6_address_in_its_short_form() -> None:
    assert host_name("[FD00:0:0::1]:8080") == "fd00::1"
    assert host_name("Crontask.Example.:443") == "crontask.example"
