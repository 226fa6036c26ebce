"""A listed task, run or attempt whose field has another JSON type than the API's (``key: 5``,
``state: [1]``, ``exitCode: 1e300``) is refused in one line naming the item and the field, exit
status 1, as the README says answers of an unexpected shape are: they were printed, exit 0. A
field that is absent is not refused (a server of another release), nor a run's ``job`` (shown
as it can be: ``test_runs_job_details``). A number of more digits
than Python converts is refused in crontask's words, not Python's ("use
sys.set_int_max_str_digits()"). Real processes, a real HTTP server."""

from __future__ import annotations

import pytest

from tests.cli.hostile import HostileServer, assert_one_line_error, crontask

RUN = "ops.a.20260101T000000Z"
REFUSED = [
    (
        ("tasks",),
        {"items": [{"key": 5}]},
        "tasks of an unexpected shape: item 1's key is an integer",
    ),
    (
        ("tasks", "--json"),
        {"items": [{"key": "ops/a"}, {"key": "ops/b", "state": [1]}]},
        "item 2's state is a list not only of strings, not a string",
    ),
    (("tasks",), {"items": [{"key": "ops/a", "source": {"kind": 5}}]}, "source.kind is an integer"),
    (("tasks",), {"items": [{"key": "ops/a", "nextRuns": [5]}]}, "nextRuns is a list not only"),
    (("tasks",), {"items": [{"key": "ops/a", "lastRun": {"status": 3}}]}, "lastRun.status is an"),
    (
        ("tasks",),
        {"items": [{"key": "ops/a", "resource": {"spec": {"schedule": 7}}}]},
        "item 1's resource.spec.schedule is an integer, not a string",
    ),
    (("runs",), {"items": [{"id": 5}]}, "runs of an unexpected shape: item 1's id is an integer"),
    (
        ("runs",),
        {"items": [{"id": RUN, "exitCode": 1e300}]},
        "item 1's exitCode is a number with a fraction or exponent, not an integer or null",
    ),
    (("runs",), {"items": [{"id": RUN, "attempt": True}]}, "attempt is true or false, not an"),
    (
        ("runs", "--id", RUN),
        {"id": RUN, "attempts": [{"id": RUN, "output": ["x"]}]},
        "attempts of an unexpected shape: item 1's output is a list of strings, not a string",
    ),
]


@pytest.mark.parametrize(("argv", "answer", "says"), REFUSED)
def test_an_item_of_another_shape_is_refused(
    hostile: HostileServer, argv: tuple[str, ...], answer: object, says: str
) -> None:
    hostile.answer = lambda h: h.send(200, answer)
    done = crontask(*argv, "--server", hostile.url, timeout=60)
    assert_one_line_error(done.code, done.err, f"crontask: {hostile.url} answered ")
    assert says in done.err, done.err
    assert done.out == ""


def test_absent_and_null_fields_are_shown(hostile: HostileServer) -> None:
    task = {"key": "ops/a", "state": "Ready", "lastRun": None, "error": None, "owner": None}
    hostile.answer = lambda h: h.send(200, {"items": [task]})
    done = crontask("tasks", "--server", hostile.url, timeout=60)
    assert (done.code, done.err) == (0, "")
    assert done.out.splitlines()[1].split() == ["ops/a", "Ready", "-", "-", "-:-"]


def test_a_number_of_too_many_digits_is_refused_in_crontask_s_words(
    hostile: HostileServer,
) -> None:
    body = '{"items": [{"key": "ops/a", "n": ' + "9" * 5000 + "}]}"
    hostile.answer = lambda h: h.send(200, body)
    done = crontask("tasks", "--server", hostile.url, timeout=60)
    says = "answered a number crontask refuses: an integer of more than 4,300 digits\n"
    assert_one_line_error(done.code, done.err, says)
    assert "sys." not in done.err
