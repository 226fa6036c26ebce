"""``crontask next -n N`` of a schedule whose slots run out before N (slots are searched up to
the end of the year 9998) says so on stderr: it printed fewer than asked without a word, so a
short list passed for the whole answer. What stdout holds keeps its shape (text and
``--json``), and a list that is whole says nothing. Each ``crontask next`` is a process of its
own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.hostile import crontask

YEARLY = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: yearly, namespace: ops}
spec:
  schedule: "0 0 1 1 *"
  command: {args: ["true"]}
"""
SHORT = "crontask: ops/yearly: 999 of 1000 slots: none later before the year 9999"


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "yearly.yaml"
    path.write_text(YEARLY)
    return path


def test_a_list_cut_by_the_calendar_says_so(task_file: Path) -> None:
    done = crontask(
        "next", str(task_file), "-n", "1000", "--from", "8999-06-01T00:00:00Z", timeout=60
    )
    assert done.code == 0, done.err
    slots = [line.strip() for line in done.out.splitlines() if line.startswith("  9")]
    assert len(slots) == 999
    assert slots[0] == "9000-01-01T00:00:00+00:00"
    assert slots[-1] == "9998-01-01T00:00:00+00:00"
    assert done.err.strip() == SHORT


def test_json_keeps_its_shape_and_the_note_goes_to_stderr(task_file: Path) -> None:
    done = crontask(
        "next", str(task_file), "-n", "1000", "--from", "8999-06-01T00:00:00Z", "--json", timeout=60
    )
    assert done.code == 0, done.err
    [report] = json.loads(done.out)["items"]
    assert len(report["next"]) == 999
    assert done.err.strip() == SHORT


def test_a_whole_list_says_nothing(task_file: Path) -> None:
    done = crontask("next", str(task_file), "-n", "3", "--from", "2027-06-01T00:00:00Z", timeout=60)
    assert done.code == 0, done.err
    assert done.err == ""
    assert done.out.splitlines()[-1].strip() == "2030-01-01T00:00:00+00:00"
