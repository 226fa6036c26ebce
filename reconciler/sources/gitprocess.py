"""Running the ``git`` program: one subprocess per call, with a deadline and bounded output.

Kept apart from ``gitrepo`` (what the git source asks of its repository) because this is the
part that deals with processes, not with git: a call that hangs, helpers that keep pipes open,
a cancel from another thread.

Contracts:

- Only the real ``git`` program is run (no protocol code here, no GitPython), each call with a
  timeout; on a timeout the whole process group is killed (git's helpers — ssh,
  git-remote-https, upload-pack — would otherwise keep the pipes open and hang the caller). A
  helper that left the group (``setsid``, ssh's ``ControlPersist`` master) is out of reach, but
  it cannot hold a call open: once git has exited or been killed, its pipes are read for at
  most ``_DRAIN_TIMEOUT`` more.
- ``GitError`` messages are short (git's ``fatal:``/``error:`` lines, with the cause git's helper
  gave before them, ssh's or the socket's: ``gitsaid.summary``) and already redacted. Apart, whole,
  ``GitError.said`` holds git's own ``fatal:``/``error:`` lines alone (``gitsaid``), for
  decisions on what git found (``Revisions.discard_damaged``): a cause line is the remote's
  text as much as git's (an ssh server's stderr reaches git's unprefixed: "ERROR: this
  repository is empty" deleted the mirror), and so is a ``remote error:`` (a smart server's
  error packet).
- What git writes costs bounded memory: of its stderr only the first ``_MAX_STDERR`` bytes are
  kept (the rest is read and dropped, so git never blocks on the pipe: a hostile remote's
  endless ``remote: ...`` messages reach git's stderr), and ``run_bytes`` takes at most
  ``max_stdout`` bytes of its stdout, a GitError past it.
- git's memory is bounded twice. By its own settings (``gitbounds.MEMORY_CONFIG``): one thread, a
  bounded delta window and cache, no delta search of blobs over 16 MiB (stored and streamed
  whole), bounded pack mappings; without them a repack of 51 packs of one compressible 40 MiB
  blob each took 1 GiB. And by an address-space limit (``RLIMIT_AS``, ``memory_limit``, by
  default ``gitbounds.DEFAULT_MEMORY_LIMIT``) that git's helpers inherit (git-remote-http,
  index-pack, pack-objects, ssh): it covers what no setting does, such as a remote whose ref
  advertisement never ends, which git-remote-http keeps whole. A git that runs out of it fails
  at once, and ``MemoryLimitError`` says so.
- git has deadlines of its own, for when this process dies without killing it (``SIGKILL``,
  the OOM killer): every call runs under coreutils' ``timeout``, which signals git's whole
  process group (``TERM``, then ``KILL``) some seconds after the call's own timeout, whether
  or not this process lives; and over http(s) git gives up on a transfer that stalls for a
  little longer than the timeout (``http.lowSpeedTime``; at most 2**31-1 s, the most git
  reads, when the timeout is some 68 years or more). Both the limit and ``timeout`` are set
  by the command line (``sh -c 'ulimit -v'``), not by code run in the child between fork and
  exec (``preexec_fn``), which is unsafe in a threaded process. Where ``timeout`` or ``sh`` is
  missing from PATH, git runs without both (``wrapper_problem`` says so, for a warning).
- ``run_records`` hands git's output over record by record as it is written, never more than
  one record (of at most ``max_record`` bytes) and one read ahead: a listing of millions of
  entries costs only what the caller reads of it. Closing it early kills git's group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import IO

from reconciler import children
from reconciler.sources.gitbounds import (
    DEFAULT_MEMORY_LIMIT,
    GIT_INT_MAX,
    MEMORY_CONFIG,
    OUT_OF_MEMORY,
    bounded,
    own_lines,
    tools,
    which,
)
from reconciler.sources.gitsaid import own_errors
from reconciler.sources.gitsaid import summary as git_summary
from reconciler.sources.limits import format_size

# Settings for every git call: git's own background work would outlive the call (and the
# timeout), and hooks or detached-HEAD advice have no place in a mirror nobody works in.
_CONFIG_ARGS = (
    "-c",
    "gc.autoDetach=false",
    "-c",
    "maintenance.autoDetach=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "advice.detachedHead=false",
)
# How often a running git is checked for having exited (see _communicate), and for how long
# its pipes are read after it has exited or been killed.
_SLICE = 0.25
_DRAIN_TIMEOUT = 1.0
# run_records reads git's pipes this much at a time, and keeps this much of what git says on
# stderr (a summary of it is all a message shows).
_CHUNK = 64 * 1024
_MAX_STDERR = 64 * 1024
# git's own deadline over http(s) (see GitRunner) comes this many seconds after the timeout:
# while this process lives, its own (and its message) comes first.
_OWN_DEADLINE_MARGIN = 2


# The oldest git crontask runs with: 2.32 is the first to read GIT_CONFIG_GLOBAL (an older one
# reads the user's ~/.gitconfig: its url.insteadOf, core.sshCommand and credential helpers would
# change what crontask fetches and how), 2.31 GIT_CONFIG_COUNT (the token's credential helper),
# 2.29 ``--no-auto-maintenance``.
OLDEST_GIT = (2, 32)
_VERSION = re.compile(rb"git version (\d+)\.(\d+)")


def _own_deadline_seconds(timeout: float) -> int:
    """git's ``http.lowSpeedTime`` for calls of ``timeout`` seconds (see ``GitRunner``)."""
    return min(math.ceil(timeout) + _OWN_DEADLINE_MARGIN, GIT_INT_MAX)


class GitError(Exception):
    """A git operation failed. The message is redacted and fit for a status line; ``said``
    is git's own fatal/error lines, whole and redacted (see the module's contract); ``code``
    git's exit status when it ran to its end (None: timed out, cancelled, stopped, not run)."""

    def __init__(self, *args: object, said: Sequence[str] = (), code: int | None = None) -> None:
        super().__init__(*args)
        self.said = tuple(said)
        self.code = code


class GitCancelledError(GitError):
    """The call was cancelled (``GitRunner.cancel``: crontask is stopping), not git's failure."""


class MemoryLimitError(GitError):
    """git (or one of its helpers) ran out of its address-space limit."""


class RecordTooLongError(GitError):
    """git wrote a record longer than ``run_records`` was told to take; git was stopped."""


class GitRunner:
    """Runs git calls in ``env``, each with ``timeout`` and an address space of at most
    ``memory_limit`` bytes (None: the one this process has); ``redact`` cleans what git says;
    ``mark`` (``-c`` settings) comes before each call's arguments, to find it by."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        timeout: float,
        redact: Callable[[str], str],
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        mark: Sequence[str] = (),
    ) -> None:
        self.env = dict(env)
        self.mark = tuple(mark)
        self.timeout = timeout
        self.redact = redact
        self.memory_limit = memory_limit
        self._tools = tools(self.env)
        # A transfer that moves less than a byte a second for this long is given up by git
        # itself (git-remote-http inherits the setting): for a git that outlives this process
        # (killed hard), on a remote that accepts and then says nothing, the deadline that
        # stays where ``timeout`` is missing (``gitbounds.bounded``), and closes the connection
        # itself.
        self._own_deadline = (
            "-c",
            "http.lowSpeedLimit=1",
            "-c",
            f"http.lowSpeedTime={_own_deadline_seconds(timeout)}",
        )
        self._lock = threading.Lock()  # cancel() may come from another thread than run()
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = False

    def cancel(self) -> None:
        """Kill the git call in flight (its whole group) and refuse later ones: each raises
        GitError. For a shutdown that must not wait for a remote that hangs."""
        with self._lock:
            self._cancelled = True
            if self._process is not None and self._process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)

    def run_bytes(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        input: bytes | None = None,
        max_stdout: int,
        timeout: float | None = None,
    ) -> bytes:
        """git's stdout; GitError (redacted) if it fails, times out (after ``timeout``, by
        default the runner's), was cancelled, or writes more than ``max_stdout`` bytes to stdout
        (git's group is then killed)."""
        name = _name(args)
        timeout = self.timeout if timeout is None else timeout
        process = self._start(args, cwd=cwd, piped_input=input is not None, timeout=timeout)
        try:
            output = _communicate(process, timeout, input, max_stdout)
        finally:
            with self._lock:
                self._process = None
            if process.returncode is not None:  # reaped
                children.claims.forget(process.pid)
        if self._cancelled:
            raise GitCancelledError(f"git {name} cancelled")
        if output.overflowed:
            raise GitError(f"git {name} wrote more than {max_stdout} bytes")
        if output.timed_out:
            raise GitError(f"git {name} timed out after {timeout:g}s")
        self._check(process.returncode, output.stderr)
        return output.stdout

    def run_records(
        self,
        args: Sequence[str],
        *,
        separator: bytes,
        max_record: int,
        timeout: float | None = None,
    ) -> Generator[bytes, None, None]:
        """git's stdout split at ``separator`` (a last record without one included), each
        record as soon as git has written it. GitError (redacted) if git fails, times out or
        was cancelled; RecordTooLongError for a record over ``max_record`` bytes. Close the
        iterator to stop early (``contextlib.closing``): git's group is killed and reaped, as
        it is whenever the iterator ends. For local commands (no helper to outlive git): the
        pipes are read until git closes them, or the timeout."""
        name = _name(args)
        seconds = self.timeout if timeout is None else timeout
        process = self._start(args, cwd=None, piped_input=False, timeout=seconds)
        # Both piped (see _start).
        assert process.stdout is not None
        assert process.stderr is not None
        deadline = time.monotonic() + seconds
        stderr = bytearray()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                selector.register(process.stderr, selectors.EVENT_READ)
                pending = b""
                while selector.get_map() and not self._cancelled:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise GitError(f"git {name} timed out after {seconds:g}s")
                    for key, _ in selector.select(min(_SLICE, left)):
                        chunk = os.read(key.fd, _CHUNK)
                        if not chunk:
                            selector.unregister(key.fileobj)
                        elif key.fileobj is process.stderr:
                            stderr += chunk[: _MAX_STDERR - len(stderr)]
                        else:
                            *records, pending = (pending + chunk).split(separator)
                            if len(pending) > max_record or any(
                                len(r) > max_record for r in records
                            ):
                                raise RecordTooLongError(
                                    f"git {name} wrote a record over {max_record} bytes"
                                )
                            yield from records
                if pending and not self._cancelled:
                    yield pending
            if self._cancelled:
                raise GitCancelledError(f"git {name} cancelled")
            try:
                code = process.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                raise GitError(f"git {name} timed out after {seconds:g}s") from None
            self._check(code, bytes(stderr))
        finally:
            # Stopped early, failed or timed out: git (blocked on a full pipe, or hanging) and
            # its group are killed. Only while it is unreaped: a reaped pid may be reused.
            with self._lock:
                self._process = None
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
            process.stdout.close()
            process.stderr.close()
            process.wait()
            children.claims.forget(process.pid)

    def _start(
        self, args: Sequence[str], *, cwd: Path | None, piped_input: bool, timeout: float
    ) -> subprocess.Popen[bytes]:
        """git started in its own process group, as the call in flight (see ``cancel``); its
        pid claimed (``reconciler.children``) until the caller has reaped it."""
        git = which("git", self.env)
        if git is None:
            raise GitError("cannot run git: No such file or directory")
        command = [git, *_CONFIG_ARGS, *MEMORY_CONFIG, *self._own_deadline, *self.mark, *args]
        with self._lock:
            if self._cancelled:
                raise GitCancelledError(f"git {_name(args)} cancelled")
            number = children.claims.begin()
            process = None
            try:
                process = subprocess.Popen(
                    bounded(command, timeout, self._tools, self.memory_limit),
                    cwd=cwd,
                    env=self.env,
                    stdin=subprocess.PIPE if piped_input else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,  # its own group: a timeout kills git and its helpers
                )
            except OSError as err:
                raise GitError(f"cannot run git: {err.strerror or err}") from None
            finally:
                children.claims.end(number, None if process is None else process.pid)
            self._process = process
        return process

    def _check(self, code: int, stderr: bytes) -> None:
        if code == 0:
            return
        said = stderr.decode("utf-8", "replace")
        # Redacted whole, before it is summed up and cut: a cut within a secret, or within a
        # URL before its "@", kept the first part of it (gitsaid's redaction is linear).
        shown = self.redact(said)
        summary, own = git_summary(shown, code), own_errors(shown)
        if self.memory_limit is not None and OUT_OF_MEMORY.search(own_lines(said)):
            raise MemoryLimitError(
                f"git ran out of its memory limit ({format_size(self.memory_limit)}): "
                f"{summary} (a larger repository needs a larger --git-memory-limit)",
                said=own,
                code=code,
            )
        raise GitError(summary, said=own, code=code)


def _name(args: Sequence[str]) -> str:
    """The git command of ``args`` (``ls-tree``), for messages."""
    return next((a for a in args if not a.startswith("-")), "")


@dataclasses.dataclass(frozen=True)
class _Output:
    stdout: bytes
    stderr: bytes  # its first _MAX_STDERR bytes
    timed_out: bool  # still running at the timeout
    overflowed: bool  # more than max_stdout bytes on stdout


def _communicate(
    process: subprocess.Popen[bytes], timeout: float, input: bytes | None, max_stdout: int
) -> _Output:
    """What git wrote, and whether it was still running at ``timeout``. ``input`` is written to
    its stdin as git takes it. Of stderr only the first ``_MAX_STDERR`` bytes are kept, and
    stdout is read no further than ``max_stdout``: the rest is read and dropped, so neither a
    remote's endless ``remote: ...`` messages nor a command's endless output can grow memory,
    and git never blocks on a full pipe.

    At the timeout, once git has exited while its pipes are still open, or once stdout passes
    ``max_stdout``, its process group is killed; what is left in the pipes is then read for at
    most ``_DRAIN_TIMEOUT``, because a helper that left the group (``setsid``; ssh's
    ``ControlPersist`` master) can hold them open for as long as it lives, out of our reach.
    """
    # Piped by _start; stdin only when there is input.
    assert process.stdout is not None
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    stdout, stderr = bytearray(), bytearray()
    unwritten = memoryview(input or b"")
    timed_out = overflowed = False
    drain_until: float | None = None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            selector.register(process.stderr, selectors.EVENT_READ)
            if process.stdin is not None:
                if unwritten:
                    os.set_blocking(process.stdin.fileno(), False)
                    selector.register(process.stdin, selectors.EVENT_WRITE)
                else:
                    process.stdin.close()
            while selector.get_map():
                now = time.monotonic()
                if drain_until is None and (
                    process.poll() is not None or overflowed or now >= deadline
                ):
                    timed_out = not overflowed and process.returncode is None
                    _end_group(process, selector)
                    drain_until = now + _DRAIN_TIMEOUT
                left = (deadline if drain_until is None else drain_until) - now
                if left <= 0:
                    break
                for key, _ in selector.select(min(_SLICE, left)):
                    if key.fileobj is process.stdin:
                        unwritten = _feed(process.stdin, selector, unwritten)
                        continue
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.fileobj is process.stderr:
                        stderr += chunk[: _MAX_STDERR - len(stderr)]
                    elif not overflowed:
                        stdout += chunk
                        overflowed = len(stdout) > max_stdout
        if drain_until is None:
            # Every pipe closed by a git still running: it is exiting (``timeout`` closes its
            # own copies just before), and killing it now would lose its exit status.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_DRAIN_TIMEOUT)
    finally:
        if process.poll() is None:  # an error here: git must not outlive the call
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
    return _Output(bytes(stdout), bytes(stderr), timed_out, overflowed)


def _feed(stdin: IO[bytes], selector: selectors.BaseSelector, unwritten: memoryview) -> memoryview:
    """Writes what git takes of ``unwritten`` and returns the rest; stdin is closed once all
    is written or git stopped reading (its exit says why)."""
    try:
        unwritten = unwritten[os.write(stdin.fileno(), unwritten[:_CHUNK]) :]
    except BlockingIOError:
        return unwritten
    except BrokenPipeError:
        unwritten = unwritten[:0]
    if not unwritten:
        selector.unregister(stdin)
        stdin.close()
    return unwritten


def _end_group(process: subprocess.Popen[bytes], selector: selectors.BaseSelector) -> None:
    """Kills git's process group and stops writing to it; its pipes are then drained."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stdin is not None and not process.stdin.closed:
        selector.unregister(process.stdin)
        process.stdin.close()


def version_problem(env: Mapping[str, str], timeout: float = 10.0) -> str | None:
    """Why the git that ``env``'s PATH finds cannot serve the git source (missing, too old,
    unreadable version), in one line; None if it can."""
    runner = GitRunner(env=env, timeout=timeout, redact=lambda text: text)
    try:
        said = runner.run_bytes(["version"], max_stdout=4096)
    except GitError as err:
        return str(err)
    found = _VERSION.match(said)
    if found is None:
        return f"cannot tell git's version from {said[:80]!r}"
    version = (int(found[1]), int(found[2]))
    if version < OLDEST_GIT:
        oldest = ".".join(map(str, OLDEST_GIT))
        return (
            f"git {version[0]}.{version[1]} is older than {oldest}, the first that lets "
            "crontask keep the user's and the system's git configuration out of its fetches: "
            "install a newer git"
        )
    return None
