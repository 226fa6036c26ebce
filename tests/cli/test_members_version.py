"""``crontask members`` says which version each replica runs, so that the replicas of a rolling
update can be told apart; a replica that does not say (the previous release) shows ``unknown``,
and a server that does not (an older crontask answering) ``-``, as it knows nothing of them."""

from __future__ import annotations

import pytest

from tests.cli.hostile import HostileServer, cli


def member(name: str, **fields: object) -> dict[str, object]:
    return {
        "id": f"{name}:1:{name}",
        "address": f"{name}:8080",
        "since": "2026-12-05T03:00:00Z",
        "renewed": "2026-12-05T03:00:05Z",
        "ownedTasks": 1,
        "digest": "A",
        **fields,
    }


def test_each_member_shows_its_version_or_unknown(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [
        member("a", version="0.3.0", me=True),
        member("b", version=None, draining=True),
        member("c"),  # no such field
        member("d", version="0.2\x1b[2J"),
    ]
    hostile.answer = lambda h: h.send(200, {"items": items, "total": 4})
    assert cli("members", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    header, *rows = out.splitlines()
    assert header.split() == ["MEMBER", "ADDRESS", "SINCE", "RENEWED", "TASKS", "DIGEST", "VERSION"]
    assert [(row.split()[0], row.split()[-1]) for row in rows] == [
        ("a:1:a", "0.3.0"),
        ("b:1:b", "unknown"),
        ("c:1:c", "-"),
        ("d:1:d", "0.2\\x1b[2J"),
    ]
    assert "A draining  unknown" in rows[1]


def test_a_server_that_does_not_say_versions_is_not_taken_for_replicas_of_unknown_version(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older crontask answering knows nothing of the field: its replicas, which may say
    their versions, are not all listed as of unknown version."""
    items = [member("a", me=True), member("b")]
    hostile.answer = lambda h: h.send(200, {"items": items, "total": 2})
    assert cli("members", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    _, *rows = out.splitlines()
    assert [row.split()[-1] for row in rows[:2]] == ["-", "-"]
    assert rows[2:] == ["VERSION -: the crontask that answered does not say its replicas' versions"]
