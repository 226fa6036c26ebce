"""``crontask run`` says each task file named in another case once (``walk.Misnamed``), and a
scan that finds many new ones says ``MISNAMED_LOGGED`` of them and how many more: a commit of
10 000 ``X.YAML`` files is not 10 000 lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.sources.walk import MISNAMED, MISNAMED_LOGGED, Misnamed


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    lines = [r for r in caplog.records if r.getMessage() == MISNAMED]
    caplog.clear()
    return [getattr(r, "fields", {}) for r in lines]


def test_many_new_files_are_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sources.walk")
    said = Misnamed()
    files = [Path(f"t/{i:05}.YAML") for i in range(10_000)]
    said.saw(files, str)
    lines = _lines(caplog)
    assert len(lines) == MISNAMED_LOGGED + 1
    assert lines[0] == {"path": "t/00000.YAML"}
    assert lines[-1] == {"more_files": 10_000 - MISNAMED_LOGGED}
    assert len(said.shown) == 10_000  # validate still names every one
    said.saw(files, str)  # the next scan: nothing new, nothing said
    assert _lines(caplog) == []
    said.saw([*files, Path("t/new.Yml")], str)
    assert _lines(caplog) == [{"path": "t/new.Yml"}]
