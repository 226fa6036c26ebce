"""crontask validate / next / plan / schema, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.core.model import json_schema
from reconciler.sources.limits import PARALLEL_MIN_FILES


def crontask(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 1


def doc(name: str, schedule: str, zone: str = "UTC", extra: str = "") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f'metadata:\n  name: {name}\nspec:\n  schedule: "{schedule}"\n  timeZone: {zone}\n'
        f'{extra}  command:\n    args: ["true"]\n'
    )


def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(doc("a", "@daily") + "---\n" + doc("b", "@hourly"))
    assert crontask("validate", str(tmp_path)) == 0
    assert capsys.readouterr().out == "ok: 1 file, 2 tasks\n"


def test_validate_reports_every_error_with_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(doc("a", "0 2 * * *", zone="Europe/Berln") + "---\n" + doc("b", "*/0 * * * *"))
    dup = tmp_path / "dup.yml"
    dup.write_text(doc("c", "@daily", extra="  suspend: yes\n  retries: 3\n"))
    (tmp_path / "twin.yaml").write_text(doc("c", "@weekly"))
    assert crontask("validate", str(tmp_path)) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        f"{bad}:7:3: spec.timeZone: unknown time zone 'Europe/Berln'",
        f"{bad}:16:14: spec.schedule: minute field: step 0 is out of range 1-59",
        f"{dup}:9:3: spec.retries: unknown field (did you mean 'retry'?)",
    ]
    assert "3 problems" in out.err


def test_validate_flags_a_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(doc("same", "@daily"))
    (tmp_path / "b.yaml").write_text(doc("same", "@hourly"))
    assert crontask("validate", str(tmp_path)) == 1
    assert capsys.readouterr().out == (
        f"default/same is defined more than once: using {tmp_path}/a.yaml:1:1, "
        f"ignoring {tmp_path}/b.yaml:1:1\n"
    )


def test_validate_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nonexistent"  # of this test's own: a host may well have /nonexistent
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(missing)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"crontask: no such file or directory: {missing}\n"


def test_next_json_across_a_dst_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(doc("nightly", "30 2 * * *", zone="Europe/Berlin"))
    assert (
        crontask("next", str(file), "-n", "3", "--from", "2027-03-27T12:00:00+01:00", "--json") == 0
    )
    (item,) = json.loads(capsys.readouterr().out)["items"]  # a file's: a list, one task or more
    assert item == {
        "task": "default/nightly",
        "schedule": "30 2 * * *",
        "timeZone": "Europe/Berlin",
        "description": "at 02:30 every day",
        # 28 March 2027: 02:30 does not exist in Berlin; the slot runs at the jump, 03:00.
        "next": [
            "2027-03-28T03:00:00+02:00",
            "2027-03-29T02:30:00+02:00",
            "2027-03-30T02:30:00+02:00",
        ],
    }


def test_next_selects_a_task_and_rejects_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.yaml").write_text(doc("a", "@daily") + "---\n" + doc("b", "0 12 * * mon"))
    assert (
        crontask("next", str(tmp_path), "--task", "b", "-n", "1", "--from", "2026-11-26T00:00:00Z")
        == 0
    )
    out = capsys.readouterr().out
    assert "default/b" in out
    assert "2026-11-30T12:00:00+00:00" in out
    with pytest.raises(SystemExit, match="no task 'zz' here"):
        main(["next", str(tmp_path), "--task", "zz"])
    with pytest.raises(SystemExit, match=r"^2$"):  # a usage error: the time has no offset
        main(["next", str(tmp_path), "--from", "2026-11-26T00:00:00"])
    assert "with an offset" in capsys.readouterr().err


def test_plan_field_by_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "t.yaml").write_text(
        doc("keep", "@daily") + "---\n" + doc("edit", "@daily") + "---\n" + doc("drop", "@daily")
    )
    (new / "t.yaml").write_text(
        doc("keep", "@daily")
        + "---\n"
        + doc("edit", "@hourly", extra="  suspend: true\n")
        + "---\n"
        + doc("add", "@daily")
    )
    assert crontask("plan", str(new), "--against", str(old)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"+ default/add  ({new}/t.yaml:22:1)",
        f"~ default/edit  ({new}/t.yaml:11:1)",
        "    ~ spec.schedule: '@daily' -> '@hourly'",
        "    ~ spec.suspend: False -> True",
        f"- default/drop  ({old}/t.yaml:21:1)",
        "Plan: 1 to add, 1 to change, 1 to remove, 1 unchanged.",
    ]


def test_plan_of_large_folders_read_on_every_core(tmp_path: Path) -> None:
    """Folders large enough to be read ahead on every core (in a process of its own, which has
    no other thread, so it forks): the plan is the same as ever, error places included."""
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        for i in range(PARALLEL_MIN_FILES + 20):
            (folder / f"{i:04d}").mkdir(parents=True)
            (folder / f"{i:04d}" / "t.yaml").write_text(doc(f"t{i}", "@daily"))
    (new / "0007" / "t.yaml").write_text(doc("t7", "@hourly"))
    (new / "0100" / "t.yaml").write_text(doc("t100", "61 * * * *"))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(new), "--against", str(old)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1  # new/ has an error
    assert done.stdout.splitlines() == [
        f"~ default/t7  ({new}/0007/t.yaml:1:1)",
        "    ~ spec.schedule: '@daily' -> '@hourly'",
        "  default/t100  (kept as it is: its new definition has errors)",
        f"! {new}/0100/t.yaml:6:14: spec.schedule: minute field: 61 is out of range 0-59",
        f"Plan: 0 to add, 1 to change, 0 to remove, {PARALLEL_MIN_FILES + 19} unchanged.",
    ]


def test_plan_keeps_what_a_broken_file_defines_as_run_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` applies a file whole or not at all: a file with errors keeps the definitions it
    had in force, the file at the same place under the paired root of --against. The plan
    says so instead of listing them as removed, whether the file still names its tasks or no
    longer parses at all. A task moved to a new file that is broken is kept too, as `run`
    keeps it adrift while a broken document names it (``sources.adrift``)."""
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        (folder / "sub").mkdir(parents=True)
        (folder / "a.yaml").write_text(doc("a", "@daily"))
    (old / "sub" / "b.yaml").write_text(doc("b", "@daily") + "---\n" + doc("c", "@daily"))
    (old / "d.yaml").write_text(doc("d", "@daily"))
    (new / "sub" / "b.yaml").write_text("key: [unclosed\n")
    (new / "e.yaml").write_text(doc("d", "99 * * * *"))  # d moved to a new, broken file
    assert crontask("plan", str(new), "--against", str(old)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "  default/b  (kept as it is: its new definition has errors)",
        "  default/c  (kept as it is: its new definition has errors)",
        "  default/d  (kept as it is: its new definition has errors)",
    ]
    assert lines[-1] == "Plan: 0 to add, 0 to change, 0 to remove, 4 unchanged."
    # Roots that do not pair up: no file is known to be the same, so only what a broken
    # document names is kept.
    assert crontask("plan", str(new), str(new / "a.yaml"), "--against", str(old)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"- default/b  ({old}/sub/b.yaml:1:1)",
        f"- default/c  ({old}/sub/b.yaml:11:1)",
        "  default/d  (kept as it is: its new definition has errors)",
    ]


def test_schema_prints_the_generated_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert crontask("schema") == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


@pytest.mark.parametrize(
    "command", ["run", "validate", "plan", "next", "runs", "schema", "crd", "tasks", "trigger"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert crontask(command, "--help") == 0
    text = capsys.readouterr().out
    assert f"usage: crontask {command}" in text
    assert len(text.splitlines()) > 3
