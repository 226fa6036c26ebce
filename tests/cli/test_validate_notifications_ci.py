"""`crontask validate --notifications FILE` in CI, where the receivers' files are not: the
file README shows names ``/etc/crontask/hook-url``, which exists only where crontask runs. A
``urlFile`` or ``secretFile`` that cannot be read here is a warning at its place (exit 0 when
nothing else is wrong), while ``crontask run`` still refuses to start without it; a file that
is there but holds no usable URL stays a problem of both. Real subprocesses."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import crontask_cli

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)
# README's example, with its absolute paths under a folder this test makes sure is not there.
CI = """\
receivers:
  - name: ops-hook
    type: generic-hmac
    urlFile: {etc}/hook-url
    secretFile: {etc}/hook-secret
routes:
  - receiver: ops-hook
    events: [failed, recovered]
"""
NOT_THERE = "cannot read: No such file or directory"
NOT_CHECKED = "not checked (crontask run refuses to start if it cannot read it)"


def setup(folder: Path, text: str) -> Path:
    (folder / "a.yaml").write_text(TASK)
    notify = folder / "ci.yaml"
    notify.write_text(text)
    notify.chmod(0o600)  # no warning of a file others may read
    return notify


def test_readme_example_passes_validate_with_a_warning_per_file_it_cannot_read(
    tmp_path: Path,
) -> None:
    etc = tmp_path / "etc-crontask"  # not made: as /etc/crontask on a CI runner
    notify = setup(tmp_path, CI.format(etc=etc))

    done = crontask_cli("validate", str(tmp_path / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{notify}:4:14: warning: receivers[0].urlFile: {etc}/hook-url: {NOT_THERE}: {NOT_CHECKED}",
        f"{notify}:5:17: warning: receivers[0].secretFile: {etc}/hook-secret: {NOT_THERE}: "
        f"{NOT_CHECKED}",
        "ok: 1 file, 1 task, 1 notification receiver, 2 warnings",
    ]
    assert done.stderr == ""


def test_run_still_refuses_to_start_on_the_same_file(tmp_path: Path) -> None:
    etc = tmp_path / "etc-crontask"
    notify = setup(tmp_path, CI.format(etc=etc))
    (tmp_path / "tasks").mkdir()

    done = crontask_cli(
        "run", "tasks", "--notifications", str(notify), "--listen", "off", cwd=tmp_path
    )

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "crontask: --notifications:",
        f"{notify}:4:14: receivers[0].urlFile: {etc}/hook-url: {NOT_THERE}",
        f"{notify}:5:17: receivers[0].secretFile: {etc}/hook-secret: {NOT_THERE}",
    ]


def test_a_path_through_a_file_cannot_be_read_either_and_is_a_warning(tmp_path: Path) -> None:
    """Not only a missing file: one whose folder is a file (ENOTDIR), which even root cannot
    read, as a folder another user keeps closed (EACCES) is for crontask's own user."""
    (tmp_path / "etc-crontask").write_text("a file, not a folder\n")
    notify = setup(tmp_path, CI.format(etc=tmp_path / "etc-crontask"))

    done = crontask_cli("validate", str(tmp_path / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(": warning: ")[0] for line in lines[:2]] == [
        f"{notify}:4:14",
        f"{notify}:5:17",
    ]
    assert all("cannot read: Not a directory" in line for line in lines[:2]), lines


def test_a_url_file_that_is_there_with_no_usable_url_still_fails_validate(tmp_path: Path) -> None:
    etc = tmp_path / "etc-crontask"
    etc.mkdir()
    (etc / "hook-url").write_text("https://${HOOK_HOST}/S3cret-path\n")
    (etc / "hook-url").chmod(0o600)
    notify = setup(tmp_path, CI.format(etc=etc))

    done = crontask_cli("validate", str(tmp_path / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"{notify}:4:14: receivers[0].urlFile: environment variables are not expanded here: "
        "the file must hold the URL itself"
    )
    assert lines[1].startswith(f"{notify}:5:17: warning: receivers[0].secretFile: ")  # not there
    assert "S3cret" not in done.stdout + done.stderr
    assert done.stderr.startswith("1 problem (1 file, 1 task, 1 warning)")


def test_a_file_it_cannot_read_is_a_warning_beside_the_problems_of_a_broken_file(
    tmp_path: Path,
) -> None:
    """The other fields' problems are said in the same round, and only they fail it."""
    etc = tmp_path / "etc-crontask"
    broken = CI.format(etc=etc).replace("[failed, recovered]", "[failed, boom]")
    notify = setup(tmp_path, broken + "  - receiver: nobody\n    events: [failed]\n")

    done = crontask_cli("validate", str(tmp_path / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    problems = [line for line in lines if ": warning: " not in line]
    warnings = [line for line in lines if ": warning: " in line]
    assert [line.split(": ")[0] for line in problems] == [f"{notify}:8:22", f"{notify}:9:15"]
    assert [line.split(": warning: ")[0] for line in warnings] == [
        f"{notify}:4:14",
        f"{notify}:5:17",
    ]
    assert done.stderr.startswith("2 problems (1 file, 1 task, 2 warnings)")
