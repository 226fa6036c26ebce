"""Keeping the git source's repository from growing without bound: git's automatic collection,
run as a call of its own, the removal of what a git killed mid-write leaves behind, and of the
worktrees of older revisions.

Contracts:

- The housekeeping of a sync (``tidy``: the older worktrees deleted and ``git worktree
  prune``\\ d; other keys' folders, ``gitkeys``; the collection) comes after the pass is handed
  the new revision: under ``watch`` the sync tells it as soon as ``current`` has moved
  (``GitSource._on_applied``), then goes on in its thread. A tree of 10 000 files took ~29 s to
  delete, and a repack of a large repository minutes: the pass waited for them all. The trees
  are deleted without the tree lock (reads need not wait either), and yet none is read while
  it goes: the switch took that lock, so no read begun before it is left, and reads after it
  go through ``current``, which leads to none of them. Syncs run one at a time, housekeeping
  included: the next switch (which could make one of them ``current`` again, or check it out
  anew) waits for the deletion to end. A sync called on its own returns once all is done.
- No fetch runs git's automatic maintenance (``--no-auto-maintenance``): run inside the fetch,
  it shared the fetch's timeout, and on a repository large enough for it to take longer, every
  collection was killed part-way. Instead ``GitRepo.collect`` runs ``git gc --auto`` after each
  sync, with a deadline of its own (``collection_timeout``); the git source logs its failure or
  timeout and counts it as no failure of the sync.
- A git killed mid-write (at a timeout, by a shutdown's cancel, by the OOM killer) leaves
  temporary files and locks (``LEFTOVERS``). A lock left there fails every later fetch
  ("cannot lock ref") or, for collection's (``objects/maintenance.lock``, ``gc.pid``, the
  commit-graph's), makes every later collection do nothing, silently: the repository then grows
  with every fetch. ``remove_leftovers`` deletes them all. Only safe while no git process works
  on the repository: the state directory is this process's alone, and ``GitRepo`` calls it
  only between its git calls, one at a time, each of which ends with its whole process group
  (git's maintenance runs in the foreground: ``gc.autoDetach=false``) killed or exited.
- A git an earlier crontask left working on the repository when it was killed hard (it lives on
  under ``timeout``, up to its deadline and some seconds more: ``gitprocess``) is stopped first:
  ``remove_leftovers`` kills the group of each process of this user whose command line names the
  repository (``marked``: ``-c crontask.repository=<repo>``, which every git call of ``GitRepo``
  carries, the checkout in a worktree too, run there without ``--git-dir=``; or ``--git-dir=``, all
  an older crontask's carried; none is this process's, which has no git in flight then), and waits
  for it to end; the path compared as a real one (``--state-dir`` may be named through a link at one
  start and not at the next). ``GitRepo.ensure`` does so before anything else of a sync: the records
  of worktrees are deleted next, and a checkout left running wrote its tree on while the next one
  was checked out there. A git that only works in one of the worktrees (an operator's ``git -C``)
  names neither: crontask's own mark is exact, where a process's working folder is no sign of whose
  it is. A fetch left to run beside the new one updated the ref that one was updating ("cannot lock
  ref ...: is at X but expected Y"), and its locks were deleted under it. Only a group shaped as
  crontask's git call is killed: its leader leads a session of its own and runs git with that mark,
  under ``gitbounds.bounded``'s wrapper or alone (``_runs_git``). Any other group is another
  program's (a script without job control runs its launcher, its shell and its git in one group): it
  is left running, with a warning (once), and while it lives only what is older than it is removed
  (``_others_since``): what it made may be in use, and a reader (a ``git log`` in a pager) must not
  stop every fetch. The command line is read from the live process: a pid reused since is never
  taken for it. /proc is looked through once per process (``RUNNER_RECORD``), not at every call, but
  again at each while another program's git lives; where it is missing, nothing is looked for. And
  while ``gc.pid`` names a git alive on this host (a collection that did not name the repository
  so), nothing is removed.
- A collection that failed (its memory limit, its deadline, a broken config) is not run again
  at the next sync, which would fail the same way at the same cost: ``CollectionBackoff``
  waits ``COLLECTION_RETRY``, doubled with each failure in a row up to
  ``COLLECTION_RETRY_MAX``; a collection that succeeds resets it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.sources.gitprocess import GitError, MemoryLimitError
from reconciler.sources.gittree import Stopped

if TYPE_CHECKING:  # gitrepo imports this module
    from reconciler.sources.gitrepo import GitRepo
    from reconciler.sources.gitrevisions import Revisions

log = logging.getLogger("crontask.sources.git")

# Collection is local work, whose length grows with the repository, not with the remote's
# speed: a --git-timeout fit for a fetch would kill it every time on a large repository.
COLLECTION_TIMEOUT = 600.0

# The check of a mirror git said is damaged (``found_damaged``) is local work too, and rare
# (only after such a fetch): cut short at the fetches' deadline, a large mirror was never
# checked, and a damaged one failed every fetch until deleted by hand.
CHECK_TIMEOUT = 600.0

# After a failed collection, the next waits this long (in seconds), doubled with each failure
# in a row, up to the most: a collection costs minutes of CPU on a large repository, and
# nothing is lost by putting it off (fetches go on; the repository takes more room meanwhile).
COLLECTION_RETRY = 600.0
COLLECTION_RETRY_MAX = 86_400.0

# How long the groups of an earlier crontask's git are waited for once killed (they end at
# once but for a write in progress, as on a slow network file system).
ORPHAN_WAIT = 10.0
_ORPHAN_POLL = 0.05

# The process that runs git in the repository (``PID STARTTIME``, as /proc says them), written
# at its first ``remove_leftovers`` there, before its first fetch: another one's means an
# earlier crontask's git may live on, and /proc is looked through for it (``end_orphans``)
# then, not before every call.
RUNNER_RECORD = "crontask.pid"

# The setting that marks each git call of ``GitRepo`` as crontask's, on its repository (see
# ``marked``): git ignores a setting it does not know.
SETTING = "crontask.repository"

# The (repository, process group) of each other program's git already warned of.
_WARNED: set[tuple[str, int]] = set()

# The arguments of the collection: git's own thresholds decide whether it does anything.
COLLECT = ("gc", "--auto", "--quiet")
# Those of the check that git's words of a damaged repository are true here (``found_damaged``).
FSCK = ("fsck", "--connectivity-only", "--no-dangling", "--no-progress")

# What a killed git leaves, relative to the repository: the temporary files of object writes
# (``objects/??/tmp_obj_*``; index-pack's and repack's ``objects/pack/tmp_*`` and ``.tmp-*``;
# the commit-graph's ``tmp_graph_*``), the ``.keep`` that marks a pack being fetched (left, it
# keeps the pack out of every repack: crontask keeps no pack on purpose), the lock files of
# ref updates (``refs/**/*.lock``; ``packed-refs.lock``, ``HEAD.lock``, ``config.lock``...
# at the top) and those of collection (``gc.pid``, which git takes for a gc still running when
# its pid is some other process's since, and ``gc.pid.lock``, which fails every gc).
LEFTOVERS = (
    "objects/[0-9a-f][0-9a-f]/tmp_obj_*",
    "objects/pack/tmp_*",
    "objects/pack/.tmp-*",
    "objects/pack/pack-*.keep",
    "objects/pack/*.lock",
    "objects/maintenance.lock",
    "objects/info/*.lock",
    "objects/info/commit-graphs/*.lock",
    "objects/info/commit-graphs/tmp_graph_*",
    "refs/**/*.lock",
    "*.lock",
    "gc.pid",
)


def tidy(revisions: Revisions, repo: GitRepo | None, stopped: Callable[[], bool]) -> None:
    """After a switch (and at a start's first sync: ``GitSource._tidy_leftovers``): every
    worktree but the one in force deleted, then git's record of them (``git worktree prune``;
    not without ``repo``, when the sync failed before it had one). A failure is logged and
    tried again at the next switch or start (the revision in force is in force: nothing to
    undo). Once ``stopped()`` (crontask is stopping), the deletion ends between two entries
    and the rest waits for the next start: a leftover of 60 000 files held a stop 88 s, past
    a pod's grace. Nothing raised."""
    keep = revisions.applied
    if keep is None:
        return
    try:
        revisions.remove_old(keep, stopped)
    except Stopped:
        log.info(
            "deletion of older git worktrees cut short by the stop; the rest is deleted next time"
        )
        return
    except OSError as err:  # listing the worktrees; each one's failure is its own warning
        log.warning("git worktrees not deleted", extra={"fields": {"error": str(err)[:300]}})
    if repo is None:
        return
    try:
        repo.prune_worktrees()
    except GitError as err:  # only git's bookkeeping of the deleted trees; retried next time
        log.debug("git worktree prune failed", extra={"fields": {"error": str(err)}})


def collection_timeout(timeout: float) -> float:
    """The deadline of a collection for a source whose git calls have ``timeout``."""
    return max(timeout, COLLECTION_TIMEOUT)


def check_timeout(timeout: float) -> float:
    """The deadline of ``found_damaged``'s check for a source whose git calls have ``timeout``."""
    return max(timeout, CHECK_TIMEOUT)


class CollectionBackoff:
    """When the next collection is due, after the ones that failed (see the module's
    contract). For one thread at a time (the git source's syncs)."""

    def __init__(self) -> None:
        self._failures = 0
        self._due: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self._due is None or now >= self._due

    def failed(self, now: datetime) -> float:
        """Record a failure at ``now``; the seconds until the next collection is due."""
        self._failures += 1
        delay = min(COLLECTION_RETRY * 2.0 ** min(self._failures - 1, 32), COLLECTION_RETRY_MAX)
        self._due = now + timedelta(seconds=delay)
        return delay

    def succeeded(self) -> None:
        self._failures = 0
        self._due = None

    def run(
        self,
        collect: Callable[[], None],
        now: datetime,
        fields: dict[str, object],
        cancelled: Callable[[], bool],
    ) -> None:
        """``collect()`` if it is due. Its failure (a GitError) is logged with ``fields`` and
        when the next is due, unless ``cancelled()`` says a shutdown cut it short; it is no
        failure of the sync."""
        if not self.due(now):
            return
        try:
            collect()
        except GitError as err:
            if not cancelled():
                retry = self.failed(now)
                said = {**fields, "error": str(err), "retry_in": retry}
                log.warning("git collection failed", extra={"fields": said})
            return
        self.succeeded()


def found_damaged(repo: GitRepo) -> bool | None:
    """Whether the repository is damaged as this host finds it, whatever a remote said (an ssh
    server's stderr reaches git's unchanged: its "fatal: bad object ..." deleted the mirror, a
    clone at every retry): a loose object of no bytes (what a power loss leaves: git does not
    fsync them by default), or a ref, commit or tree ``git fsck --connectivity-only`` finds
    wrong or missing (it reads no blob), within a deadline of its own (``check_timeout``). None
    when the check could not finish (that deadline, its memory limit, a signal, cancelled): only
    git's own exit says damage. Raises nothing."""
    with contextlib.suppress(OSError), os.scandir(repo.git_dir / "objects") as folders:
        for folder in folders:
            if len(folder.name) == 2 and folder.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError), os.scandir(folder.path) as objects:
                    if any(_empty_object(entry) for entry in objects):
                        return True
    timeout = check_timeout(repo.timeout)
    try:
        records = repo.run_records(
            list(FSCK), separator=b"\n", max_record=64 * 1024, timeout=timeout
        )
        for _ in records:
            pass  # "missing tree ...", "broken link ...": its exit status says it all
    except MemoryLimitError:
        return None  # git's exit status 128 here says nothing of the repository
    except GitError as err:
        return None if err.code is None or err.code < 0 else True
    return False


def _empty_object(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a loose object (named by the rest of its SHA-1 or SHA-256 name: not
    a temporary file a killed git left) of no bytes."""
    name = entry.name
    if len(name) not in (38, 62) or name.strip("0123456789abcdef"):
        return False
    with contextlib.suppress(OSError):
        return entry.stat(follow_symlinks=False).st_size == 0
    return False


def remove_leftovers(git_dir: Path) -> None:
    """Delete ``LEFTOVERS`` in the repository at ``git_dir`` (see the module's contract); none
    while ``gc.pid`` names a git alive on this host: a collection an earlier crontask started
    outlives it when it is killed hard (nothing kills its group then), and its locks are held.
    Any other git an earlier crontask left working on it is stopped first (``end_orphans``,
    while ``RUNNER_RECORD`` names another process); none is deleted while one is alive. While
    another program's git works on it, only those older than it are."""
    if _collecting(git_dir / "gc.pid"):
        return
    before = None  # delete them all, or (another program's git at work) those older than it
    if not _orphans_ended(git_dir):
        before = _others_since(_Markers(git_dir))
        if before is None:  # crontask's own orphan lives on: nothing is deleted under it
            return
    for pattern in LEFTOVERS:
        for path in git_dir.glob(pattern):
            with contextlib.suppress(OSError):
                if before is None or path.lstat().st_mtime < before:
                    path.unlink()


def _collecting(pid_file: Path) -> bool:
    """Whether ``pid_file`` (git's ``gc.pid``: ``PID HOSTNAME``) names a git process alive on
    this host, as git itself judges it."""
    try:
        pid, _, host = pid_file.read_text(errors="replace")[:300].strip().partition(" ")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        name = Path(f"/proc/{int(pid)}/comm").read_text()
    except (OSError, ValueError):
        return False
    return name.startswith("git")


def _orphans_ended(git_dir: Path) -> bool:
    """Whether no git an earlier crontask left works in ``git_dir`` any more: this process
    looked already (``RUNNER_RECORD`` names it), or looked now and ended them all (and is named
    there from now on)."""
    record, me = git_dir / RUNNER_RECORD, _this_process()
    with contextlib.suppress(OSError):
        if me is not None and record.read_text(errors="replace")[:100] == me:
            return True
    if not end_orphans(git_dir):
        return False
    if me is not None:
        with contextlib.suppress(OSError):  # looked for again next time
            record.write_text(me)
    return True


def _this_process() -> str | None:
    """This process as ``RUNNER_RECORD`` names it (its pid is reused, not with its start
    time); None without /proc."""
    try:
        with open("/proc/self/stat", "rb") as file:
            fields = file.read(4096).rpartition(b")")[2].split()
        return f"{os.getpid()} {int(fields[19])}\n"
    except (OSError, IndexError, ValueError):
        return None


def end_orphans(git_dir: Path) -> bool:
    """Kill the process group of each git an earlier crontask left working on the repository
    at ``git_dir`` (see the module's contract) and wait, up to ``ORPHAN_WAIT``, for them all
    to end; False if one is still alive then. Another program's git there is left running,
    and False returned while it is: its locks and temporary files are its own, in use."""
    groups, others = _orphan_groups(_Markers(git_dir))
    # Looked for again at every call while one lives: told of once per group, not each time.
    if new := {(str(git_dir), group) for group in others} - _WARNED:
        _WARNED.update(new)
        log.warning(
            "a git of another program works on crontask's repository: left running",
            extra={"fields": {"repository": str(git_dir), "process_groups": sorted(others)}},
        )
    if not groups:
        return not others
    log.warning(
        "git left running by an earlier crontask stopped",
        extra={"fields": {"repository": str(git_dir), "process_groups": sorted(groups)}},
    )
    for group in groups:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + ORPHAN_WAIT
    while (alive := _live_groups(groups)) and time.monotonic() < deadline:
        time.sleep(_ORPHAN_POLL)
    return not alive and not others


def marked(git_dir: Path) -> list[str]:
    """The arguments (before the command) that mark a git call as crontask's, on the
    repository at ``git_dir``: an earlier crontask's, left running, is found by them."""
    return ["-c", f"{SETTING}={git_dir}"]


class _Markers:
    """How a git call of crontask's names the repository at ``git_dir`` in its command line:
    its ``-c`` setting (``marked``), or ``--git-dir=``, as an older crontask's did. Each with
    the path as that crontask spelled it (absolute, through the links ``--state-dir`` was
    given): compared as real paths, the state directory named through a link at one start and
    not at the next (``/srv/alias/st``, ``/srv/st``) is one repository. Only an absolute path
    is: a relative one is another program's, relative to a folder not this process's."""

    def __init__(self, git_dir: Path) -> None:
        self._written = os.fsencode(git_dir)
        self._real = os.fsencode(os.path.realpath(git_dir))

    def setting(self, arg: bytes) -> bool:
        return self._names(arg, os.fsencode(f"{SETTING}="))

    def git_dir(self, arg: bytes) -> bool:
        return self._names(arg, b"--git-dir=")

    def _names(self, arg: bytes, prefix: bytes) -> bool:
        if not arg.startswith(prefix):
            return False
        path = arg[len(prefix) :]
        if path == self._written:
            return True
        return path.startswith(b"/") and os.path.realpath(path) == self._real


def _others_since(markers: _Markers) -> float | None:
    """When the earliest process of another program's git at work on the repository started
    (seconds since the epoch): what it may hold was made since, and what is older is a
    leftover of an earlier crontask's (a reader, an operator's ``git log`` in a pager, would
    else stop every fetch at a lock left behind). None if a git shaped as crontask's lives."""
    groups, others = _orphan_groups(markers)
    if groups or not others:
        return None
    try:
        with open("/proc/stat", "rb") as file:
            boot = next(int(line.split()[1]) for line in file if line.startswith(b"btime "))
    except (OSError, StopIteration, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    starts = [
        boot + int(fields[19]) / ticks
        for pid in _processes()
        if len(fields := _stat(pid)) > 19 and int(fields[2]) in others
    ]
    return min(starts, default=None)


def _processes() -> list[int]:
    """The pids of the processes on this host, as ``/proc`` lists them (none without it)."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _orphan_groups(markers: _Markers) -> tuple[set[int], set[int]]:
    """The process groups of this user's processes that have one of ``markers`` as an argument, but
    this process's group (its own git calls end before ``remove_leftovers``): those shaped as
    crontask's git call, and the others."""
    own, uid = os.getpgrp(), os.getuid()
    groups: set[int] = set()
    others: set[int] = set()
    for pid in _processes():
        args = _arguments(pid, uid)
        if args is None or not any(markers.setting(a) or markers.git_dir(a) for a in args):
            continue
        try:
            group = os.getpgid(pid)
        except OSError:  # ended meanwhile
            continue
        if group != own:
            leader = _arguments(group, uid) if _leads_session(group) else None
            shaped = leader is not None and _runs_git(leader, markers)
            (groups if shaped else others).add(group)
    return groups, others


def _arguments(pid: int, uid: int) -> list[bytes] | None:
    """The command line of process ``pid``, if it is this user's (``uid``); None if not, or
    if it ended."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != uid:
            return None
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read(1024 * 1024).split(b"\0")
    except OSError:  # ended meanwhile, or not ours to read
        return None


def _leads_session(pid: int) -> bool:
    """Whether process ``pid`` leads a session (and so its group) of its own, as each git call
    of crontask's does (``gitprocess``: ``start_new_session``)."""
    fields = _stat(pid)
    return len(fields) > 3 and fields[0] not in (b"Z", b"X") and fields[3] == str(pid).encode()


def _runs_git(args: list[bytes], markers: _Markers) -> bool:
    """Whether the command line ``args`` is git's with ``markers``, as crontask runs it: under
    coreutils' ``timeout -k KILL DEADLINE``, then maybe ``sh -c SCRIPT sh KIB`` (the address-
    space limit), or alone where those are missing (``gitbounds.bounded``); git's ``-c``
    settings, one of them the setting (``marked``), or followed by ``--git-dir=`` (an older
    crontask's) (``GitRunner._start``, ``GitRepo``): named anywhere else, it may be an alias's
    argument to a git that works in another repository."""
    if len(args) > 4 and os.path.basename(args[0]) == b"timeout" and args[1] == b"-k":
        args = args[4:]
        if len(args) > 5 and args[1] == b"-c" and args[3] == b"sh" and args[4].isdigit():
            args = args[5:]
    if not args or os.path.basename(args[0]) != b"git":
        return False
    at = 1
    while at + 1 < len(args) and args[at] == b"-c":
        if markers.setting(args[at + 1]):
            return True
        at += 2
    return at < len(args) and markers.git_dir(args[at])


def _stat(pid: int) -> list[bytes]:
    """The fields of ``/proc/<pid>/stat`` after the command's name, in parentheses (it may hold
    any byte): state, ppid, pgrp, session, ...; none if the process ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read(4096)
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2 :].split()


def _live_groups(groups: set[int]) -> set[int]:
    """Those of ``groups`` with a process that has not ended (a zombie has)."""
    alive = set()
    for pid in _processes():
        fields = _stat(pid)
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) in groups:
            alive.add(int(fields[2]))
    return alive
