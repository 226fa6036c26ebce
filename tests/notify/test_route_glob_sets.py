"""A route's ``match.name`` glob is read by fnmatch, which negates a set with ``!`` and has no
escapes in a set: ``[^0-9]`` is "``^`` or a digit" there (a shell reads "not a digit") and
``[\\d]`` is "``\\`` or ``d``". Such a route would hear the opposite tasks, or others, silently:
it is refused at its place, with what to write, by ``crontask validate --notifications`` and
by ``crontask run``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load
from tests.helpers import crontask_cli

FILE = """\
receivers:
  - name: ops-hook
    type: slack
    url: https://hooks.example/services/T0/B0/xyz
routes:
  - receiver: ops-hook
    events: [failed]
    match: {name: "backup-*"}
  - receiver: ops-hook
    events: [recovered]
    match: {namespace: ops, name: NAME}
"""
TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)
CARET = (
    "'db-[^0-9]*': [^0-9] is read as '^' or one of 0-9 (a glob negates a set with '!', "
    "not '^'): write [!0-9]"
)
BACKSLASH = (
    "'db-[\\\\d]*': fnmatch has no escapes in a set: [\\d] takes '\\' as itself, one of "
    "the set: write the characters themselves, as [0-9] for a digit"
)


def written(folder: Path, name: str) -> Path:
    path = folder / "notify.yaml"
    path.write_text(FILE.replace("NAME", name))
    path.chmod(0o600)  # no warning of a file others may read
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ('"db-[^0-9]*"', CARET),
        ("'db-[\\d]*'", BACKSLASH),
        ('"[^a]x"', "'[^a]x': [^a] is read as '^' or one of a (a glob negates a set with '!', "),
        ('"x[a^]"', None),  # '^' not first: one of the set, in a glob as in a shell
        ('"x[!^a]"', None),
    ],
    ids=["caret", "backslash", "caret-first", "caret-later", "caret-after-bang"],
)
def test_a_set_fnmatch_reads_otherwise_is_refused_at_its_place(
    tmp_path: Path, name: str, expected: str | None
) -> None:
    path = written(tmp_path, name)
    if expected is None:
        assert load(path).config.routes[1].match.name == name.strip("\"'")
        return
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}:11:35: routes[1].match.name: {expected}")


def test_validate_and_run_both_refuse_a_caret_set(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yaml").write_text(TASK)
    path = written(tmp_path, '"db-[^0-9]*"')
    said = f"{path}:11:35: routes[1].match.name: {CARET}"

    done = crontask_cli("validate", str(tmp_path / "tasks"), "--notifications", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [said]

    argv = ["run", "tasks", "--notifications", str(path), "--listen", "off"]
    run = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.splitlines() == ["crontask: --notifications:", said]
