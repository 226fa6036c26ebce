"""Log lines: logfmt quoting, and the handler that writes a loop's lines once per turn."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from reconciler.logs import (
    MAX_ERROR_CHARS,
    MAX_FIELD_CHARS,
    Format,
    TurnHandler,
    _Formatter,
    bounded,
)


class Stream(io.StringIO):
    """Counts writes, to tell lines written together from lines written one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, Stream]]:
    stream = Stream()
    handler = TurnHandler(stream)
    handler.setFormatter(_Formatter("logfmt"))
    logger = logging.getLogger("crontask.test-turn-handler")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def messages(stream: Stream) -> list[str]:
    return [line.split(" msg=")[1].split(" ")[0] for line in stream.getvalue().splitlines()]


def test_values_are_quoted_only_when_they_must_be() -> None:
    record = logging.makeLogRecord({"name": "x", "msg": "run finished", "levelno": 20})
    record.levelname = "INFO"
    record.fields = {"task": "ops/backup", "message": 'exit code 1: "no space"', "n": 3, "e": ""}
    line = _Formatter("logfmt").format(record)
    assert 'msg="run finished"' in line
    assert "task=ops/backup" in line
    assert 'message="exit code 1: \\"no space\\""' in line
    assert "n=3" in line
    assert 'e=""' in line


def test_time_is_the_millisecond_a_line_was_logged_in() -> None:
    formatter = _Formatter("logfmt")

    def time_of(created: float) -> str:
        record = logging.makeLogRecord({"name": "x", "msg": "m", "levelno": 20})
        record.levelname = "INFO"
        record.created = created
        return formatter.format(record).split(" ")[0]

    base = datetime(2026, 11, 27, 2, 33, 40, tzinfo=UTC).timestamp()
    # Lines of the same millisecond share its text; the next millisecond, or an earlier one
    # (a line from another thread), gets its own.
    assert time_of(base + 0.054_001) == "time=2026-11-27T02:33:40.054+00:00"
    assert time_of(base + 0.054_999) == "time=2026-11-27T02:33:40.054+00:00"
    assert time_of(base + 0.055_0001) == "time=2026-11-27T02:33:40.055+00:00"
    assert time_of(base + 0.007) == "time=2026-11-27T02:33:40.007+00:00"
    assert time_of(base + 61.5) == "time=2026-11-27T02:34:41.500+00:00"


def test_lines_logged_in_one_turn_are_written_together_at_its_end(
    logged: tuple[logging.Logger, Stream],
) -> None:
    logger, stream = logged

    async def main() -> tuple[int, list[str]]:
        for i in range(100):
            logger.info(f"line-{i}")
        during = stream.writes  # nothing written while the turn is still going
        await asyncio.sleep(0)  # the end of the turn
        await asyncio.sleep(0)
        return during, messages(stream)

    during, written = asyncio.run(main())
    assert during == 0
    assert written == [f"line-{i}" for i in range(100)]
    assert stream.writes == 1


def test_an_error_and_a_line_from_another_thread_write_what_is_kept_first(
    logged: tuple[logging.Logger, Stream],
) -> None:
    logger, stream = logged

    async def main() -> list[list[str]]:
        seen = []
        logger.info("kept-1")
        logger.error("failed")  # at once, behind what was kept
        seen.append(messages(stream))
        logger.info("kept-2")
        worker = threading.Thread(target=logger.info, args=("from-thread",))
        worker.start()
        worker.join()
        seen.append(messages(stream))
        return seen

    after_error, after_thread = asyncio.run(main())
    assert after_error == ["kept-1", "failed"]
    assert after_thread == ["kept-1", "failed", "kept-2", "from-thread"]


def test_lines_a_closed_loop_left_behind_are_written(
    logged: tuple[logging.Logger, Stream],
) -> None:
    # A loop stopped in the turn of its last line never runs its queued write; the next line
    # (or logging's flush() at exit) writes them.
    logger, stream = logged
    log_in_a_last_turn(logger, "last-words")
    assert messages(stream) == []
    # The next loop's lines are not left waiting on the closed loop's queued write.
    assert asyncio.run(next_loop(logger, stream)) == ["last-words", "next-loop"]


def log_in_a_last_turn(logger: logging.Logger, text: str) -> None:
    """Log from a loop that stops in that same turn, before its queued write can run."""
    loop = asyncio.new_event_loop()

    def last_turn() -> None:
        logger.info(text)
        loop.stop()

    loop.call_soon(last_turn)
    loop.run_forever()
    loop.close()


async def next_loop(logger: logging.Logger, stream: Stream) -> list[str]:
    logger.info("next-loop")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return messages(stream)


def test_flush_at_exit_writes_what_is_kept(logged: tuple[logging.Logger, Stream]) -> None:
    logger, stream = logged
    log_in_a_last_turn(logger, "last-words")
    logging.shutdown([weakref.ref(logger.handlers[0])])  # what logging does at exit
    assert messages(stream) == ["last-words"]


def _line(fmt: Format, **fields: object) -> str:
    record = logging.makeLogRecord({"name": "x", "msg": "request", "levelno": 20})
    record.levelname = "INFO"
    record.fields = fields
    return _Formatter(fmt).format(record)


CONTROLS = "a\x00b\rc\nd\te\x1bf\x7fg\x85h\u2028i\u2029j"


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_control_characters_never_reach_the_line_raw(fmt: Format) -> None:
    line = _line(fmt, path=f"/api/v1/tasks/{CONTROLS}", n=1)
    assert not any(ch in line for ch in CONTROLS if not ch.isalpha())
    assert "\\u0000" in line
    assert "\\u007f" in line
    assert "\\u2028" in line
    if fmt == "json":
        assert json.loads(line)["path"] == f"/api/v1/tasks/{CONTROLS}"
    else:
        assert json.loads(line.split("path=", 1)[1].split(" n=")[0]) == f"/api/v1/tasks/{CONTROLS}"


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_a_long_field_is_cut_in_the_middle_with_a_marker(fmt: Format) -> None:
    path = "/head" + "x" * 100_000 + "tail"
    line = _line(fmt, path=path, other=["list", "kept"], status=404)
    assert len(line) < MAX_FIELD_CHARS + 300
    assert f"...[{len(path)} chars, cut]..." in line
    assert "/head" in line
    assert "tail" in line
    assert "status=404" in line or '"status": 404' in line
    if fmt == "json":
        assert json.loads(line)["other"] == ["list", "kept"]  # short values keep their type


def test_bounded_keeps_both_ends_within_the_limit() -> None:
    assert bounded("short") == "short"
    text = "A" * 50 + "B" * 50
    cut = bounded(text, 40)
    assert len(cut) == 40
    assert cut.startswith("A")
    assert cut.endswith("B")
    assert bounded("x" * 100, 5) == "...[100 chars, cut]..."  # a limit below the marker


def test_a_traceback_keeps_its_last_line() -> None:
    try:
        raise ValueError("the reason" + "." * 100_000 + "end")
    except ValueError:
        record = logging.makeLogRecord({"name": "x", "msg": "boom", "levelno": 40})
        record.levelname = "ERROR"
        record.exc_info = sys.exc_info()
    line = _Formatter("logfmt").format(record)
    assert len(line) < MAX_ERROR_CHARS + 300
    assert "Traceback" in line
    assert line.endswith('end"')
