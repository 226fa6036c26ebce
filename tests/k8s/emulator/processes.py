"""Containers as local processes: one process group per container run, its output (stdout and
stderr interleaved, as the kubelet's log file has them) captured line by line with the time
each line was read, and its end reported once the log is complete."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

# The kubelet rotates a container's log at 10 MiB; the emulator keeps the last 4 MiB of a run.
LOG_LIMIT = 4 * 1024 * 1024
_DRAIN_SECONDS = 1.0  # how long to wait for output held open by a process that left the group


def rfc3339_nano(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


class LogBuffer:
    """The log of one container run: complete lines (and a partial last line) with their
    times, the oldest dropped beyond ``limit`` bytes. Thread-safe; followers wait on ``cond``."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self.cond = threading.Condition()
        self.limit = limit
        self.lines: deque[tuple[datetime, bytes]] = deque()
        self.first = 0  # absolute index of lines[0], so followers survive trimming
        self.partial = b""
        self.partial_at = datetime.now(UTC)
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        now = datetime.now(UTC)
        with self.cond:
            if self.closed:
                return
            if not self.partial:
                self.partial_at = now
            pieces = (self.partial + data).split(b"\n")
            self.partial = pieces.pop()
            for piece in pieces:
                self.lines.append((self.partial_at, piece + b"\n"))
                self.size += len(piece) + 1
                self.partial_at = now
            while self.size > self.limit and self.lines:
                self.size -= len(self.lines.popleft()[1])
                self.first += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            if self.partial:
                self.lines.append((self.partial_at, self.partial))
                self.size += len(self.partial)
                self.partial = b""
            self.closed = True
            self.cond.notify_all()

    def entries(self) -> list[tuple[datetime, bytes]]:
        with self.cond:
            found = list(self.lines)
            if self.partial:
                found.append((self.partial_at, self.partial))
            return found

    def follow(self, start: int, stop: threading.Event) -> Iterator[list[tuple[datetime, bytes]]]:
        """Batches of complete lines from absolute index ``start`` on, until the run ends (the
        partial last line comes at the end) or ``stop`` is set."""
        position = start

        def ready() -> bool:
            return self.closed or self.first + len(self.lines) > position or stop.is_set()

        while True:
            with self.cond:
                self.cond.wait_for(ready, timeout=0.2)
                position = max(position, self.first)
                batch = list(self.lines)[position - self.first :]
                position += len(batch)
                done = self.closed or stop.is_set()
            if batch:
                yield batch
            if done:
                return

    def entries_text(self) -> str:
        return b"".join(line for _, line in self.entries()).decode(errors="replace")

    @property
    def end(self) -> int:
        with self.cond:
            return self.first + len(self.lines)


def exit_code(returncode: int) -> int:
    """A process's return code as a container's exit code (128 + signal when killed)."""
    return 128 - returncode if returncode < 0 else returncode


class ContainerProcess:
    """One run of a container: ``argv`` in its own session and process group, output captured
    in ``log``. ``on_exit`` is called (from a helper thread) once the run has ended, every
    process of its group is gone and its log is complete."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        on_exit: Callable[[], None],
    ) -> None:
        self.argv, self.env, self.cwd = argv, env, cwd
        self.log = LogBuffer()
        self.on_exit = on_exit
        self.started_at = datetime.now(UTC)
        self.finished_at: datetime | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.message = ""
        self.oom_killed = False
        self.done = threading.Event()
        self.pid = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._kill_timer: threading.Timer | None = None

    def start(self) -> bool:
        """Start the process; False (the run ended as ``StartError``, exit code 128, as a
        runtime that cannot exec reports it) when it could not be started."""
        try:
            self._proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as e:
            why = "executable file not found in $PATH" if isinstance(e, FileNotFoundError) else e
            self._finish(128, "StartError", f'exec: "{self.argv[0]}": {why}')
            return False
        self.pid = self._proc.pid
        reader = threading.Thread(target=self._read, name=f"log-{self.pid}", daemon=True)
        reader.start()
        threading.Thread(
            target=self._wait, args=(reader,), name=f"wait-{self.pid}", daemon=True
        ).start()
        return True

    @property
    def running(self) -> bool:
        return self._proc is not None and not self.done.is_set()

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        with contextlib.suppress(OSError):
            while chunk := os.read(fd, 65536):
                self.log.write(chunk)

    def _wait(self, reader: threading.Thread) -> None:
        assert self._proc is not None
        returncode = self._proc.wait()
        # The container ends with its main process: the runtime kills what is left of it.
        self.signal(signal.SIGKILL)
        reader.join(_DRAIN_SECONDS)
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        with contextlib.suppress(OSError):
            assert self._proc.stdout is not None
            self._proc.stdout.close()
        code = exit_code(returncode)
        reason = "OOMKilled" if self.oom_killed else ("Completed" if code == 0 else "Error")
        self._finish(code, reason, "")
        self.on_exit()

    def _finish(self, code: int, reason: str, message: str) -> None:
        self.exit_code, self.reason, self.message = code, reason, message
        self.finished_at = datetime.now(UTC)
        self.log.close()
        self.done.set()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the run's group (a no-op once it is gone)."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def oom_kill(self) -> None:
        """As the kernel's OOM killer in the container's cgroup: SIGKILL, reason OOMKilled."""
        self.oom_killed = True
        self.signal(signal.SIGKILL)

    def terminate(self, grace: float) -> None:
        """SIGTERM now, SIGKILL once ``grace`` seconds have passed."""
        self.signal(signal.SIGTERM)
        if self._kill_timer is None:
            self._kill_timer = threading.Timer(grace, self.signal, args=(signal.SIGKILL,))
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL the group and wait (bounded) until the run has ended."""
        self.signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self._proc is not None and not self.done.wait(0.05):
            if time.monotonic() > deadline:
                break
