"""CommandRun against real processes (/bin/sh, sleep, env, python): no mocks.

Process-group behaviour is checked on grandchildren whose pid the command writes to a file. A
process counts as gone once it no longer exists *or* is a zombie: where PID 1 does not reap
orphans (containers without an init) a killed grandchild stays a zombie, which is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import command as command_module
from reconciler.runner import group
from reconciler.runner import process as process_module
from reconciler.runner.base import TOO_LATE, Outcome
from reconciler.runner.command import CommandRun

T = TypeVar("T")

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


def arun(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def run(args: list[str], **kwargs: Any) -> Outcome:
    kwargs.setdefault("env", ENV)
    return arun(CommandRun(args, **kwargs).run())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat_line[stat_line.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def gone_within(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def read_pid(path: Path, seconds: float = 5.0) -> int:
    """The pid a command writes to ``path`` (with a trailing newline, so a partial write is not
    mistaken for the whole)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if text.endswith("\n"):
            return int(text)
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written within {seconds}s")
        await asyncio.sleep(0.01)


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids to SIGKILL at teardown, so a failing test does not leave sleep 300 behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- exit status ----------------------------------------------------------------------------


def test_exit_zero_succeeds() -> None:
    outcome = run(["sh", "-c", "echo hello"])
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.exit_code == 0
    assert outcome.reason is None
    assert outcome.message == "exited with status 0"
    assert outcome.output == "hello\n"
    assert outcome.pid is not None
    assert outcome.pid > 1


def test_nonzero_exit_fails() -> None:
    outcome = run(["sh", "-c", "echo oops; exit 3"])
    assert outcome.status is RunStatus.FAILED
    assert outcome.exit_code == 3
    assert outcome.reason == "NonZeroExit"
    assert outcome.message == "exited with status 3"
    assert outcome.output == "oops\n"


def test_death_by_signal_uses_shell_convention() -> None:
    outcome = run(["sh", "-c", "kill -KILL $$"])
    assert outcome.status is RunStatus.FAILED
    assert outcome.exit_code == 128 + signal.SIGKILL
    assert outcome.reason == "Signaled"
    assert outcome.message == "killed by signal SIGKILL"


def test_started_event_and_pid() -> None:
    async def scenario() -> None:
        command = CommandRun(["sh", "-c", "exit 0"], env=ENV)
        assert command.pid is None
        assert not command.started.is_set()
        outcome = await command.run()
        assert command.started.is_set()
        assert command.pid == outcome.pid is not None

    arun(scenario())


def test_run_only_once() -> None:
    async def scenario() -> None:
        command = CommandRun(["true"], env=ENV)
        await command.run()
        with pytest.raises(RuntimeError):
            await command.run()

    arun(scenario())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"args": []},
        {"args": "echo"},
        {"args": ["true"], "timeout": 0},
        {"args": ["true"], "kill_grace": -1},
        {"args": ["true"], "output_limit": -1},
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        CommandRun(env=ENV, **kwargs)


def test_many_runs_concurrently() -> None:
    async def scenario() -> list[Outcome]:
        commands = [CommandRun(["sh", "-c", f"exit {i % 3}"], env=ENV) for i in range(40)]
        return await asyncio.gather(*(c.run() for c in commands))

    outcomes = arun(scenario())
    assert [o.exit_code for o in outcomes] == [i % 3 for i in range(40)]


# --- environment, working directory, stdin ----------------------------------------------------


def test_env_is_passed_exactly() -> None:
    env = {"PATH": ENV["PATH"], "FOO": "bar baz", "EMPTY": ""}
    outcome = run(["env"], env=env)
    assert outcome.status is RunStatus.SUCCEEDED
    assert sorted(outcome.output.splitlines()) == ["EMPTY=", "FOO=bar baz", f"PATH={ENV['PATH']}"]


def test_command_is_looked_up_on_the_env_path(tmp_path: Path) -> None:
    tool = tmp_path / "crontask-test-tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    outcome = run([tool.name], env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == "tool ran\n"

    # Not on the PATH given: not found, even though it exists.
    outcome = run([tool.name], env={"PATH": "/usr/bin:/bin"})
    assert outcome.reason == "StartFailed"


def test_working_dir(tmp_path: Path) -> None:
    outcome = run(["sh", "-c", "pwd -P"], working_dir=str(tmp_path))
    assert outcome.output == f"{tmp_path.resolve()}\n"


def test_a_relative_working_dir_and_program_are_taken_from_crontasks_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the README says: from the folder crontask runs in, not from a task file's."""
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "here.sh"
    script.write_text("#!/bin/sh\npwd -P\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    outcome = run(["./here.sh"], working_dir="sub")
    assert outcome.output == f"{(tmp_path / 'sub').resolve()}\n"


def test_stdin_is_dev_null() -> None:
    outcome = run(["sh", "-c", "cat; echo done"], timeout=5)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == "done\n"


# --- output -----------------------------------------------------------------------------------


def test_stdout_and_stderr_interleave_in_order() -> None:
    script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2; echo out3"
    outcome = run(["sh", "-c", script])
    assert outcome.output == "out1\nerr1\nout2\nerr2\nout3\n"


def test_output_keeps_only_the_tail() -> None:
    # 131072 lines of 8 bytes: 1 MiB, numbered so we can tell which part was kept.
    script = (
        "import sys\n"
        "sys.stdout.buffer.write(b''.join(b'%07d\\n' % i for i in range(131072)))\n"
        "sys.stderr.write('done\\n')\n"
    )
    outcome = run([sys.executable, "-c", script])
    assert outcome.status is RunStatus.SUCCEEDED
    kept = "".join(f"{i:07d}\n" for i in range(131072 - 8192, 131072))[5:] + "done\n"
    assert len(kept) == 64 * 1024
    assert outcome.output == f"[... {1024 * 1024 + 5 - 64 * 1024} bytes truncated ...]\n{kept}"


def test_output_tail_does_not_start_inside_a_utf8_sequence() -> None:
    outcome = run(["printf", "%s", "ééé"], output_limit=5)
    # The last 5 bytes start with the second byte of an 'é': it is dropped with the rest.
    assert outcome.output == "[... 2 bytes truncated ...]\néé"


def test_zero_output_limit() -> None:
    outcome = run(["echo", "hi"], output_limit=0)
    assert outcome.output == "[... 3 bytes truncated ...]\n"


# --- timeout ----------------------------------------------------------------------------------


def test_timeout_terminates_the_whole_group(tmp_path: Path, strays: list[int]) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> tuple[Outcome, int]:
        command = CommandRun(
            ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"],
            env=ENV,
            timeout=0.5,
            kill_grace=0.5,
        )
        task = asyncio.create_task(command.run())
        grandchild = await read_pid(pidfile)
        strays.append(grandchild)
        return await task, grandchild

    started = time.monotonic()
    outcome, grandchild = arun(scenario())
    elapsed = time.monotonic() - started
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.reason == "DeadlineExceeded"
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert outcome.message == "timed out after 0.5s; process group terminated"
    assert gone_within(grandchild)
    assert elapsed < 3


@pytest.mark.parametrize(
    ("shell", "script"),
    [
        # GNU timeout puts itself (and its command) in a process group of its own.
        ("sh", "timeout 300 sh -c 'echo $$ > {pidfile}; exec sleep 300'; echo finished"),
        # A shell with job control gives each background job a group of its own (bash: dash
        # turns job control off without a terminal).
        ("bash", "set -m; sh -c 'echo $$ > {pidfile}; exec sleep 300' & wait"),
    ],
)
def test_a_timeout_terminates_what_left_the_group_but_not_the_session(
    tmp_path: Path, strays: list[int], shell: str, script: str
) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> tuple[Outcome, int]:
        command = CommandRun(
            [shell, "-c", script.format(pidfile=pidfile)], env=ENV, timeout=0.5, kill_grace=0.5
        )
        task = asyncio.create_task(command.run())
        grandchild = await read_pid(pidfile)
        strays.append(grandchild)
        assert os.getpgid(grandchild) != os.getsid(grandchild)  # it left the run's group
        return await task, grandchild

    outcome, grandchild = arun(scenario())
    assert outcome.status is RunStatus.TIMED_OUT
    assert gone_within(grandchild)


def test_term_ignoring_group_is_killed_after_grace(tmp_path: Path, strays: list[int]) -> None:
    pidfile = tmp_path / "pid"
    # Ignored signals stay ignored across fork and exec: both sh and sleep ignore SIGTERM.
    script = f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait"

    async def scenario() -> tuple[Outcome, int]:
        command = CommandRun(["sh", "-c", script], env=ENV, timeout=0.5, kill_grace=0.5)
        task = asyncio.create_task(command.run())
        grandchild = await read_pid(pidfile)
        strays.append(grandchild)
        return await task, grandchild

    started = time.monotonic()
    outcome, grandchild = arun(scenario())
    elapsed = time.monotonic() - started
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.exit_code == 128 + signal.SIGKILL
    assert outcome.message == (
        "timed out after 0.5s; process group terminated (SIGKILL after 0.5s grace period)"
    )
    assert gone_within(grandchild)
    assert 1.0 <= elapsed < 4


def test_no_kill_grace_wait_when_term_is_obeyed() -> None:
    started = time.monotonic()
    outcome = run(["sleep", "300"], timeout=0.3, kill_grace=30)
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5


# --- the run owns its group -------------------------------------------------------------------


def test_leftovers_are_terminated_and_do_not_hang_run(tmp_path: Path, strays: list[int]) -> None:
    pidfile = tmp_path / "pid"
    # The background sleep keeps the output pipe open after its parent has exited.
    outcome = run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo bye"], kill_grace=0.5)
    grandchild = int(pidfile.read_text())
    strays.append(grandchild)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == "bye\n"
    assert outcome.message == (
        "exited with status 0; processes it left in its group were terminated"
    )
    assert gone_within(grandchild)


def test_process_escaping_the_group_does_not_hang_run(tmp_path: Path, strays: list[int]) -> None:
    pidfile = tmp_path / "pid"
    # setsid puts sleep in a session of its own, out of the run's reach, but it still holds the
    # output pipe. The main process exits only once the escape is complete.
    script = (
        f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & "
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; echo bye"
    )
    started = time.monotonic()
    outcome = run(["sh", "-c", script], kill_grace=0.5)
    elapsed = time.monotonic() - started
    escaped = int(pidfile.read_text())
    strays.append(escaped)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == "bye\n"
    assert elapsed < 4
    assert alive(escaped)  # not ours to kill: it left the group


# --- stop() and cancellation -------------------------------------------------------------------


def test_stop_while_running(tmp_path: Path, strays: list[int]) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> tuple[Outcome, int]:
        command = CommandRun(
            ["sh", "-c", f"echo before; sleep 300 & echo $! > {pidfile}; wait"],
            env=ENV,
            kill_grace=0.5,
        )
        task = asyncio.create_task(command.run())
        await command.started.wait()
        grandchild = await read_pid(pidfile)
        strays.append(grandchild)
        command.stop("Replaced")
        command.stop("Shutdown")  # the first reason wins
        return await task, grandchild

    outcome, grandchild = arun(scenario())
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Replaced"
    assert outcome.message == "stopped: Replaced"
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert outcome.output == "before\n"
    assert gone_within(grandchild)


def test_runs_stopped_together_share_their_looks_at_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shutdown stops every run at once, on the loop: each looks at its session through one
    shared census of /proc, not a scan of its own (which costs the loop (runs x processes))."""
    scans = 0
    real = group._scan_live_groups

    def counted() -> Any:
        nonlocal scans
        scans += 1
        return real()

    monkeypatch.setattr(group, "_scan_live_groups", counted)

    async def scenario() -> list[Outcome]:
        commands = [CommandRun(["sleep", "300"], env=ENV, kill_grace=5) for _ in range(20)]
        tasks = [asyncio.create_task(c.run()) for c in commands]
        for command in commands:
            await command.started.wait()
        for command in commands:
            command.stop("Shutdown")
        return await asyncio.gather(*tasks)

    outcomes = arun(scenario())
    assert {o.exit_code for o in outcomes} == {128 + signal.SIGTERM}
    assert scans < len(outcomes) // 2  # one per poll round that needs it, not one per run


def test_stop_before_run_never_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    async def scenario() -> tuple[CommandRun, Outcome]:
        command = CommandRun(["touch", str(marker)], env=ENV)
        command.stop("Replaced")
        return command, await command.run()

    command, outcome = arun(scenario())
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Replaced"
    assert outcome.exit_code is None
    assert outcome.pid is None
    assert command.started.is_set()
    assert not marker.exists()


def test_stop_while_spawning_terminates_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped while the spawner's thread is starting it (too late to take the start back):
    the process is terminated as soon as it exists."""
    spawner = process_module.Spawner()
    entered, release = threading.Event(), threading.Event()
    real_start = spawner.start

    def start(*args: Any) -> process_module.Started:
        entered.set()
        release.wait(10)
        return real_start(*args)

    monkeypatch.setattr(spawner, "start", start)
    monkeypatch.setattr(process_module, "_spawner", spawner)

    async def scenario() -> Outcome:
        command = CommandRun(["sleep", "300"], env=ENV, kill_grace=5)
        task = asyncio.create_task(command.run())
        assert await asyncio.to_thread(entered.wait, 5)
        command.stop("Shutdown")
        release.set()
        return await task

    outcome = arun(scenario())
    assert outcome.reason == "Shutdown"
    assert outcome.pid is not None
    assert outcome.exit_code == 128 + signal.SIGTERM


def test_stop_after_finish_is_a_noop() -> None:
    async def scenario() -> None:
        command = CommandRun(["true"], env=ENV)
        outcome = await command.run()
        command.stop("Replaced")
        assert outcome.status is RunStatus.SUCCEEDED

    arun(scenario())


def test_cancellation_terminates_the_group(tmp_path: Path, strays: list[int]) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> tuple[int, int]:
        command = CommandRun(
            ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], env=ENV, kill_grace=0.5
        )
        task = asyncio.create_task(command.run())
        grandchild = await read_pid(pidfile)
        strays.append(grandchild)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert command.pid is not None
        # run() only lets the cancellation through once the group is gone.
        assert not alive(grandchild)
        return command.pid, grandchild

    main, grandchild = arun(scenario())
    assert gone_within(main)
    assert gone_within(grandchild)


# --- start failures ----------------------------------------------------------------------------


def test_missing_binary_is_a_start_failure() -> None:
    async def scenario() -> tuple[CommandRun, Outcome]:
        command = CommandRun(["no-such-command-for-crontask"], env=ENV)
        return command, await command.run()

    command, outcome = arun(scenario())
    assert outcome == Outcome(
        status=RunStatus.FAILED,
        exit_code=None,
        reason="StartFailed",
        message="command not found: no-such-command-for-crontask"
        f" (looked for in PATH={ENV['PATH']})",
        output="",
        pid=None,
    )
    assert command.started.is_set()


def test_bad_working_dir_is_a_start_failure(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    outcome = run(["true"], working_dir=str(missing))
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "StartFailed"
    assert outcome.exit_code is None
    assert outcome.message == f"cannot use working directory {missing}: No such file or directory"


def test_non_executable_file_is_a_start_failure(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    outcome = run([str(script)])
    assert outcome.reason == "StartFailed"
    assert outcome.message == f"permission denied: {script} has no execute permission (chmod +x)"


# A script whose interpreter is missing, or that is there but cannot be run: with each
# spawner, in test_start_failures_without_libc.


def test_a_spawner_thread_that_cannot_start_is_a_start_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a pids limit the spawner's thread may not start: the run is recorded as one that
    could not start, saying why, like any other, and crontask goes on."""

    async def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(command_module, "spawn_soon", no_thread)
    outcome = run(["true"])
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "StartFailed"
    assert outcome.message == "cannot start 'true': can't start new thread"


def test_null_byte_in_args_is_a_start_failure() -> None:
    outcome = run(["echo", "a\0b"])
    assert outcome.reason == "StartFailed"
    assert outcome.exit_code is None


_NO_DESCRIPTOR_LEFT = """
import asyncio, os, resource
from reconciler.runner.command import CommandRun

async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass  # every descriptor this process may open is taken: the run's pipe cannot be made
    outcome = await CommandRun(["true"], env={"PATH": "/usr/bin:/bin"}).run()
    for fd in held:
        os.close(fd)
    print(outcome.status.value, outcome.reason, outcome.message, sep="|")

asyncio.run(main())
"""


def test_no_descriptor_left_for_the_pipe_is_a_start_failure() -> None:
    """The pipe is made just before the spawn: when the process has no descriptor left, the
    run ends as a start failure that says why, and nothing is started."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_DESCRIPTOR_LEFT],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "failed|StartFailed|cannot start true: Too many open files"


# -- a start at an instant ahead (a run claimed before its slot) ------------------------------


def test_a_start_ahead_waits_for_its_instant_in_the_spawner() -> None:
    """The process starts at the instant given, not when run() is called: what it reads from
    the wall clock first thing is not earlier. The run hears when it started, once."""

    async def scenario() -> tuple[float, Outcome, list[float], float]:
        command = CommandRun(["date", "+%s.%N"], env=ENV)
        wall, now = time.time(), time.monotonic()
        began: list[float] = []
        command.start_at(now + 0.3, began.append)
        outcome = await command.run()
        return wall + 0.3, outcome, [at - now for at in began], time.monotonic() - now

    due, outcome, began, ended = arun(scenario())
    assert outcome.status is RunStatus.SUCCEEDED
    assert float(outcome.output) >= due - 0.002  # the clocks are read microseconds apart
    (at,) = began
    assert 0.3 <= at <= ended  # after the instant, and before the run's end was seen


def test_a_start_ahead_that_is_late_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process starts late (the kernel slow to clone): the run hears the instant it really
    started, not the one it was due."""
    slow = process_module.Spawner()
    fast_start = slow.start

    def start(*args: Any) -> process_module.Started:
        time.sleep(0.25)
        return fast_start(*args)

    monkeypatch.setattr(slow, "start", start)
    monkeypatch.setattr(process_module, "_spawner", slow)

    async def scenario() -> tuple[float, list[float], Outcome]:
        began: list[float] = []
        due = time.monotonic() + 0.1
        command = CommandRun(["true"], env=ENV)
        command.start_at(due, began.append)
        return due, began, await command.run()

    due, began, outcome = arun(scenario())
    assert outcome.status is RunStatus.SUCCEEDED
    (at,) = began
    assert at >= due + 0.25


def test_a_run_stopped_while_its_start_waits_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "started"

    async def scenario() -> tuple[Outcome, list[float]]:
        command = CommandRun(["touch", str(marker)], env=ENV)
        began: list[float] = []
        command.start_at(time.monotonic() + 0.5, began.append)
        task = asyncio.create_task(command.run())
        await asyncio.sleep(0.1)  # the spawner's thread is waiting for the instant
        command.stop("TaskRemoved")
        return await task, began

    outcome, began = arun(scenario())
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "TaskRemoved"
    assert outcome.message == "stopped before it started: TaskRemoved"
    assert outcome.pid is None
    # The outcome came back once the spawner's thread had reached the instant and withdrawn.
    assert not marker.exists()
    assert began == []  # nothing began


def test_a_start_ahead_reached_past_its_latest_instant_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process was frozen (SIGSTOP) across the instant: the spawner's thread gets to the
    start well after it, past ``until``, and starts nothing; the run says so (``TOO_LATE``),
    for the dispatcher to look again before it starts anything."""
    marker = tmp_path / "started"
    frozen = process_module.Spawner()
    submit = frozen.submit

    def late_submit(*args: Any, wanted: Callable[[], bool] | None = None, **kw: Any) -> Any:
        def asked() -> bool:
            time.sleep(0.3)  # frozen between the wait for the instant and the start
            assert wanted is not None
            return wanted()

        return submit(*args, wanted=asked, **kw)

    monkeypatch.setattr(frozen, "submit", late_submit)
    monkeypatch.setattr(process_module, "_spawner", frozen)

    async def scenario() -> tuple[Outcome, list[float]]:
        command = CommandRun(["touch", str(marker)], env=ENV)
        began: list[float] = []
        now = time.monotonic()
        command.start_at(now + 0.05, began.append, now + 0.15)
        return await command.run(), began

    outcome, began = arun(scenario())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, TOO_LATE)
    assert outcome.pid is None
    assert not marker.exists()
    assert began == []


def test_a_start_at_once_says_when_its_process_started() -> None:
    async def scenario() -> tuple[float, list[float], float, Outcome]:
        command = CommandRun(["true"], env=ENV)
        began: list[float] = []
        before = time.monotonic()
        command.start_at(None, began.append)
        outcome = await command.run()
        return before, began, time.monotonic(), outcome

    before, began, after, outcome = arun(scenario())
    assert outcome.status is RunStatus.SUCCEEDED
    (at,) = began
    assert before <= at <= after


def test_a_failing_start_report_leaves_the_process_supervised(tmp_path: Path) -> None:
    """The dispatcher's callback raising must not leave a process nobody waits for."""
    marker = tmp_path / "ended"

    def began(at: float) -> None:
        raise RuntimeError("a listener's bug")

    async def scenario() -> Outcome:
        command = CommandRun(["sh", "-c", f"sleep 0.2; touch {marker}"], env=ENV)
        command.start_at(None, began)
        return await command.run()

    outcome = arun(scenario())
    assert outcome.status is RunStatus.SUCCEEDED  # waited for, to its end
    assert marker.exists()
    assert outcome.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(outcome.pid, 0)  # reaped
