"""Where the C library's spawn cannot be used (glibc older than 2.34: Ubuntu 20.04, RHEL 8; or
not glibc), commands start through ``subprocess.Popen``: a start that fails there says why as
the C library's path says it. exec answers ENOENT alike for a missing program and for a missing
interpreter of a script that is there, and "command not found" sent users looking for the
wrong file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import process
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun
from tests.faults import disk

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


@pytest.fixture(params=["popen", "libc"])
def spawner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs with the spawner crontask has where glibc is too old, and with the C
    library's where there is one: both say the same."""
    starter = process.Spawner(use_libc=request.param == "libc")
    if request.param == "libc" and not starter.parallel:
        pytest.skip("no C library spawn here")
    monkeypatch.setattr(process, "_spawner", starter)
    yield str(request.param)
    for pool in (starter._pool, starter._waiting_pool):
        if pool is not None:
            pool.shutdown(wait=True)


def run(args: list[str], env: dict[str, str] = ENV, working_dir: str | None = None) -> Outcome:
    return asyncio.run(CommandRun(args, env=env, working_dir=working_dir, timeout=30).run())


@pytest.mark.parametrize(
    ("first_line", "said"),
    [
        pytest.param(
            "#!/no/such/interpreter -e\n",
            "interpreter not found: /no/such/interpreter (the #! line of {script})",
            id="missing",
        ),
        pytest.param(
            "#!/bin/sh\r\n",
            "interpreter not found: '/bin/sh\\r' (the #! line of {script} ends with CR:"
            " Windows line endings?)",
            id="CR LF",
        ),
    ],
)
def test_a_script_whose_interpreter_is_missing_says_so(
    spawner: str, tmp_path: Path, first_line: str, said: str
) -> None:
    script = tmp_path / "crontask-test-script"
    script.write_text(f"{first_line}echo hi\n")
    script.chmod(0o755)
    for args, env, working_dir in [
        ([str(script)], ENV, None),
        ([script.name], {**ENV, "PATH": f"{tmp_path}:{ENV['PATH']}"}, None),  # on the PATH
        ([f"./{script.name}"], ENV, str(tmp_path)),  # from the working directory
    ]:
        outcome = run(args, env, working_dir)
        assert (outcome.reason, outcome.message) == ("StartFailed", said.format(script=args[0]))


def test_a_program_that_is_there_but_cannot_be_run_is_not_reported_missing(
    spawner: str, tmp_path: Path
) -> None:
    interpreter = tmp_path / "interp"
    interpreter.write_text("#!/no/such/interpreter\n")
    interpreter.chmod(0o755)
    script = tmp_path / "script"
    script.write_text(f"#!{interpreter}\n")
    script.chmod(0o755)
    outcome = run([str(script)])
    assert outcome.message == (
        f"cannot start {script}: it is there, but what runs it was not found"
        " (the interpreter of its #! line, or its ELF loader)"
    )


def test_a_missing_program_or_working_directory_is_still_told_as_such(
    spawner: str, tmp_path: Path
) -> None:
    # Named without a "/": the PATH it was looked for on is said, as a command's PATH is
    # crontask's (a service's, often shorter than a login shell's) or the task's own.
    assert run(["crontask-no-such-program"]).message == (
        f"command not found: crontask-no-such-program (looked for in PATH={ENV['PATH']})"
    )
    assert run(["crontask-no-such-program"], {"LC_ALL": "C"}).message == (
        f"command not found: crontask-no-such-program (looked for in {os.defpath}: no PATH)"
    )
    long_path = ":".join(f"/opt/tool-{n}/bin" for n in range(100))
    said = run(["crontask-no-such-program"], {"PATH": long_path}).message
    assert said == (
        f"command not found: crontask-no-such-program (looked for in PATH={long_path[:300]}"
        f"... [{len(long_path) - 300} more characters])"
    )
    assert run([str(tmp_path / "gone")]).message == f"command not found: {tmp_path / 'gone'}"
    missing = tmp_path / "no-such-folder"
    assert run(["true"], working_dir=str(missing)).message == (
        f"cannot use working directory {missing}: No such file or directory"
    )
    # A folder where the program is named: not a program, not "not found" either.
    (tmp_path / "folder").mkdir()
    outcome = run(["folder"], {**ENV, "PATH": str(tmp_path)})
    assert outcome.message == "permission denied: folder is a folder, not a program"


def test_a_permission_denied_says_what_exec_found(spawner: str, tmp_path: Path) -> None:
    """EACCES alone sent users checking a file's mode when they had named a folder, or a
    script they had not made executable: the message says which."""
    (tmp_path / "folder").mkdir()
    assert run([str(tmp_path / "folder")]).message == (
        f"permission denied: {tmp_path / 'folder'} is a folder, not a program"
    )
    assert run(["./folder"], working_dir=str(tmp_path)).message == (
        "permission denied: ./folder is a folder, not a program"
    )
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    assert run([str(script)]).message == (
        f"permission denied: {script} has no execute permission (chmod +x)"
    )
    # A folder on the PATH before a file not executable: the file is what to fix, not the folder.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "script").mkdir()
    searched = f"{tmp_path / 'none'}:{tmp_path / 'bin'}:{tmp_path}"  # the first has no script
    assert run(["script"], {**ENV, "PATH": searched}).message == (
        "permission denied: script has no execute permission (chmod +x)"
    )
    # A folder on the PATH before the program: exec goes on to the program, as a shell does.
    (tmp_path / "true").mkdir()
    assert run(["true"], {**ENV, "PATH": f"{tmp_path}:{ENV['PATH']}"}).status is RunStatus.SUCCEEDED


def test_a_script_whose_interpreter_exec_refuses_names_it(spawner: str, tmp_path: Path) -> None:
    """The script may be run, its #! interpreter not: "permission denied: job.py" sent users
    to the script (a venv's python on a /tmp mounted noexec, one left without its x bit)."""
    interpreter = tmp_path / "python"
    interpreter.write_text("#!/bin/sh\n")
    interpreter.chmod(0o644)
    script = tmp_path / "job.py"
    script.write_text(f"#!{interpreter} -u\n")
    script.chmod(0o755)
    assert run([str(script)]).message == (
        f"permission denied: {script} (its #! interpreter {interpreter} has no execute"
        " permission (chmod +x))"
    )
    interpreter.unlink()
    interpreter.mkdir()
    assert run([str(script)]).message == (
        f"permission denied: {script} (its #! interpreter {interpreter} is a folder, not a program)"
    )


def test_a_script_on_a_file_system_mounted_noexec_says_so(spawner: str, tmp_path: Path) -> None:
    """A hardened /tmp is mounted noexec: the script's mode allows what exec refuses there, and
    "chmod +x" would be the wrong advice."""
    disk.require("full")  # a tmpfs can be mounted here
    mounted = disk.SmallDisk(tmp_path / "noexec", noexec=True)
    try:
        script = mounted.path / "script"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        assert run([str(script)]).message == (
            f"permission denied: {script} is on a file system mounted noexec"
        )
        # A script elsewhere whose interpreter is there (a venv made in a hardened /tmp).
        outside = tmp_path / "job.py"
        outside.write_text(f"#!{script}\n")
        outside.chmod(0o755)
        assert run([str(outside)]).message == (
            f"permission denied: {outside} (its #! interpreter {script} is on a file system"
            " mounted noexec)"
        )
    finally:
        mounted.unmount()


def test_a_script_whose_hash_bang_follows_a_byte_order_mark_says_so(
    spawner: str, tmp_path: Path
) -> None:
    """A script saved as "UTF-8 with BOM" (a Windows editor's default) starts with three bytes
    before its #!, so exec reads no #! line: "a script with a first line such as #!/bin/sh"
    sent users to look at a line that was there."""
    script = tmp_path / "backup.sh"
    script.write_bytes(b"\xef\xbb\xbf#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    said = (
        "cannot start {}: Exec format error (its #! line follows a byte order mark, which exec"
        " does not read past: save it as UTF-8 without BOM)"
    )
    assert run([str(script)]).message == said.format(script)
    assert run(["backup.sh"], {**ENV, "PATH": str(tmp_path)}).message == said.format("backup.sh")
    assert run(["./backup.sh"], working_dir=str(tmp_path)).message == said.format("./backup.sh")


def test_a_path_that_would_not_show_on_one_line_is_quoted(spawner: str) -> None:
    """A run's message is one line: a PATH holding a newline (a task's env written as a YAML
    block scalar) is shown quoted, as an interpreter's name is."""
    path = "/opt/tools/bin\n:/usr/bin"
    said = run(["crontask-no-such-program"], {"PATH": path}).message
    assert said == (
        "command not found: crontask-no-such-program"
        " (looked for in PATH='/opt/tools/bin\\n:/usr/bin')"
    )
    assert "\n" not in said


def test_a_program_or_working_directory_that_would_not_show_on_one_line_is_quoted(
    spawner: str, tmp_path: Path
) -> None:
    """A program or working directory written as a YAML block scalar (``- |``) ends with a
    newline that the message showed as its line break: "command not found: /bin/true" for a
    /bin/true that is there. Shown quoted, as the PATH searched is."""
    said = run(["/bin/true\n"]).message
    assert said == "command not found: '/bin/true\\n'"
    said = run(["true\n"], {"PATH": "/usr/bin:/bin"}).message
    assert said == "command not found: 'true\\n' (looked for in PATH=/usr/bin:/bin)"
    said = run(["true"], working_dir=f"{tmp_path}\n").message
    assert (
        said
        == f"cannot use working directory {str(tmp_path) + chr(10)!r}: No such file or directory"
    )


def test_a_script_without_a_hash_bang_line_says_what_it_lacks(spawner: str, tmp_path: Path) -> None:
    """A shell runs such a file as a script of its own (so cron, through ``sh -c``, did);
    exec does not, and "Exec format error" alone did not say what to change. (A program built
    for another machine gets the same error, hence the same words.)"""
    script = tmp_path / "backup.sh"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    outcome = run([str(script)])
    assert (outcome.reason, outcome.message) == (
        "StartFailed",
        f"cannot start {script}: Exec format error (neither a program for this machine nor a"
        " script with a first line such as #!/bin/sh)",
    )


def test_a_relative_program_not_found_says_the_folder_it_was_looked_for_in(
    spawner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``./backup.sh`` is looked for in the folder the command runs in (its ``workingDir``,
    or crontask's own folder, README: *Commands*): which one is what a "not found" is about."""
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert run(["./gone.sh"]).message == f"command not found: ./gone.sh (looked for in {tmp_path})"
    assert run(["bin/gone"], working_dir="sub").message == (
        f"command not found: bin/gone (looked for in {tmp_path / 'sub'})"
    )
    assert run(["./gone.sh"], working_dir=str(tmp_path / "sub")).message == (
        f"command not found: ./gone.sh (looked for in {tmp_path / 'sub'})"
    )
