"""``posix_spawn`` through the C library, for the spawner's threads (``runner.process``).

``os.posix_spawn`` and ``subprocess.Popen`` hold the GIL while the kernel clones the process
and the child reaches its ``exec``; called through ``ctypes.CDLL``, ``posix_spawn`` lets go of
it, so two threads start two processes on two cores at once. The calls that cannot wait on a
file system go through ``ctypes.PyDLL``, which keeps the GIL: they take a microsecond, and each
release would be a chance for a busy thread (the loop, a scrape) to keep the GIL a whole
switch interval (5 ms) before this thread gets it back. Looking a program up on the ``PATH``
(``access``) can wait on one (a hung NFS or FUSE mount), so it lets go of the GIL, and what it
found is reused for a second (a spawn that fails on it looks again).

What the child gets is what ``Popen(..., start_new_session=True, close_fds=True,
restore_signals=True)`` gives it, and every signal at its default (Popen resets two): see
``LibcSpawn.spawn``. Needs glibc 2.34 or later
(``posix_spawn_file_actions_addclosefrom_np`` and ``..._addchdir_np``); ``load()`` says None
elsewhere.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import signal
import stat
import time
from collections.abc import Callable, Mapping, Sequence

# glibc's flags for posix_spawnattr_setflags (spawn.h); SETSID is a GNU extension (2.26).
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
# posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336 and sigset_t 128 on glibc's
# 64-bit targets; the buffers leave room for any of its ABIs.
_OPAQUE = 1024
# How long a program found on the PATH is started from there without looking again.
_TRUSTED_FOR = 1.0
_FOUND_MAX = 1024  # programs remembered at once


# What the kernel reads of a script's "#!" line (BINPRM_BUF_SIZE, Linux 5.1 and later).
_SHEBANG_MAX = 256


class InterpreterNotFound(FileNotFoundError):
    """``program`` is there, but exec did not find what runs it: the interpreter its ``#!``
    line names (``interpreter``, when that line could be read and names a file that does not
    exist), or an ELF program's loader (``interpreter`` None)."""

    def __init__(self, program: str, interpreter: str | None) -> None:
        super().__init__(errno.ENOENT, os.strerror(errno.ENOENT), program)
        self.interpreter = interpreter


class ByteOrderMark(OSError):
    """ENOEXEC for ``program``, a script whose ``#!`` follows a UTF-8 byte order mark (saved
    by a Windows editor as "UTF-8 with BOM"): exec reads no ``#!`` line there."""

    def __init__(self, program: str) -> None:
        super().__init__(errno.ENOEXEC, os.strerror(errno.ENOEXEC), program)


class PermissionDenied(PermissionError):
    """EACCES for ``program``, with why, when the file exec found says it (``found``): a
    ``"folder"``, a file crontask's user may not execute (``"mode"``), or one on a file system
    mounted noexec (``"noexec"``: "chmod +x" would not help); of its ``#!`` line's
    ``interpreter`` when that is what exec refused (the script itself may be run)."""

    def __init__(self, program: str, found: str, interpreter: str | None = None) -> None:
        super().__init__(errno.EACCES, os.strerror(errno.EACCES), program)
        self.found = found
        self.interpreter = interpreter


class LibcSpawn:
    """``posix_spawn`` called through ctypes; it and ``access`` let go of the GIL."""

    def __init__(
        self,
        libc: ctypes.CDLL,
        quick: ctypes.PyDLL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spawn = libc.posix_spawn
        self._spawn.restype = ctypes.c_int
        self._access = libc.access
        self._access.restype = ctypes.c_int
        self._clock = clock
        # (program, PATH, working directory) -> where it was found, and until when to trust it.
        self._found: dict[tuple[str, str | None, str | None], tuple[bytes, float]] = {}
        self._libc = libc = quick
        for name in (
            "posix_spawn_file_actions_init",
            "posix_spawn_file_actions_destroy",
            "posix_spawn_file_actions_adddup2",
            "posix_spawn_file_actions_addopen",
            "posix_spawn_file_actions_addclosefrom_np",
            "posix_spawn_file_actions_addchdir_np",
            "posix_spawnattr_init",
            "posix_spawnattr_setflags",
            "posix_spawnattr_setsigmask",
            "posix_spawnattr_setsigdefault",
            "sigemptyset",
            "sigfillset",
            "sigdelset",
            "pipe2",
            "close",
        ):
            getattr(libc, name).restype = ctypes.c_int
        # One set of attributes for every spawn: posix_spawn only reads it.
        self._attr = ctypes.create_string_buffer(_OPAQUE)
        empty = ctypes.create_string_buffer(_OPAQUE)
        defaults = ctypes.create_string_buffer(_OPAQUE)
        libc.sigemptyset(empty)
        # Every signal at its default, as cron and systemd start a command: an ignored signal
        # stays ignored across exec, and crontask may have been started with some ignored (a
        # non-interactive shell ignores SIGINT and SIGQUIT for a job started with `&`), which
        # its commands must not inherit. Popen's restore_signals resets only SIGPIPE and
        # SIGXFSZ (which Python itself ignores).
        libc.sigfillset(defaults)
        for signum in (signal.SIGKILL, signal.SIGSTOP):  # no action to set: left out
            libc.sigdelset(defaults, ctypes.c_int(signum))
        # glibc's posix_spawn sets the signals it keeps for itself (32 and 33, below SIGRTMIN)
        # to SIG_IGN in the child, and an ignored signal stays ignored across exec: a command
        # would inherit that, which it does not from Popen. Asked to reset them, the child sets
        # them to SIG_DFL instead. sigfillset leaves those numbers out, so their bits are set
        # directly (bit n-1 of the array of unsigned longs, as glibc lays out sigset_t).
        words = (ctypes.c_ulong * (_OPAQUE // ctypes.sizeof(ctypes.c_ulong))).from_buffer(defaults)
        bits = 8 * ctypes.sizeof(ctypes.c_ulong)
        for internal in range(32, signal.SIGRTMIN):
            words[(internal - 1) // bits] |= 1 << ((internal - 1) % bits)
        _check(libc.posix_spawnattr_init(self._attr))
        _check(
            libc.posix_spawnattr_setflags(
                self._attr, ctypes.c_short(_SETSID | _SETSIGMASK | _SETSIGDEF)
            )
        )
        _check(libc.posix_spawnattr_setsigmask(self._attr, empty))
        _check(libc.posix_spawnattr_setsigdefault(self._attr, defaults))

    def spawn(
        self, args: Sequence[str], env: Mapping[str, str], cwd: str | None, output_fd: int
    ) -> int:
        """Start ``args`` and return its pid. The child gets a new session, stdin from
        ``/dev/null``, stdout and stderr on ``output_fd``, no other descriptor, every signal at
        its default, no blocked signal, and ``args[0]`` looked up on the ``PATH``
        of ``env`` (the first error other than "not found" is the one reported, as ``Popen``
        does). Raises ``OSError`` or ``ValueError`` as ``Popen`` would."""
        libc = self._libc
        argv = _c_strings([os.fsencode(arg) for arg in args])
        envp = _c_strings(_environment(env))
        actions = ctypes.create_string_buffer(_OPAQUE)
        _check(libc.posix_spawn_file_actions_init(actions))
        try:
            _check(
                libc.posix_spawn_file_actions_addopen(
                    actions, 0, b"/dev/null", ctypes.c_int(os.O_RDONLY), ctypes.c_uint(0)
                )
            )
            _check(libc.posix_spawn_file_actions_adddup2(actions, output_fd, 1))
            _check(libc.posix_spawn_file_actions_adddup2(actions, output_fd, 2))
            # After the actions above (it cannot close what they put on 0, 1 and 2), and
            # before the chdir: a chdir that does not return (a working directory on a hung
            # mount) would otherwise hold a copy of every descriptor crontask has open (other
            # runs' output pipes, which would never see their end; its sockets; its database).
            _check(libc.posix_spawn_file_actions_addclosefrom_np(actions, 3))
            if cwd is not None:
                _check(libc.posix_spawn_file_actions_addchdir_np(actions, os.fsencode(cwd)))
            return self._first_that_starts(args[0], env, argv, envp, actions, cwd)
        finally:
            libc.posix_spawn_file_actions_destroy(actions)

    def pipe(self) -> tuple[int, int]:
        """``os.pipe()`` (both ends close-on-exec) without letting go of the GIL."""
        fds = (ctypes.c_int * 2)()
        if self._libc.pipe2(fds, ctypes.c_int(os.O_CLOEXEC)) != 0:
            raise _error()
        return fds[0], fds[1]

    def close(self, fd: int) -> None:
        """``os.close(fd)`` without letting go of the GIL."""
        if self._libc.close(ctypes.c_int(fd)) != 0:
            raise _error()

    def _first_that_starts(
        self,
        command: str,
        env: Mapping[str, str],
        argv: ctypes.Array[ctypes.c_char_p],
        envp: ctypes.Array[ctypes.c_char_p],
        actions: ctypes.Array[ctypes.c_char],
        cwd: str | None,
    ) -> int:
        pid = ctypes.c_int(0)
        key = (command, env.get("PATH"), cwd)
        found = self._found.get(key)
        if found is not None and found[1] > self._clock():
            if self._spawn(ctypes.byref(pid), found[0], actions, self._attr, argv, envp) == 0:
                return pid.value
            self._found.pop(key, None)  # gone, or changed: look again
        first_error = 0
        code = errno.ENOENT
        runs_on: bytes | None = None  # a program that is there, but whose exec said ENOENT
        candidates = _executables(command, env)
        for path in candidates:
            # A failed exec costs a whole clone here (Popen tries every PATH entry inside one
            # child): entries that do not exist are passed over with a look first. A path
            # named in the command is not looked at: it is the only one (and a relative one
            # is relative to the working directory the child enters first).
            if len(candidates) > 1 and self._access(_seen_from(path, cwd), os.F_OK) != 0:
                missing = ctypes.get_errno()
                if missing not in (errno.ENOENT, errno.ENOTDIR) and not first_error:
                    first_error = missing
                continue
            code = self._spawn(ctypes.byref(pid), path, actions, self._attr, argv, envp)
            if code == 0:
                self._remember(key, path)
                return pid.value
            if code not in (errno.ENOENT, errno.ENOTDIR) and not first_error:
                first_error = code
            # The file is there: what exec did not find is what runs it.
            if code == errno.ENOENT and runs_on is None and os.path.isfile(_seen_from(path, cwd)):
                runs_on = _seen_from(path, cwd)
        code = first_error or code
        # posix_spawn says why, not which of chdir and exec failed: the directory is to blame
        # when it cannot be entered (Popen names it in the error's filename, see CommandRun).
        if cwd is not None and not (os.path.isdir(cwd) and os.access(cwd, os.X_OK)):
            raise OSError(code, os.strerror(code), cwd)
        if code == errno.ENOENT and runs_on is not None:
            raise InterpreterNotFound(command, _missing_interpreter(runs_on, cwd))
        if code == errno.ENOEXEC:
            raise not_executable(command, env, cwd) or OSError(code, os.strerror(code), command)
        if code == errno.EACCES:
            raise permission_denied(command, env, cwd) or OSError(code, os.strerror(code), command)
        raise OSError(code, os.strerror(code), command)

    def _remember(self, key: tuple[str, str | None, str | None], path: bytes) -> None:
        now = self._clock()
        if len(self._found) >= _FOUND_MAX:  # tasks' PATHs and folders come and go
            # From a copy, taken at once: the pool's other threads add and forget theirs
            # meanwhile, and a dict changed under its iteration raises, here after a start.
            found = list(self._found.items())
            self._found = {k: v for k, v in found if v[1] > now}
            if len(self._found) >= _FOUND_MAX:
                self._found = {}
        self._found[key] = (path, now + _TRUSTED_FOR)


def _error(code: int = 0) -> OSError:
    """The error numbered ``code`` (what posix_spawn's functions return), else ``errno``'s
    (what pipe2 and close set)."""
    code = code or ctypes.get_errno()
    return OSError(code, os.strerror(code))


def _check(code: int) -> None:
    if code != 0:
        raise _error(code)


def _c_strings(items: list[bytes]) -> ctypes.Array[ctypes.c_char_p]:
    for item in items:
        if b"\0" in item:
            raise ValueError("embedded null byte")
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


def _environment(env: Mapping[str, str]) -> list[bytes]:
    """``KEY=value`` items, refused as ``Popen`` refuses them."""
    items = []
    for key, value in env.items():
        name = os.fsencode(key)
        if b"=" in name:
            raise ValueError("illegal environment variable name")
        items.append(name + b"=" + os.fsencode(value))
    return items


def interpreter_not_found(
    command: str, env: Mapping[str, str], cwd: str | None
) -> InterpreterNotFound | None:
    """What an exec of ``command`` that said ENOENT meant, if the program is there (where its
    path names it, or on the ``PATH`` of ``env``; from ``cwd``): what runs it was not found.
    None if it is not there. For ``subprocess.Popen``'s errors, which say only ENOENT."""
    for path in _executables(command, env):
        program = _seen_from(path, cwd)
        if os.path.isfile(program):
            return InterpreterNotFound(command, _missing_interpreter(program, cwd))
    return None


def not_executable(command: str, env: Mapping[str, str], cwd: str | None) -> OSError | None:
    """What an exec of ``command`` that said ENOEXEC meant, if the program found (as
    ``interpreter_not_found`` finds it) is a script whose ``#!`` follows a byte order mark."""
    for path in _executables(command, env):
        program = _seen_from(path, cwd)
        if os.path.isfile(program):
            return ByteOrderMark(command) if _head(program).startswith(b"\xef\xbb\xbf#!") else None
    return None


def permission_denied(command: str, env: Mapping[str, str], cwd: str | None) -> OSError | None:
    """What an exec of ``command`` that said EACCES found (as ``interpreter_not_found`` finds
    it), when that is the reason: a folder, a file crontask's user may not execute, a file
    system mounted noexec. None otherwise (a folder on the way not searchable, a security
    module's refusal). A file on the PATH is named before a folder found ahead of it: exec went
    on past the folder, and the file is the one to fix. A script exec may run is looked past,
    at the interpreter its ``#!`` line names (a venv's python on a /tmp mounted noexec)."""
    folder = None
    for path in _executables(command, env):
        program = _seen_from(path, cwd)
        found = _denied(program)
        if found == "folder":
            folder = folder or PermissionDenied(command, "folder")
            continue
        if found is not None:
            return PermissionDenied(command, found)
        if not os.path.isfile(program):  # not there: exec went on to the next
            continue
        name = _interpreter(program)
        why = _denied(_seen_from(name, cwd)) if name else None
        if name and why:
            return PermissionDenied(command, why, os.fsdecode(name))
        return None
    return folder


def _denied(program: bytes) -> str | None:
    """Why exec would refuse ``program`` (``PermissionDenied.found``), or None: it may run it,
    or it is not there, or neither a folder nor a file (nothing to say of it)."""
    try:
        mode = os.stat(program).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "folder"
    if not stat.S_ISREG(mode):
        return None
    if _mounted_noexec(program):
        return "noexec"
    # As crontask's user: a file with only its owner's bit set, owned by another, too.
    return None if os.access(program, os.X_OK) else "mode"


def _mounted_noexec(program: bytes) -> bool:
    try:
        return bool(os.statvfs(program).f_flag & os.ST_NOEXEC)
    except OSError:
        return False


def _head(program: bytes) -> bytes:
    """At most what the kernel reads of ``program``'s ``#!`` line; empty if it cannot be read.
    In the spawner's thread: the file was just there for exec, so reading its head is cheap."""
    try:
        fd = os.open(program, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since exec looked at it
            return b""
        return os.read(fd, _SHEBANG_MAX)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _missing_interpreter(program: bytes, cwd: str | None) -> str | None:
    """The interpreter ``program``'s ``#!`` line names, if that file does not exist; None if
    the line cannot be read or names one that exists."""
    name = _interpreter(program)
    if not name or os.path.exists(_seen_from(name, cwd)):
        return None
    return os.fsdecode(name)


def _interpreter(program: bytes) -> bytes:
    """The interpreter ``program``'s ``#!`` line names; empty if there is none to read."""
    head = _head(program)
    if not head.startswith(b"#!"):
        return b""
    # As the kernel parses it: after "#!" and blanks, up to a blank or the end of the line.
    # Only spaces and tabs are blanks: a line ended by CR LF names "/bin/sh\r", not found.
    name = re.match(rb"[ \t]*([^ \t\n]*)", head[2:])
    return name[1] if name is not None else b""


def _seen_from(path: bytes, cwd: str | None) -> bytes:
    """``path`` as the child, in ``cwd``, would find it (a relative ``PATH`` entry)."""
    return path if cwd is None or os.path.isabs(path) else os.path.join(os.fsencode(cwd), path)


def _executables(command: str, env: Mapping[str, str]) -> list[bytes]:
    """Where exec looks for ``command``: itself if it names a path, else each ``PATH`` entry
    of ``env`` (``os.defpath`` without one), as ``Popen`` does."""
    name = os.fsencode(command)
    if os.path.dirname(name):
        return [name]
    return [os.path.join(os.fsencode(d), name) for d in os.get_exec_path(dict(env))]


_PR_SET_NAME = 15  # prctl(2)


def name_thread(name: str) -> None:
    """Give the calling thread ``name`` in the kernel (``comm``: its first 15 bytes) where the
    C library can (Linux): a process the thread clones bears that name until its ``exec``, so
    a start stuck before its ``exec`` can be told apart (``runner.group.kill_children_named``).
    Through ``PyDLL``: a microsecond, once per thread."""
    try:
        prctl = ctypes.PyDLL(None).prctl
    except (OSError, AttributeError):  # no such C library, or not Linux: nothing to name
        return
    prctl(_PR_SET_NAME, os.fsencode(name)[:15], 0, 0, 0)


def load() -> LibcSpawn | None:
    """The C library's spawn, or None where it lacks what is needed (not Linux, glibc < 2.34)."""
    if not hasattr(os, "pidfd_open"):  # not Linux: keep to the portable way
        return None
    try:
        return LibcSpawn(ctypes.CDLL(None, use_errno=True), ctypes.PyDLL(None, use_errno=True))
    except (OSError, AttributeError):  # no such C library, or a glibc older than 2.34
        return None
