"""`crontask validate --notifications FILE` checks the receivers and routes file as
`crontask run --notifications` reads it at start, so that an edited or rotated file can be
checked in CI, or before a restart, without starting the scheduler."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)
GOOD = """receivers:
  - name: ops-hook
    type: generic
    urlFile: hook-url
routes:
  - receiver: ops-hook
    events: [failed, recovered]
"""


def validate(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_good_file_passes_and_its_receivers_are_counted(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yaml").write_text(TASK)
    (tmp_path / "hook-url").write_text("https://hooks.example/crontask\n")
    (tmp_path / "notify.yaml").write_text(GOOD)
    (tmp_path / "notify.yaml").chmod(0o600)

    done = validate(str(tmp_path / "tasks"), "--notifications", str(tmp_path / "notify.yaml"))

    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: 1 file, 1 task, 1 notification receiver\n"


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder every user may reach (pytest's own are private): in /tmp, open to others."""
    made = Path(tempfile.mkdtemp(prefix="crontask-validate-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


def test_what_reading_it_warns_of_is_said_with_the_file_and_passes(public_dir: Path) -> None:
    """A file others may read that holds a receiver's URL (the urlFile here): `run` logs it,
    `validate` says it as one of its warnings. The notifications file names its URL by
    urlFile: it holds none, and is not warned of (tests/notify/test_notify_file_readable_...)."""
    (public_dir / "a.yaml").write_text(TASK)
    (public_dir / "hook-url").write_text("https://hooks.example/crontask\n")
    notify = public_dir / "notify.yaml"
    notify.write_text(GOOD)
    notify.chmod(0o644)

    done = validate(str(public_dir / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 0, done.stderr
    readable = "warning: a secret file others may read: any user of this host can read the "
    assert done.stdout.splitlines() == [  # the urlFile the file names, read at start
        f"{public_dir / 'hook-url'}: {readable}secret (chmod o-r)",
        "ok: 1 file, 1 task, 1 notification receiver, 1 warning",
    ]
    assert done.stderr == ""


def test_each_problem_is_said_at_its_place_and_fails_validation(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yaml").write_text(TASK)
    bad = GOOD.replace("urlFile: hook-url", "url: https://S3cret@hooks.example/x\n    colour: red")
    bad = bad.replace("receiver: ops-hook", "receiver: nobody")
    notify = tmp_path / "notify.yaml"
    notify.write_text(bad)
    notify.chmod(0o600)

    done = validate(str(tmp_path / "tasks"), "--notifications", str(notify))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"{notify}:5:5: ") and "colour" in line for line in lines), lines
    assert any(line.startswith(f"{notify}:") and "nobody" in line for line in lines), lines
    assert "S3cret" not in done.stdout + done.stderr  # a receiver's URL is never repeated
    assert done.stderr.startswith(f"{len(lines)} problems (1 file, 1 task)")


def test_a_missing_file_is_a_problem_named_by_its_path(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TASK)

    done = validate(str(tmp_path / "a.yaml"), "--notifications", str(tmp_path / "none.yaml"))

    assert done.returncode == 1
    assert done.stdout.startswith(f"{tmp_path / 'none.yaml'}: ")
    assert "Traceback" not in done.stderr
