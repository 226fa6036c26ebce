"""Every bad value on the command line is a usage error: argparse's usage and one error line
on stderr, exit status 2, never a traceback; and the bounds hold where a value is fine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.cli.main_helpers import server_url
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from tests.cli.hostile import crontask

BAD = [
    ("runs", "--limit", "0"),
    ("runs", "--limit", "-1"),
    ("runs", "--limit", "100001"),
    ("runs", "--limit", "9" * 400),
    ("runs", "--limit", "ten"),
    ("runs", "--since", "99999999d"),
    ("runs", "--since", "1" * 400),
    ("runs", "--since", "1e400"),
    ("runs", "--since", "5 parsecs"),
    ("runs", "--since", "1h" * 100),
    ("runs", "../x"),
    ("runs", "default/" + "x" * 64),
    ("runs", "--id", "../../etc/passwd"),
    ("runs", "--id", "default.x.2026"),
    ("runs", "--server", "http://[::1"),
    ("runs", "--server", "ftp://127.0.0.1"),
    ("runs", "--server", "http://127.0.0.1:99999"),
    ("tasks", "--namespace", ".."),
    ("tasks", "--server", "not a url"),
    # The client appends /api/v1/... to the URL: a path, query or fragment of its own breaks
    # every request (a 404, an answer that is not JSON), so it is a usage error.
    ("tasks", "--server", "http://127.0.0.1:9/api"),
    ("tasks", "--server", "http://127.0.0.1:9?x=1"),
    ("tasks", "--server", "http://127.0.0.1:9/?"),
    ("members", "--server", "http://127.0.0.1:9#top"),
    ("trigger", "ops/a", "--server", "https://h//"),
    ("runs", "--server", "http://127.0.0.1:9/api/v1"),
    ("plan", "x", "--server", "http://127.0.0.1:9/crontask/"),
    ("next", "ops/a", "--server", "http://127.0.0.1:9?x=1"),
    ("trigger", "../canary"),
    ("trigger", "nope"),
    ("trigger", "default/a/b"),
    ("next", "x", "-n", "100000000"),
    ("next", "x", "-n", "0"),
    ("next", "x", "--from", "9999-12-31T23:59:59-01:00"),
    ("next", "x", "--from", "2026-01-01T00:00:00"),
    ("next", "x", "--from", "garbage"),
    # fromisoformat reads +00:99 as +01:39, and +0100 too; RFC 3339 has neither.
    ("next", "x", "--from", "2026-01-01T00:00:00+00:99"),
    ("next", "x", "--from", "2026-01-01T00:00:00+24:00"),
    ("next", "x", "--from", "2026-01-01T00:00:00+0100"),
    ("next", "x", "--from", "2026-W01-1T00:00Z"),
    ("next", "x", "--from", "20260101T000000Z"),
    ("next", "x", "--from", "2026-01-01 00:00:00+01:00"),
    ("plan", "x", "--server", "http://[::1"),
    ("run", "x", "--resync", "99999999d"),
    ("run", "x", "--shutdown-grace", "1e400"),
    ("run", "x", "--history-max-age", "99999999999999999999d"),
    # A loop paced by zero would spin and pin a core.
    ("run", "x", "--resync", "0"),
    ("run", "x", "--git-interval", "0s"),
    ("run", "x", "--git-timeout", "0"),
    ("run", "x", "--housekeeping-interval", "10ms"),
    ("run", "x", "--renew-interval", "0"),
    # Refused here, before any store is opened, not as a traceback after start-up.
    ("run", "x", "--git-ref", "../x"),
    ("run", "x", "--git-ref", "-c" + "x" * 400),
    ("run", "x", "--git-path", "../x"),
    ("run", "x", "--git-path", "/etc"),
    # Links to runs are --external-url with /runs/ID added: after a query or fragment they
    # would lead to the page itself.
    ("run", "x", "--external-url", "https://admin:S3cret@crontask.example/ui?team=ops"),
    ("run", "x", "--external-url", "https://crontask.example/ui#top"),
    # Every notification carries links made from it: a password would go to every receiver.
    ("run", "x", "--external-url", "https://admin:S3cret@crontask.example/ui"),
    ("run", "x", "--external-url", "https://S3cret@crontask.example"),
    ("run", "x", "--max-tasks", "0"),
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a)[:60])
def test_a_bad_value_is_one_error_line_and_exit_2(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[-1].startswith(f"crontask {argv[0]}: error: argument ")
    assert "Traceback" not in err
    assert len(lines[-1]) < 400  # a hostile value is quoted shortened, not whole
    assert "S3cret" not in err  # a password in a URL is never repeated


def test_a_bad_server_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRONTASK_SERVER", "http://[::1")
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("crontask: $CRONTASK_SERVER: expected http://")


@pytest.mark.parametrize("server", ["http://127.0.0.1:9/api", "http://127.0.0.1:9?x=1"])
@pytest.mark.parametrize("argv", [("tasks",), ("next", "ops/a")])
def test_a_server_in_the_environment_with_a_path_or_query_is_a_usage_error(
    server: str,
    argv: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CRONTASK_SERVER", server)
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("crontask: $CRONTASK_SERVER: expected http://"), err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(
    "server",
    [
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/",
        "https://ops:pw@crontask.example",
        "http://[::1]:9",
    ],
)
def test_a_server_url_with_nothing_after_its_port_but_a_slash_is_taken(server: str) -> None:
    assert server_url(server) == server


@pytest.mark.parametrize("token", ["t\u00f6k\u00e9n\u20acsecret", "two words-secret", "x" * 20_000])
def test_a_token_no_header_can_carry_is_a_usage_error_that_never_quotes_it(
    token: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", token)
    with pytest.raises(SystemExit) as exit_info:
        main(["tasks", "--server", "http://127.0.0.1:9"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("crontask: $CRONTASK_TOKEN: not a token crontask can send")
    assert "secret" not in err
    assert "xxxx" not in err
    assert "Traceback" not in err


def test_the_largest_limit_reads_the_store_page_by_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(sqlite_url(tmp_path))
    start = datetime(2026, 11, 27, tzinfo=UTC)
    records = [
        RunRecord(
            id=run_id("default/t", at),
            task="default/t",
            scheduled_at=at,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SUCCEEDED,
        )
        for at in (start - timedelta(minutes=i) for i in range(2500))
    ]
    store.save_many(records)
    store.close()
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "--limit", "100000", "--json", "--state-dir", str(tmp_path)])
    assert exit_info.value.code == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert [i["id"] for i in items] == [r.id for r in records]  # newest first, each once
    with pytest.raises(SystemExit):
        main(["runs", "default/t", "--limit", "1001", "--json", "--state-dir", str(tmp_path)])
    assert len(json.loads(capsys.readouterr().out)["items"]) == 1001


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("--git-ref", "main"), "--git-ref needs --git"),
        (("--renew-interval", "1s"), "--renew-interval needs --ha"),
        (("--ha",), "--ha needs a run store every replica shares"),
        (("--lease-namespace", "ops"), "--lease-namespace needs --ha"),
        (("--namespace", "ops"), "--namespace/--all-namespaces need --kubernetes"),
    ],
)
def test_options_that_cannot_work_together_are_said_as_a_bad_option_is(
    tmp_path: Path, argv: tuple[str, ...], says: str
) -> None:
    # Found after parsing, but said as argparse says its own: the usage line, one line that
    # says what is wrong, exit status 2 (as the README promises).
    (tmp_path / "tasks").mkdir()
    state = tmp_path / "state"
    command = ("run", str(tmp_path / "tasks"), "--state-dir", str(state), "--listen", "off")
    done = crontask(*command, *argv, timeout=60)
    assert done.code == 2, done.err
    assert done.err.startswith("usage: crontask run "), done.err
    assert done.err.splitlines()[-1].startswith(f"crontask run: error: {says}"), done.err
    assert "Traceback" not in done.err
    assert not state.exists()  # refused before anything was created
