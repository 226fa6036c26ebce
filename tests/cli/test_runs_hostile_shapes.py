"""``crontask runs --server``: attempts of an unexpected shape are refused in one line, exit
status 1; a duration too large for a float is still printed, never a traceback."""

from __future__ import annotations

import pytest

from tests.cli.hostile import HostileServer, assert_one_line_error, crontask

RUN = "ops.a.20260101T000000Z"
HUGE = 10**400  # json reads it; a float cannot hold it


@pytest.mark.parametrize("attempts", ["abc", [1, 2], {"k": 1}, [{"id": "a"}, "x"]])
def test_attempts_that_are_not_a_list_of_objects_are_refused(
    hostile: HostileServer, attempts: object
) -> None:
    hostile.answer = lambda h: h.send(200, {"id": RUN, "attempts": attempts})
    done = crontask("runs", "--id", RUN, "--server", hostile.url, timeout=60)
    assert_one_line_error(done.code, done.err, "answered attempts that are not a list of objects")


@pytest.mark.parametrize(
    ("argv", "answer"),
    [
        ((), {"items": [{"id": RUN, "task": "ops/a", "durationMs": HUGE}]}),
        (("--id", RUN), {"id": RUN, "attempts": [{"id": RUN, "durationMs": HUGE}]}),
    ],
)
def test_a_huge_duration_is_printed(
    hostile: HostileServer, argv: tuple[str, ...], answer: object
) -> None:
    hostile.answer = lambda h: h.send(200, answer)
    done = crontask("runs", *argv, "--server", hostile.url, timeout=60)
    assert done.code == 0, done.err
    assert "Traceback" not in done.err
    # A table's cell is cut to 200 characters; runs --id shows it whole.
    assert (f"{HUGE // 1000}"[:197] + "..." if not argv else f"{HUGE // 1000}.0s") in done.out


@pytest.mark.parametrize(("ms", "shown"), [(9999, "9999ms"), (10_049, "10.0s"), (12_345, "12.3s")])
def test_durations_are_shown_as_before(hostile: HostileServer, ms: int, shown: str) -> None:
    hostile.answer = lambda h: h.send(200, {"items": [{"id": RUN, "durationMs": ms}]})
    done = crontask("runs", "--server", hostile.url, timeout=60)
    assert done.code == 0, done.err
    assert shown in done.out.split()
