"""How a command attempt's end is told: the :class:`Outcome` of each way it can end.

Pure: what ``runner.command.CommandRun`` knows of its end (why it was ended from the outside,
the main process's exit status, how its start failed) in, one Outcome out; no I/O.

* Exit codes follow the shell convention: death by signal N is ``128 + N``.
* Reasons: ``DeadlineExceeded`` (status ``TIMED_OUT``), the reason given to ``stop()``,
  ``Cancelled``, ``NonZeroExit``, ``Signaled``, ``StartFailed``; None on success.
* A start that failed says why in the user's words: the working directory, a command not
  found, an interpreter (a ``#!`` line) not found or none named, a permission denied.
"""

from __future__ import annotations

import enum
import errno
import os
import signal

from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.child import OUTLIVED
from reconciler.runner.libc_spawn import ByteOrderMark, InterpreterNotFound, PermissionDenied


class Cut(enum.Enum):
    """What a second stop signal's SIGKILL (``CommandRun.kill_now``) cut short: the run's
    command, still alive as it was being terminated, or only what it left behind (it had
    exited by itself, what it left was being terminated)."""

    RUN = enum.auto()
    LEFTOVERS = enum.auto()


class End(enum.Enum):
    """Why the run was ended from the outside; the first cause wins."""

    TIMED_OUT = enum.auto()
    STOPPED = enum.auto()
    CANCELLED = enum.auto()


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def not_started(stop_reason: str | None) -> Outcome:
    return Outcome(
        status=RunStatus.FAILED,
        exit_code=None,
        reason=stop_reason,
        message=f"stopped before it started: {stop_reason}",
        output="",
        pid=None,
    )


def exited(
    returncode: int,
    end: End | None,
    *,
    timeout: float | None,
    stop_reason: str | None,
    leftovers: bool,
    escalated: bool,
    kill_grace: float,
    output: str,
    pid: int | None,
) -> Outcome:
    """The outcome of a main process that exited with ``returncode`` (``-N``: signal N;
    ``child.OUTLIVED``: SIGKILL did not end it, it is left running); ``escalated``: SIGKILL
    was needed after the ``kill_grace`` period."""
    outlived = returncode == OUTLIVED
    exit_code = None if outlived else returncode if returncode >= 0 else 128 - returncode
    status = RunStatus.FAILED
    reason: str | None
    if end is End.TIMED_OUT:
        assert timeout is not None
        status = RunStatus.TIMED_OUT
        reason = "DeadlineExceeded"
        message = f"timed out after {_format_seconds(timeout)}; process group terminated"
    elif end is End.STOPPED:
        reason = stop_reason
        message = f"stopped: {stop_reason}"
    elif end is End.CANCELLED:
        reason = "Cancelled"
        message = "cancelled; process group terminated"
    elif returncode == 0:
        status = RunStatus.SUCCEEDED
        reason = None
        message = "exited with status 0"
    elif returncode > 0:
        reason = "NonZeroExit"
        message = f"exited with status {returncode}"
    else:
        reason = "Signaled"
        message = f"killed by signal {_signal_name(-returncode)}"
    if leftovers:
        message += "; processes it left in its group were terminated"
    if escalated:
        message += f" (SIGKILL after {_format_seconds(kill_grace)} grace period)"
    if outlived:
        message += (
            "; its process outlived SIGKILL (an uninterruptible sleep?) and is left running:"
            f" pid {pid}"
        )
    return Outcome(
        status=status,
        exit_code=exit_code,
        reason=reason,
        message=message,
        output=output,
        pid=pid,
    )


def given_up(
    end: End,
    *,
    start_asked: bool,
    command: str,
    working_dir: str | None,
    timeout: float | None,
    stop_reason: str | None,
) -> Outcome:
    """A start that did not return in time, and that nothing waits for any more;
    ``start_asked``: a spawner's thread had begun it."""
    if not start_asked:
        if end is End.STOPPED:
            return not_started(stop_reason)
        why = "no thread was free to start it"
    else:
        where = f" in {working_dir}" if working_dir is not None else ""
        why = (
            f"starting {command}{where} had not returned (a host too busy to start"
            " processes, or a file system that does not answer?); it is killed if it starts"
            " later"
        )
    status, reason = RunStatus.FAILED, stop_reason
    if end is End.TIMED_OUT:
        assert timeout is not None
        status, reason = RunStatus.TIMED_OUT, "DeadlineExceeded"
        message = f"timed out after {_format_seconds(timeout)} before its process started"
    elif end is End.STOPPED:
        message = f"stopped: {stop_reason}, before its process started"
    else:
        reason, message = "Cancelled", "cancelled before its process started"
    return Outcome(status, None, reason, f"{message}: {why}", "", pid=None)


def start_failed(
    exc: BaseException, command: str, working_dir: str | None, path: str | None = None
) -> Outcome:
    """``path``: the ``PATH`` of the command's environment (None: it has none)."""
    named = _shown(command)  # "- |" in YAML: a name ending with a newline, not shown as one
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc)
        # subprocess names the working directory as the failing file when chdir() failed.
        if working_dir is not None and exc.filename in (
            working_dir,
            os.fsencode(working_dir),
        ):
            message = f"cannot use working directory {_shown(working_dir)}: {detail}"
        elif isinstance(exc, InterpreterNotFound):
            message = _interpreter_not_found(named, exc.interpreter)
        elif exc.errno == errno.ENOENT:
            message = f"command not found: {named}{_looked_for_in(command, path, working_dir)}"
        elif isinstance(exc, PermissionDenied) and exc.interpreter is not None:
            why = f"its #! interpreter {_shown(exc.interpreter)}{_DENIED_BECAUSE[exc.found]}"
            message = f"permission denied: {named} ({why})"
        elif isinstance(exc, PermissionDenied):
            message = f"permission denied: {named}{_DENIED_BECAUSE.get(exc.found, '')}"
        elif exc.errno == errno.EACCES:
            message = f"permission denied: {named}"
        elif isinstance(exc, ByteOrderMark):
            message = (
                f"cannot start {named}: {detail} (its #! line follows a byte order mark,"
                " which exec does not read past: save it as UTF-8 without BOM)"
            )
        elif exc.errno == errno.ENOEXEC:
            # A shell would run a script without a #! line as one of its own (cron, through
            # ``sh -c``, did); or a program built for another machine (an arm64 binary).
            message = (
                f"cannot start {named}: {detail} (neither a program for this machine nor a"
                " script with a first line such as #!/bin/sh)"
            )
        else:
            message = f"cannot start {named}: {detail}"
    else:
        message = f"cannot start {command!r}: {exc}"
    return Outcome(
        status=RunStatus.FAILED,
        exit_code=None,
        reason="StartFailed",
        message=message,
        output="",
        pid=None,
    )


_DENIED_BECAUSE = {
    "folder": " is a folder, not a program",
    "mode": " has no execute permission (chmod +x)",
    "noexec": " is on a file system mounted noexec",
}

# How much of a PATH a message shows: enough for any usual one, not a 32 KiB value whole.
_PATH_SHOWN = 300


def _looked_for_in(command: str, path: str | None, working_dir: str | None = None) -> str:
    """Where a program named without a "/" was looked for: a command's PATH is crontask's (a
    service's, often shorter than a login shell's) or its task's, and which one is what a
    "not found" is about. A relative path (``./backup.sh``) is the folder the command runs in:
    its ``workingDir``, or crontask's own folder (a relative ``workingDir`` is taken from it)."""
    if command.startswith("/"):
        return ""  # an absolute path: it names where it was looked for
    if "/" in command:
        try:
            folder = os.path.abspath(working_dir or os.curdir)
        except OSError:  # crontask's folder was removed
            return ""
        return f" (looked for in {_shown(folder)})"
    if path is None:
        return f" (looked for in {os.defpath}: no PATH)"
    more = f"... [{len(path) - _PATH_SHOWN} more characters]" if len(path) > _PATH_SHOWN else ""
    path = path[:_PATH_SHOWN]
    return f" (looked for in PATH={_shown(path)}{more})"


def _interpreter_not_found(command: str, interpreter: str | None) -> str:
    if interpreter is None:
        return (
            f"cannot start {command}: it is there, but what runs it was not found"
            " (the interpreter of its #! line, or its ELF loader)"
        )
    shown = _shown(interpreter)  # the line's bytes as they are
    if interpreter.endswith("\r"):  # written on Windows: the CR is part of the name
        return (
            f"interpreter not found: {shown} (the #! line of {command} ends with CR:"
            " Windows line endings?)"
        )
    return f"interpreter not found: {shown} (the #! line of {command})"


def _shown(text: str) -> str:
    """``text`` in a message, which is one line: quoted if it would not show on one."""
    return text if text.isprintable() else repr(text)
