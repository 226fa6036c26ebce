"""The edge's checks as tables: times, run ids, task keys, continue tokens; and the file store
behind them, which refuses any key whose file would leave its folder (defence in depth)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from reconciler.api import params
from reconciler.cli import main_helpers
from reconciler.controller.writes import KeyedLocks
from reconciler.core.api_tasks import InTheWay
from reconciler.core.runs import run_id
from reconciler.sources.api import ApiTaskFiles


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T01:00:00Z", datetime(2026, 11, 27, 1, tzinfo=UTC)),
        ("2026-11-27t01:00:00z", datetime(2026, 11, 27, 1, tzinfo=UTC)),
        ("2026-11-27T02:00:00+01:00", datetime(2026, 11, 27, 1, tzinfo=UTC)),
        ("2026-11-27T01:00:00.5Z", datetime(2026, 11, 27, 1, 0, 0, 500000, tzinfo=UTC)),
        # Past the microsecond: rounded up to it (see parse_instant).
        ("2026-11-27T01:00:00.1234561Z", datetime(2026, 11, 27, 1, 0, 0, 123457, tzinfo=UTC)),
        ("2026-11-27T01:00:00.123456000Z", datetime(2026, 11, 27, 1, 0, 0, 123456, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2026-11-28T00:59:00+23:59", datetime(2026, 11, 27, 1, tzinfo=UTC)),
        ("2026-11-26T01:59:00-23:59", datetime(2026, 11, 27, 1, 58, tzinfo=UTC)),
    ],
)
def test_times_that_parse(text: str, expected: datetime) -> None:
    parsed = params.parse_instant(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0.5",
        "1e308",
        "2026-11-27",
        "2026-11-27T01:00:00",  # no offset: the same rule for since and until
        "2026-11-27T01:00Z",
        "2026-11-27 01:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T01:00:00+24:00",
        # Minutes of an offset run to 59 (RFC 3339's time-numoffset): fromisoformat read
        # +00:99 as +01:39, another instant than any the caller could have meant.
        "2026-11-27T01:00:00+00:60",
        "2026-11-27T01:00:00+00:99",
        "2026-11-27T01:00:00-05:75",
        "2026-11-27T01:00:00+23:60",
        "2026-11-27T01:00:00.1234567891Z",  # to the nanosecond (Go's RFC3339Nano), no more
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "9999-01-01T00:00:00Z",
        "2026-11-27T01:00:00Z" + " " * 40,
        "\uff12\uff10\uff12\uff16-11-27T01:00:00Z",  # fullwidth digits: \d, not [0-9]
    ],
)
def test_times_that_are_refused(text: str) -> None:
    with pytest.raises(PydanticCustomError):
        params.parse_instant(text)


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC: Python's datetime overflows
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "1969-12-31T23:59:59Z",
        "9999-01-01T00:00:00Z",
    ],
)
def test_a_time_out_of_bounds_is_said_so(text: str) -> None:
    """Not "not a valid date-time" for a valid one whose UTC instant Python cannot hold."""
    with pytest.raises(PydanticCustomError) as caught:
        params.parse_instant(text)
    assert str(caught.value) == ("must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z")


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)))
def test_every_run_id_has_the_shape_the_api_checks(at: datetime) -> None:
    import re

    ident = run_id("ns-1/a-b", at.replace(tzinfo=UTC))
    assert re.fullmatch(params.RUN_ID_PATTERN, ident)
    assert len(ident) <= params.RUN_ID_MAX
    assert re.fullmatch(main_helpers.RUN_ID_PATTERN, ident)


def test_the_cli_checks_the_shapes_the_api_checks() -> None:
    assert main_helpers.RUN_ID_PATTERN == params.RUN_ID_PATTERN
    assert main_helpers.KEY_PATTERN == params.KEY_PATTERN


def test_longest_run_id_fits() -> None:
    at = datetime(2026, 11, 27, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=3)))
    assert len(run_id(f"{'n' * 63}/{'m' * 63}", at)) == params.RUN_ID_MAX


@pytest.mark.parametrize("key", ["default/a", "ops/nightly-backup", f"{'a' * 63}/{'b' * 63}"])
def test_task_tokens_round_trip(key: str) -> None:
    assert params.decode_task_token(params.encode_task_token(key)) == key


@pytest.mark.parametrize(
    "token",
    ["", "!!!", "bnVsbA", "W10", "eyJ2IjoyLCJhZnRlciI6ImEvYiJ9", "eyJ2IjoxLCJhZnRlciI6Ii4uL3gifQ"],
)
def test_tokens_this_api_did_not_issue(token: str) -> None:
    with pytest.raises(params.InvalidToken):
        params.decode_task_token(token)


@pytest.mark.parametrize(
    "key",
    [
        "../canary",
        "default/..",
        "default/.hidden",
        "./x",
        "default/a/../../b",
        "default/" + "x" * 64,
        "default/x\x00",
        "Default/x",
        "default",
        "/x",
    ],
)
def test_the_file_store_refuses_keys_that_are_not_two_labels(tmp_path: Path, key: str) -> None:
    files = ApiTaskFiles(tmp_path / "api-tasks")
    (tmp_path / "canary.yaml").write_text("canary")
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the key, which varies
        files.path(key)
    with pytest.raises(ValueError):  # noqa: PT011
        files.write(key, "x")
    with pytest.raises(ValueError):  # noqa: PT011
        files.remove(key)
    assert (tmp_path / "canary.yaml").read_text() == "canary"
    assert not (tmp_path / "api-tasks").exists()


def test_the_file_store_refuses_a_namespace_folder_that_links_out(tmp_path: Path) -> None:
    root = tmp_path / "api-tasks"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.yaml").write_text("canary")
    root.mkdir()
    (root / "ops").symlink_to(outside)
    files = ApiTaskFiles(root)
    with pytest.raises(InTheWay, match="would leave"):
        files.remove("ops/x")
    with pytest.raises(InTheWay, match="remove the link"):
        files.write("ops/x", "x")
    assert (outside / "x.yaml").read_text() == "canary"


def test_the_file_store_versions_follow_the_bytes(tmp_path: Path) -> None:
    files = ApiTaskFiles(tmp_path)
    assert files.version("default/a") is None
    files.write("default/a", "one")
    first = files.version("default/a")
    files.write("default/a", "two")
    assert files.version("default/a") not in (None, first)
    files.write("default/a", "one")
    assert files.version("default/a") == first
    files.remove("default/a")
    assert files.version("default/a") is None
    with pytest.raises(KeyError):
        files.remove("default/a")


def test_keyed_locks_serialise_one_key_and_forget_it_after(tmp_path: Path) -> None:
    locks = KeyedLocks()
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with locks.hold("a/b", 10):
            inside.set()
            release.wait(10)
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    with locks.hold("a/c", 1):  # another key is not held up
        order.append("other")
    with pytest.raises(TimeoutError), locks.hold("a/b", 0.01):
        pass
    release.set()
    with locks.hold("a/b", 10):
        order.append("second")
    thread.join(10)
    assert order == ["other", "first", "second"]
    assert len(locks) == 0
