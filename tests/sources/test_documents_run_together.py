"""Two objects run together in one document (``cat a.yaml b.yaml``, a bad merge: no ``---``
between them) repeat ``apiVersion`` and ``kind``. PyYAML keeps the last of each, so a CronTask
followed by a Deployment read as a Deployment and was ignored: its task removed, ``validate``
ok. Such a document is ours: its repeated keys are errors at their places (as ``kubectl apply``
refuses it), and the task it names is kept, as for any broken document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.documents import parse_text, plain_text
from reconciler.sources.files import DirectorySource
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.sources.test_ahead import _run_probe
from tests.sources.test_files import doc, write

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: keep-me\n"
    'spec:\n  schedule: "@every 30s"\n  command:\n    args: ["true"]\n'
)
DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n"
FLOW = '{apiVersion: crontask.dev/v1alpha1, kind: CronTask, metadata: {name: keep-me}, spec: {schedule: "@every 30s", command: {args: ["true"]}}, apiVersion: v1, kind: Secret}\n'  # noqa: E501 - one line is the point


def _errors(text: str) -> list[tuple[str, str | None]]:
    parsed = parse_text(text, "t.yaml")
    assert parsed.definitions == []
    assert parsed.ignored == 0
    return [(str(e), e.key) for e in parsed.errors]


def test_a_task_followed_by_another_object_is_an_error_of_the_task() -> None:
    assert _errors(TASK + DEPLOYMENT) == [
        ("t.yaml:9:1: apiVersion: duplicate key", "default/keep-me"),
        ("t.yaml:10:1: kind: duplicate key", "default/keep-me"),
        ("t.yaml:11:1: metadata: duplicate key", "default/keep-me"),
        ("t.yaml:13:1: spec: duplicate key", "default/keep-me"),
    ]


def test_a_task_with_another_kind_appended_is_an_error_of_the_task() -> None:
    assert _errors(TASK + "kind: ConfigMap\napiVersion: v1\n") == [
        ("t.yaml:9:1: kind: duplicate key", "default/keep-me"),
        ("t.yaml:10:1: apiVersion: duplicate key", "default/keep-me"),
    ]


def test_a_flow_mapping_that_repeats_its_kind_is_an_error_of_the_task() -> None:
    assert _errors(FLOW) == [
        ("t.yaml:1:139: apiVersion: duplicate key", "default/keep-me"),
        ("t.yaml:1:155: kind: duplicate key", "default/keep-me"),
    ]


def test_another_object_followed_by_a_task_names_the_task() -> None:
    errors = _errors(DEPLOYMENT + TASK)
    assert errors[0] == ("t.yaml:7:1: apiVersion: duplicate key", "default/keep-me")
    assert {key for _, key in errors} == {"default/keep-me"}


def test_two_other_objects_run_together_stay_another_group_s() -> None:
    """No part says it is a CronTask: ignored as before. An error there would name a task
    after an object that is none (two ConfigMaps, one named as a deleted task, kept that task
    running adrift)."""
    parsed = parse_text(DEPLOYMENT + SERVICE, "t.yaml")
    assert (parsed.definitions, parsed.errors, parsed.ignored) == ([], [], 1)
    configmaps = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cleanup\n" * 2
    parsed = parse_text(configmaps, "t.yaml")
    assert (parsed.definitions, parsed.errors, parsed.ignored) == ([], [], 1)


@pytest.mark.parametrize("text", [TASK + DEPLOYMENT, TASK + "kind: ConfigMap\n", FLOW])
def test_the_fast_path_and_the_readers_ahead_leave_it_to_the_long_way(text: str) -> None:
    assert plain_text(text) is None


def test_other_objects_are_still_ignored_unread() -> None:
    """What is not run together is judged as before: a Deployment (even one with a repeated
    key of its own, which is not ours to judge) is ignored, beside a task or alone."""
    assert parse_text(DEPLOYMENT + "  replicas: 2\n", "t.yaml").ignored == 1
    parsed = parse_text(TASK + "---\n" + DEPLOYMENT, "t.yaml")
    assert ([d.key for d in parsed.definitions], parsed.errors, parsed.ignored) == (
        ["default/keep-me"],
        [],
        1,
    )
    plain = plain_text(TASK + "---\n" + DEPLOYMENT)
    assert plain is not None
    assert (len(plain.documents), plain.ignored) == (1, 1)


def test_the_folder_keeps_the_task_when_its_file_runs_together(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", TASK)
    write(tmp_path / "b.yaml", doc("other"))
    source = DirectorySource([tmp_path])
    source.refresh()
    write(a, TASK + DEPLOYMENT)
    source.refresh()
    assert {d.key for d in source.definitions()} == {"default/keep-me", "default/other"}
    assert str(source.errors()[0]) == f"{a}:9:1: apiVersion: duplicate key"
    (kept,) = [d for d in source.definitions() if d.key == "default/keep-me"]
    assert kept.error == str(source.errors()[0])


def test_a_file_moved_and_run_together_keeps_the_task(tmp_path: Path) -> None:
    """The error names the task, so the task is kept even when it comes from another file
    (see ``sources.adrift``)."""
    a = write(tmp_path / "a.yaml", TASK)
    source = DirectorySource([tmp_path])
    source.refresh()
    a.unlink()
    write(tmp_path / "c.yaml", TASK + DEPLOYMENT)
    source.refresh()
    assert [d.key for d in source.definitions()] == ["default/keep-me"]


def test_validate_fails_and_places_the_repeated_key(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", TASK + DEPLOYMENT)
    write(tmp_path / "b.yaml", doc("other"))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{tmp_path / 'a.yaml'}:9:1: " in output
    assert "apiVersion: duplicate key" in output


def test_reading_ahead_at_start_up_leaves_it_to_the_refresh(tmp_path: Path) -> None:
    """The parallel start-up reader (``sources.ahead``) decides kinds as the refresh does."""
    folder = tmp_path / "tasks"
    for i in range(PARALLEL_MIN_FILES):
        write(folder / f"{i:04d}.yaml", doc(f"good-{i}"))
    write(folder / "together.yaml", TASK + DEPLOYMENT)
    report = _run_probe(folder, "same")
    assert report["read_by_refresh"] == ["together.yaml"]
    assert report["same_states"]
    assert report["errors"] == report["plain_errors"]
    assert report["errors"][0] == f"{folder / 'together.yaml'}:9:1: apiVersion: duplicate key"
