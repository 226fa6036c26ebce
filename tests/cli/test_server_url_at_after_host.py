"""A ``--server`` (or ``$CRONTASK_SERVER``) URL with an ``@`` after its host is refused without
quoting it: an unencoded ``/``, ``?`` or ``#`` in a token or password ends the host early
(``https://tok3n/S3CRET@host`` has the host ``tok3n`` and the path ``/S3CRET@host``), so what
urlsplit took for the host, port and path is the secret, and the usage error used to show it."""

from __future__ import annotations

import pytest

from reconciler.cli.main_helpers import server_url
from tests.cli.hostile import cli

SECRET = "S3CRET"  # noqa: S105 - a test value
URLS = [
    f"https://tok3n/{SECRET}@crontask.example",  # a token holding a "/"
    f"https://ops:12/{SECRET}@crontask.example",  # a password of digits, then a "/"
    f"https://ops:99999/{SECRET}@crontask.example",  # ... digits no port can be
    f"https://ops:{SECRET}?x@crontask.example",
    f"https://ops:{SECRET}#x@crontask.example",
    f"https://ops@tok3n/{SECRET}@crontask.example",  # a second "@", after the host
    f"https:tok3n/{SECRET}@crontask.example",  # no "//": no host at all
]


def assert_refused_unquoted(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert SECRET not in err, err
    assert "tok3n" not in err, err
    assert err.splitlines()[-1].endswith(
        "expected http://HOST:PORT or https://HOST:PORT, got a URL with an '@' after its host "
        "(not shown: it may hold a password; in a user name or password, write '/' '?' '#' '[' "
        "']' as %2F %3F %23 %5B %5D)"
    ), err


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", [("tasks",), ("runs",), ("trigger", "ops/a")])
def test_the_flag_is_refused_unquoted(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...], url: str
) -> None:
    code = cli(*command, "--server", url)
    _, err = capsys.readouterr()
    assert_refused_unquoted(code, err)
    assert err.splitlines()[-1].startswith(f"crontask {command[0]}: error: argument --server: ")


@pytest.mark.parametrize("url", URLS)
def test_the_environment_variable_is_refused_unquoted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("CRONTASK_SERVER", url)
    code = cli("tasks")
    _, err = capsys.readouterr()
    assert_refused_unquoted(code, err)
    assert err.count("\n") == 1
    assert err.startswith("crontask: $CRONTASK_SERVER: ")


@pytest.mark.parametrize(
    "url", ["https://ops:pw@crontask.example", "https://ops%2Fx:p%3Fw%23@crontask.example:8443/"]
)
def test_a_user_name_and_password_before_the_host_still_pass(url: str) -> None:
    assert server_url(url) == url
