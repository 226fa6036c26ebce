"""spawn() and Child against real processes: exit codes, reaping, the fallback without pidfds,
and what a child does (and does not) get from crontask."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.runner import libc_spawn, process
from reconciler.runner.process import Child, Spawner, spawn, spawn_soon
from tests.helpers import wait_for

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


@pytest.fixture(params=["pidfd", "thread"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with pidfds and with the waitpid thread used where they do not exist."""
    if request.param == "thread":
        monkeypatch.delattr(os, "pidfd_open")
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfds on this platform")
    return str(request.param)


async def _spawn(args: list[str], cwd: str | None = None) -> tuple[Child, int]:
    """Spawned child and the read end of its output pipe."""
    read_fd, write_fd = os.pipe()
    try:
        child = spawn(asyncio.get_running_loop(), args, env=ENV, cwd=cwd, output_fd=write_fd)
    finally:
        os.close(write_fd)
    return child, read_fd


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # no such child any more: it was reaped
    return False


@pytest.mark.parametrize(
    ("script", "code"),
    [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", -signal.SIGTERM)],
)
def test_exit_code_is_reported_and_the_child_reaped(
    exit_watch: str, script: str, code: int
) -> None:
    async def scenario() -> tuple[int, int]:
        child, read_fd = await _spawn(["sh", "-c", script])
        os.close(read_fd)
        return child.pid, await child.exited()

    pid, got = asyncio.run(scenario())
    assert got == code
    assert _reaped(pid)


def test_output_stdin_session_and_working_directory(exit_watch: str, tmp_path: Path) -> None:
    probe = (
        "import os, sys; data = sys.stdin.read(); "
        "print(repr(data), os.getsid(0) == os.getpid(), os.getcwd(), flush=True); "
        "print('to stderr', file=sys.stderr)"
    )

    async def scenario() -> tuple[int, bytes]:
        child, read_fd = await _spawn([sys.executable, "-c", probe], cwd=str(tmp_path))
        code = await child.exited()
        return code, _read_all(read_fd)

    code, output = asyncio.run(scenario())
    assert code == 0
    # stdin is /dev/null, the child leads a session of its own, stderr shares the pipe.
    assert output.decode() == f"'' True {tmp_path}\nto stderr\n"


def test_the_child_inherits_no_descriptor_of_crontask(exit_watch: str) -> None:
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_r, True)  # as a careless library might leave one
    lister = "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"

    async def scenario() -> bytes:
        child, read_fd = await _spawn([sys.executable, "-c", lister])
        await child.exited()
        return _read_all(read_fd)

    try:
        output = asyncio.run(scenario())
    finally:
        os.close(leaked_r)
        os.close(leaked_w)
    fds = [int(fd) for fd in output.decode().strip("[]\n").split(",")]
    # stdin, stdout, stderr, and the one listdir itself had open (the lowest free number).
    assert leaked_r > 3
    assert fds == [0, 1, 2, 3]


def test_a_timed_out_wait_does_not_stop_a_later_one(exit_watch: str) -> None:
    async def scenario() -> int:
        child, read_fd = await _spawn(["sleep", "30"])
        os.close(read_fd)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(child.exited(), 0.05)
        os.kill(child.pid, signal.SIGKILL)
        return await child.exited()

    assert asyncio.run(scenario()) == -signal.SIGKILL


def test_an_abandoned_child_is_still_reaped(exit_watch: str) -> None:
    async def scenario() -> int:
        child, read_fd = await _spawn(["sleep", "30"])
        os.close(read_fd)
        child.abandon()  # the loop is going away before the child ends
        return child.pid

    pid = asyncio.run(scenario())
    os.kill(pid, signal.SIGKILL)
    (reaper,) = [t for t in threading.enumerate() if t.name == f"waitpid {pid}"]
    reaper.join(timeout=10)
    assert not reaper.is_alive()
    assert _reaped(pid)


@pytest.fixture(params=["libc", "popen"])
def start_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Spawner:
    """The spawner through glibc's posix_spawn (where it has what crontask needs) and
    through Popen (elsewhere): both must give the child the same."""
    spawner = Spawner(use_libc=request.param == "libc")
    if request.param == "libc" and not spawner.parallel:
        pytest.skip("no posix_spawn with closefrom/chdir in this C library")
    monkeypatch.setattr(process, "_spawner", spawner)
    return spawner


def test_both_ways_give_the_child_the_same(start_way: Spawner, tmp_path: Path) -> None:
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_r, True)
    probe = (
        "import os, sys; data = sys.stdin.read(); "
        "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd')); "
        "print(repr(data), os.getsid(0) == os.getpid(), os.getcwd(), fds, os.environ['ONLY'])"
    )

    async def run(args: list[str]) -> tuple[int, bytes]:
        child, read_fd = await spawn_soon(
            args, env={"ONLY": "this", "PATH": ENV["PATH"]}, cwd=str(tmp_path)
        )
        return await child.exited(), _read_all(read_fd)

    try:
        code, output = asyncio.run(run([sys.executable, "-c", probe]))
    finally:
        os.close(leaked_r)
        os.close(leaked_w)
    assert code == 0
    assert output.decode() == f"'' True {tmp_path} [0, 1, 2, 3] this\n"
    # The signals ignored and blocked: none blocked; none ignored through the C library, any
    # this process was started ignoring included (tests/e2e/test_command_signals_default.py);
    # through Popen, those it inherits but SIGPIPE (which crontask's Python ignores) and SIGXFSZ.
    # glibc's own signals (32 and 33): Popen's child inherits this process's disposition of
    # them, which is SIG_IGN when an ancestor started it through posix_spawn (GNU make does, so
    # under `make test`); crontask's spawner gives them SIG_DFL always.
    status = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
    _, output = asyncio.run(run(status))
    with subprocess.Popen(status, stdout=subprocess.PIPE, env=ENV) as popen:
        expected = popen.communicate()[0]
    blocked, ignored = _signal_sets(output)
    expected_blocked, expected_ignored = _signal_sets(expected)
    internal = sum(1 << (n - 1) for n in range(32, signal.SIGRTMIN))
    assert blocked == expected_blocked == 0
    if start_way.parallel:
        assert ignored == 0
    else:
        assert ignored & ~internal == expected_ignored & ~internal
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def _signal_sets(status: bytes) -> tuple[int, int]:
    """SigBlk and SigIgn of a ``/proc/PID/status`` excerpt, as bit masks."""
    fields = dict(line.split(":\t") for line in status.decode().splitlines())
    return int(fields["SigBlk"], 16), int(fields["SigIgn"], 16)


def test_both_ways_fail_to_start_alike(start_way: Spawner, tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    cases: list[tuple[list[str], dict[str, str], str | None, type[Exception], object]] = [
        (["no-such-command-for-crontask"], ENV, None, FileNotFoundError, None),
        ([str(script)], ENV, None, PermissionError, None),
        (["true"], ENV, str(tmp_path / "missing"), FileNotFoundError, str(tmp_path / "missing")),
        (["echo", "a\0b"], ENV, None, ValueError, None),
        (["true"], {**ENV, "A=B": "c"}, None, ValueError, None),
    ]
    for args, env, cwd, error, filename in cases:
        read_fd, write_fd = os.pipe()
        with pytest.raises(error) as raised:
            start_way.start(args, env, cwd, write_fd)
        os.close(read_fd)
        os.close(write_fd)
        if filename is not None:
            assert isinstance(raised.value, OSError)
            assert raised.value.filename == filename


def test_a_command_is_found_on_the_path_of_its_environment(
    start_way: Spawner, tmp_path: Path
) -> None:
    empty, holder = tmp_path / "empty", tmp_path / "holder"
    empty.mkdir()
    holder.mkdir()
    tool = holder / "crontask-test-tool"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    env = {"PATH": f"{empty}:{tmp_path / 'missing'}:{holder}"}

    async def scenario() -> bytes:
        child, read_fd = await spawn_soon([tool.name], env=env, cwd=None)
        await child.exited()
        return _read_all(read_fd)

    assert asyncio.run(scenario()) == b"found\n"


def test_a_relative_program_is_found_in_the_working_directory(
    start_way: Spawner, tmp_path: Path
) -> None:
    """``workingDir: /opt/app`` with ``args: ["./run.sh"]``: the child enters the directory
    first, so the program is where it finds it, as with Popen and a shell."""
    app = tmp_path / "app"
    app.mkdir()
    script = app / "run.sh"
    script.write_text("#!/bin/sh\necho ran in $PWD\n")
    script.chmod(0o755)
    tools = app / "tools"
    tools.mkdir()
    (tools / "crontask-test-tool").symlink_to(script)

    async def run(args: list[str], env: dict[str, str]) -> bytes:
        child, read_fd = await spawn_soon(args, env=env, cwd=str(app))
        assert await child.exited() == 0
        return _read_all(read_fd)

    assert asyncio.run(run(["./run.sh"], ENV)) == f"ran in {app}\n".encode()
    # A relative PATH entry is relative to it too.
    env = {**ENV, "PATH": f"tools:{ENV['PATH']}"}
    assert asyncio.run(run(["crontask-test-tool"], env)) == f"ran in {app}\n".encode()


_HANG = """
import ctypes, os, select, sys
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
options = b"fd=%d,rootmode=40000,user_id=0,group_id=0" % fd
if libc.mount(b"crontask-test-hung", sys.argv[1].encode(), b"fuse", 0, options) != 0:
    sys.exit("mount: " + os.strerror(ctypes.get_errno()))
print("mounted", flush=True)
# /dev/fuse is never read: every look into the mount waits until this process ends, when the
# test says so, or after 20 s (were the test's own thread stuck behind a look, it could not).
select.select([sys.stdin], [], [], 20)
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"), reason="a FUSE mount needs root"
)
def test_a_program_looked_up_on_a_hung_mount_holds_up_only_its_own_start(
    tmp_path: Path,
) -> None:
    """A PATH entry on a mount that does not answer (a hung NFS or FUSE server): looking there
    waits, but in the spawner's thread alone; the rest of crontask goes on meanwhile."""
    spawner = Spawner(use_libc=True)
    if not spawner.parallel:
        pytest.skip("no posix_spawn with closefrom/chdir in this C library")
    hung = tmp_path / "hung"
    hung.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HANG, str(hung)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    read_fd, write_fd = os.pipe()
    started: list[int] = []
    try:
        if holder.stdout.readline() != "mounted\n":
            pytest.skip("FUSE cannot be mounted here")
        env = {"PATH": f"{hung}:{ENV['PATH']}"}
        looking = threading.Thread(
            target=lambda: started.append(spawner.start(["true"], env, None, write_fd)[0])
        )
        looking.start()
        # This thread runs Python meanwhile: it could not, were the look holding the GIL.
        deadline = time.monotonic() + 5
        while not _waits_on(hung, looking):
            assert time.monotonic() < deadline, "the look into the mount never began"
            time.sleep(0.01)
        assert looking.is_alive()
        assert not started
    finally:
        holder.communicate(timeout=30)  # its end aborts the mount: the look fails, and goes on
        looking.join(30)
        subprocess.run(["umount", "-l", str(hung)], check=False)
        os.close(read_fd)
        os.close(write_fd)
    (pid,) = started  # found further along the PATH
    assert os.waitpid(pid, 0)[1] == 0


def _waits_on(mount: Path, thread: threading.Thread) -> bool:
    """Whether ``thread`` is in a system call that waits on the FUSE mount (its kernel stack
    says so: it is in the FUSE request path)."""
    task = Path(f"/proc/self/task/{thread.native_id}")
    try:
        return thread.is_alive() and "fuse" in (task / "stack").read_text()
    except OSError:  # gone, or no stack to read: judge by its state instead
        try:
            status = (task / "status").read_text()
        except OSError:
            return False
        return thread.is_alive() and ("State:\tS" in status or "State:\tD" in status)


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_a_start_waiting_for_its_turn_holds_no_descriptor(start_way: Spawner) -> None:
    """Each clone copies every open descriptor into the child: the pipe of a start is made
    only when a thread takes it, so a burst waiting in the queue does not make each spawn
    dearer. A start that fails leaves no descriptor behind."""
    spawner = Spawner(threads=1, use_libc=start_way.parallel)
    gate = threading.Event()
    spawner._executor().submit(gate.wait)  # the only thread is busy
    before = _open_fds()
    futures = [spawner.submit(["true"], ENV, None) for _ in range(20)]
    failed = spawner.submit(["no-such-command-for-crontask"], ENV, None)
    assert _open_fds() == before
    gate.set()
    piped = [future.result(timeout=10) for future in futures]
    with pytest.raises(FileNotFoundError):
        failed.result(timeout=10)
    for (pid, popen), read_fd, _ in piped:
        assert os.read(read_fd, 10) == b""  # the write end is closed here: EOF at the exit
        os.close(read_fd)
        if popen is None:
            os.waitpid(pid, 0)
        else:
            popen.wait()
    assert _open_fds() == before


def _children_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if comm == name and int(rest.split()[1]) == os.getpid():
            found.append(int(entry))
    return found


class _Held:
    """The spawner's starts each wait until ``release`` is set (10 s at most, so that a
    failing test fails rather than hangs); ``started`` lists those that went on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, spawner: Spawner) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.started: list[list[str]] = []
        real_start = spawner.start

        def held(args: Sequence[str], *rest: Any) -> process.Started:
            self.entered.set()
            self.release.wait(10)
            self.started.append(list(args))
            return real_start(args, *rest)

        monkeypatch.setattr(spawner, "start", held)


class _Batch:
    """The spawner's futures (weakly) and their arrivals at the hand-over, so that a test can
    hold the loop until a number of them have arrived."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, spawner: Spawner) -> None:
        monkeypatch.setattr(process, "_spawner", spawner)
        self.futures: list[weakref.ref[concurrent.futures.Future[process.Submitted]]] = []
        self._arrivals = threading.Semaphore(0)
        real_submit, real_arrived = spawner.submit, process._Handoff._arrived

        def submit(*args: Any, **kwargs: Any) -> concurrent.futures.Future[process.Submitted]:
            future = real_submit(*args, **kwargs)
            self.futures.append(weakref.ref(future))
            return future

        def arrived(handoff: process._Handoff, *args: Any) -> None:
            real_arrived(handoff, *args)
            self._arrivals.release()

        monkeypatch.setattr(spawner, "submit", submit)
        monkeypatch.setattr(process._Handoff, "_arrived", arrived)

    def hold_loop_until(self, arrivals: int) -> None:
        """Called on the loop: it is busy (here: blocked) while the starts end."""
        for _ in range(arrivals):
            assert self._arrivals.acquire(timeout=10)

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.futures)


def test_a_start_cancelled_while_spawning_leaves_no_process_descriptor_or_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait is cancelled while a thread is starting the process (too late to take the
    start back), and the loop closed before the start ends: the process is killed and reaped
    once it has started, its pipe closed, and the hand-over, which has no loop to give the
    result to, drops it rather than keep the closed loop."""
    spawner = Spawner(threads=1)
    batch = _Batch(monkeypatch, spawner)
    held = _Held(monkeypatch, spawner)
    before = _open_fds()
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def scenario() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        waiting = asyncio.ensure_future(spawn_soon(["sleep", "30"], env=ENV, cwd=None))
        await asyncio.get_running_loop().run_in_executor(None, held.entered.wait)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())  # closes the loop
    held.release.set()
    batch.hold_loop_until(1)  # the start ended, after its loop
    spawner._executor().shutdown(wait=True)  # the start ran, then its orphan was killed
    assert _open_fds() == before
    wait_for("the orphan to be killed and reaped", lambda: not _children_named("sleep"), 10)
    gc.collect()
    assert loops[0]() is None, "a closed loop was kept by the hand-over"


def test_a_start_cancelled_while_queued_never_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait cancelled while its start still waits for a thread takes the start back."""
    spawner = Spawner(threads=1)
    monkeypatch.setattr(process, "_spawner", spawner)
    held = _Held(monkeypatch, spawner)

    async def scenario() -> int:
        first = asyncio.ensure_future(spawn_soon(["true"], env=ENV, cwd=None))
        await asyncio.get_running_loop().run_in_executor(None, held.entered.wait)
        queued = asyncio.ensure_future(spawn_soon(["sleep", "30"], env=ENV, cwd=None))
        await asyncio.sleep(0)  # submitted, behind the first in the only thread's queue
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        held.release.set()
        child, read_fd = await first
        os.close(read_fd)
        return await child.exited()

    assert asyncio.run(scenario()) == 0
    spawner._executor().shutdown(wait=True)
    assert held.started == [["true"]]


def test_results_that_arrive_together_wake_the_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starts that end while the loop is busy are handed to it with one wake-up, each waiter
    gets its own process, and the hand-over leaves nothing for the garbage collector."""
    starts = 6
    spawner = Spawner(threads=3)
    batch = _Batch(monkeypatch, spawner)

    async def scenario() -> tuple[list[int], set[int], int]:
        loop = asyncio.get_running_loop()
        settles = 0
        real_wake = loop.call_soon_threadsafe

        def wake(callback: Callable[..., object], *args: Any) -> asyncio.Handle:
            nonlocal settles
            settles += getattr(callback, "__name__", "") == "_settle"
            return real_wake(callback, *args)

        monkeypatch.setattr(loop, "call_soon_threadsafe", wake)
        pending = [
            asyncio.ensure_future(spawn_soon(["true"], env=ENV, cwd=None)) for _ in range(starts)
        ]
        await asyncio.sleep(0)  # every start submitted
        batch.hold_loop_until(starts)
        woken = settles
        codes, pids = [], set()
        for child, read_fd in await asyncio.gather(*pending):
            os.close(read_fd)
            pids.add(child.pid)
            codes.append(await child.exited())
        return codes, pids, woken

    gc.disable()
    try:
        codes, pids, woken = asyncio.run(scenario())
        spawner._executor().shutdown(wait=True)
        alive = batch.alive()
    finally:
        gc.enable()
    assert codes == [0] * starts
    assert len(pids) == starts
    assert woken == 1
    assert len(batch.futures) == starts
    assert not alive, "the spawner's futures were kept alive by a reference cycle"


def test_a_start_that_fails_leaves_nothing_for_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error of a start that failed reaches its waiter without a reference cycle (its
    traceback holds the waiting frames, which must not hold the future that holds it)."""
    spawner = Spawner(threads=1)
    batch = _Batch(monkeypatch, spawner)

    async def scenario() -> None:
        with pytest.raises(FileNotFoundError):
            await spawn_soon(["no-such-command-anywhere"], env=ENV, cwd=None)

    gc.disable()
    try:
        asyncio.run(scenario())
        # The pool's thread holds its work item (and the future) until it has taken its next
        # turn: a busy machine can keep it from that after the loop has had the error.
        spawner._executor().shutdown(wait=True)
        alive = batch.alive()
    finally:
        gc.enable()
    assert len(batch.futures) == 1
    assert not alive, "a failed start's future was kept alive by a reference cycle"


def test_a_start_that_raises_oddly_costs_only_its_own_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A start whose error an asyncio future refuses (StopIteration) fails its own wait, and
    the others handed over with it still get their processes."""
    spawner = Spawner(threads=1)  # one thread: the odd start ends first, as submitted
    batch = _Batch(monkeypatch, spawner)
    real_start = spawner.start

    def start(args: Sequence[str], *rest: Any) -> process.Started:
        if args[0] == "odd":
            raise StopIteration
        return real_start(args, *rest)

    monkeypatch.setattr(spawner, "start", start)

    async def scenario() -> tuple[BaseException | None, int]:
        odd = asyncio.ensure_future(spawn_soon(["odd"], env=ENV, cwd=None))
        fine = asyncio.ensure_future(spawn_soon(["true"], env=ENV, cwd=None))
        await asyncio.sleep(0)
        batch.hold_loop_until(2)  # both in one hand-over, the odd one first
        child, read_fd = await asyncio.wait_for(fine, 10)
        os.close(read_fd)
        await asyncio.wait([odd], timeout=10)
        return odd.exception(), await child.exited()

    error, code = asyncio.run(scenario())
    assert isinstance(error, RuntimeError)
    assert "StopIteration" in str(error)
    assert code == 0


def test_starts_waiting_for_their_instant_do_not_hold_up_a_start_due_now() -> None:
    """A burst claimed ahead of its slot waits in threads of its own: a run due now (a manual
    run, a retry) starts before that slot, not behind it."""
    spawner = Spawner(threads=2)

    async def scenario() -> tuple[float, float, list[float]]:
        loop = asyncio.get_running_loop()
        instant = time.monotonic() + 0.8

        async def start(at: float | None) -> float:
            child, read_fd = await spawn_soon(["true"], env=ENV, cwd=None, start_at=at)
            began = time.monotonic()
            os.close(read_fd)
            assert await child.exited() == 0
            return began

        waiting = [loop.create_task(start(instant)) for _ in range(spawner.threads + 2)]
        await asyncio.sleep(0.05)  # the waiting starts hold every thread of their pool
        now = await start(None)
        return instant, now, list(await asyncio.gather(*waiting))

    previous = process._spawner
    process._spawner = spawner
    try:
        instant, now, later = asyncio.run(scenario())
    finally:
        process._spawner = previous
    assert now < instant
    assert min(later) >= instant


def test_a_start_whose_thread_could_not_be_started_never_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Under a pids limit the pool cannot start a thread for a start it has queued already:
    its run is recorded as failed, so no later thread may run it."""
    spawner = Spawner(threads=2)
    real = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def start(thread: threading.Thread) -> None:
        if failures:
            raise failures.pop()
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError):
        spawner.submit(["touch", str(tmp_path / "refused")], ENV, None)
    (pid, _), read_fd, _ = spawner.submit(["touch", str(tmp_path / "later")], ENV, None).result(10)
    os.close(read_fd)
    os.waitpid(pid, 0)
    spawner._executor().shutdown(wait=True)  # every start it had queued has been taken
    assert (tmp_path / "later").exists()
    assert not (tmp_path / "refused").exists()


def test_the_c_library_pipe_and_close_are_those_of_os() -> None:
    """The spawner's pipe and close go through the C library, holding the GIL: the same
    close-on-exec pipe as ``os.pipe()``, and a failing close raises as ``os.close`` does."""
    libc = libc_spawn.load()
    if libc is None:
        pytest.skip("no C library spawn here")
    read_fd, write_fd = libc.pipe()
    assert not os.get_inheritable(read_fd)
    assert not os.get_inheritable(write_fd)
    os.write(write_fd, b"x")
    assert os.read(read_fd, 1) == b"x"
    libc.close(write_fd)
    assert os.read(read_fd, 1) == b""  # the only write end is closed
    libc.close(read_fd)
    with pytest.raises(OSError, match="Bad file descriptor") as raised:
        libc.close(read_fd)
    assert raised.value.errno == errno.EBADF


def test_the_programs_found_on_the_path_are_remembered_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each task's PATH and folder make their own entry: tasks that come and go must not grow
    what the spawner remembers without end."""
    libc = libc_spawn.load()
    if libc is None:
        pytest.skip("no C library spawn here")
    # A bound of 32, not the 1024 crontask keeps: the size is not what is tested, and each
    # entry is a real process started (1034 of them took 12 s on two busy cores).
    monkeypatch.setattr(libc_spawn, "_FOUND_MAX", 32)
    step = libc_spawn._TRUSTED_FOR / 10  # an entry outlives the next 10 found, no more
    now = [0.0]
    libc._clock = lambda: now[0]
    pids = []
    for n in range(libc_spawn._FOUND_MAX + 10):
        env = {"PATH": f"/nonexistent-{n}:{ENV['PATH']}"}
        read_fd, write_fd = os.pipe()
        pids.append(libc.spawn(["true"], env, None, write_fd))
        os.close(read_fd)
        os.close(write_fd)
        now[0] += step  # the first ones expire as the later ones are found
    for pid in pids:
        os.waitpid(pid, 0)
    assert 0 < len(libc._found) <= libc_spawn._FOUND_MAX
