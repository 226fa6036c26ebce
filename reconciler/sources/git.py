"""The git source: CronTasks read from a branch, tag or commit of a git repository.

How it works (``crontask run --git URL``):

- ``sync()`` (the runtime calls it every ``status().next_retry_in`` seconds, in a thread: it
  blocks on the network) fetches into a bare repository
  ``<state_dir>/git/<key>/repo.git`` with the real ``git`` client (see ``gitenv`` for the
  isolation and credential handling, ``gitprocess`` for the timeouts) and resolves the ref.
  ``<key>`` is a stable hash of the redacted URL, the ref and the path, so two sources never
  share (and race on) one checkout, and changing a password in the URL does not start a new
  clone; another ref or path does, and the others' folders are deleted once it has a
  revision in force, in a thread that a stop ends (``gitkeys``). A name is fetched as a branch
  and as a tag, and resolved as what was fetched (``gitrefs``); a name the remote has as both
  is refused as ambiguous. Each sync ends with git's automatic collection (``gitmaintenance``).
- A new commit is checked out into its own folder ``worktrees/<sha>`` with
  ``git worktree add --detach --no-checkout`` and a ``git checkout`` of ``path`` alone (with what
  its links lead to in the commit: ``gitcheckout.checkout_paths``), after its trees were listed: a
  revision that would write a file over ``FILE_SIZE_MARGIN`` times ``max_file_size``, or more
  than ``MAX_CHECKOUT_BYTES`` or ``MAX_CHECKOUT_FILES``, or whose trees list more than
  ``MAX_LISTED_ENTRIES``, is refused whole (as soon as the listing passes the bound) and
  nothing of it is written (the revision in force stays, as for a failed checkout). Only then
  does the symlink ``current -> worktrees/<sha>`` move, atomically (a temporary symlink
  renamed over it), as git-sync does (``gitrevisions``); the pass starts, then older worktrees
  are deleted and pruned (``gitmaintenance.tidy``). Before each fetch, git's record of any
  worktree but ``current`` is deleted (a ``git worktree add`` killed mid-way fails every fetch).
  ``git worktree`` was chosen over ``git archive | tar -x``: it is what git-sync does, it needs
  no tar and no extraction code of our own (path-traversal checks, modes, symlinks), and
  ``export-ignore``/``export-subst`` attributes cannot silently change what is read.
  Submodules and LFS objects are not fetched.
- Reading is a ``DirectorySource`` rooted at ``current/<path>``, through the symlink: paths are
  the same in every revision, so the directory source's per-file last-known-good carries over.
  A file broken in a new revision keeps its tasks on their definitions from the revision before,
  with the error; a revision that yields no task while the one in force has some (``path``
  gone, or without a task file unless ``--allow-empty``) is refused whole, as one over the
  bounds is, so that a restart reads the tasks still (``gitempty``). Every Location has
  ``source="git"``, the path relative to the repository root (``deploy/tasks/a.yaml``) and
  ``revision`` = the SHA of the commit the text was read from (a kept last-good definition keeps
  its older SHA).
- A commit is as untrusted as a folder, and read with the same bounds (files over
  ``max_file_size``, YAML alias bombs, ...). A symlink in a commit may lead to another file of
  the same commit, resolved inside the worktree in force; one that leads out of it (to
  ``/etc/shadow``, to crontask's state directory), or to the worktree's own ``.git``
  (``gitfiles``), is a definition error of the link, and nothing is read through it (Argo CD's
  CVE-2022-24348 was this hole). So is ``path`` itself, checked on every refresh: a commit
  where it (or a folder on its way) is a link out of the worktree is an error of ``path`` in
  that revision, nothing under it is listed, and its tasks stay as when ``path`` is gone; a
  link to another folder of the commit is followed.
- Reads and the switch of ``current`` hold one lock, so a ``refresh()`` never walks a tree
  that is being replaced; one being deleted is no longer ``current`` (see ``sync``).

Failures never wipe. An unreachable remote, an authentication failure, a ref deleted on the
remote ("ref 'x' not found on remote"), a checkout that fails or is refused: the revision in
force stays, ``last_sync`` too (``GitStatus``), and the error is in ``status().last_error`` with
exponential backoff (``interval`` doubled on each consecutive failure, capped at
``max_backoff``); the next success resets it. A force-push is just
a new commit (``fetch --force``); a newer commit always supersedes one whose checkout failed.
A fetch whose git says ``repo.git`` is damaged (what a power loss can leave; what the remote
says never counts) deletes it, says so in the error, and the next sync clones it again
(``Revisions.discard_damaged``).
``sync()`` raises only for programming errors. After a restart the revision under ``current``
is in force again before the first fetch.

Secrets (a token from ``token_file``/``token_env``, a password in the URL) are re-read on every
sync (so rotated tokens work), passed to git only through its environment, and never logged,
put in argv, written under ``state_dir``, or shown in ``status()``.

git-sync compatibility: ``crontask run`` on git-sync's ``--link`` (a symlink git-sync swaps
atomically to each new worktree) works with the plain directory source: it never resolves the
link, so each revision is picked up once, with stable paths and last-known-good; the watcher
sees the swap at once (``sources.watch`` watches the folder of each link on a root's way). One
caveat: a read that runs while git-sync swaps may read some files from each revision (each file
whole); the event of the swap reads them again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path

from reconciler.aio import ended, first_of, in_thread
from reconciler.core.desired import Definition, DefinitionError, SourceKind
from reconciler.core.urls import redact_url
from reconciler.sources.ahead import read_ahead
from reconciler.sources.base import Notify, Ready
from reconciler.sources.gitcheckout import FILE_SIZE_MARGIN, CheckoutLimits, CheckoutRefusedError
from reconciler.sources.gitcredentials import credentials_of
from reconciler.sources.gitempty import has_task_files, without_tasks
from reconciler.sources.gitenv import Credentials, git_env
from reconciler.sources.gitfiles import repository_files
from reconciler.sources.gitintact import check_in_force
from reconciler.sources.gitkeys import describe, log_previous, start_removal, state_key
from reconciler.sources.gitmaintenance import CollectionBackoff, tidy
from reconciler.sources.gitnames import check_ref, clean_path
from reconciler.sources.gitoptions import GitOptions as GitOptions
from reconciler.sources.gitoptions import GitStatus as GitStatus
from reconciler.sources.gitoptions import retry_in
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import GitRepo, Redactor, RefNotFoundError
from reconciler.sources.gitrevisions import MIRROR_SAID, Mirror, Revisions
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_TASKS

log = logging.getLogger("crontask.sources.git")

# Seconds from the end of a fetch a webhook asked for to the next (a signed delivery, replayed,
# made fetches back to back). Asks in between are not dropped: one fetch follows the wait.
HOOK_SPACING = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _hold_off(stop: asyncio.Event, seconds: float) -> None:
    await first_of(stop, timeout=seconds)  # on its own: tests stand in for it


class GitSource:
    """A ``Source`` (kind ``"git"``) reading CronTasks from a git repository."""

    kind = SourceKind.GIT
    authoritative = False  # see Source.authoritative

    def __init__(
        self,
        options: GitOptions,
        state_dir: Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> None:
        check_ref(options.ref)
        if options.interval <= 0 or options.timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.options = options
        self.path = clean_path(options.path)
        # Shown and fetched alike: a query or fragment has no meaning to git (it adds its own
        # path after the URL), and credentials reach git apart (``_credentials``).
        self.url = redact_url(options.url)
        self._clock = clock
        self._state_dir = Path(state_dir)
        key = state_key(self.url, options.ref, self.path)  # a new one per ref, path: ``gitkeys``
        self.base = self._state_dir.absolute() / "git" / key
        limits = CheckoutLimits(max_file=max_file_size * FILE_SIZE_MARGIN)
        self._revisions = Revisions(self.base, path=self.path, limits=limits)
        self.current = self._revisions.current
        if self._revisions.applied is None:
            log_previous(self.base, self.url)
        self.worktrees = self._revisions.worktrees
        root = self.current / self.path if self.path else self.current
        # A link in a commit may point at another file of the commit, never out of it (nor
        # at the worktree's .git): ``gitfiles``' rule, which ``validate --git-path`` uses too.
        self._files = repository_files(
            [root],
            self.current,
            source=self.kind,
            relative_to=self.current,
            max_file_size=max_file_size,
            max_tasks=max_tasks,
            refused_record=self.base / "refused-files.json",
            guard_empty=options.guard_empty,
            refused=self._revisions.refused,  # entries of the commit git never wrote
        )

        self._lock = threading.Lock()  # the status fields: held for a moment only
        # The switch of `current` vs. reads of its tree. Apart from ``_lock``: a read of a
        # large tree holds it for seconds, and ``status()`` is asked on the event loop.
        # Taken before ``_lock`` when both are.
        self._tree_lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one sync at a time
        self._attempted: str | None = None
        self._read_revision: str | None = None  # the revision `_files` last read
        self._last_sync: datetime | None = None
        self._last_attempt: datetime | None = None
        self._error: str | None = None
        self._failures = 0
        self._failed_total = 0
        self._wanted: asyncio.Event | None = None  # a webhook asked for a sync (see watch)
        self._asked_at = -float("inf")  # time.monotonic() when the last one asked for ended
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: GitRepo | None = None  # the repository a sync is working on
        self._collection = CollectionBackoff()  # only syncs use it, one at a time
        self._cancelled = False
        self._removal: threading.Thread | None = None  # of other keys' folders (``gitkeys``)
        self._stop: asyncio.Event | None = None  # watch's: it ends that removal too
        self._on_applied: Callable[[], object] | None = None  # watch's: a new revision in force
        self._leftovers = self._revisions.applied is not None  # see _tidy_leftovers

    # -- syncing -------------------------------------------------------------------------

    def sync(self) -> bool:
        """Fetch, and apply the ref's commit if it is new; then the housekeeping, after the pass
        is handed it (``gitmaintenance``). True if the revision changed."""
        with self._sync_lock:
            try:
                changed = self._sync()
                self._tidy_leftovers(changed)
                self._remove_others()
                self._collect()
                return changed
            finally:
                with self._lock:  # ``_sync_now`` sets the callback for this sync alone
                    self._in_flight = self._on_applied = None

    def cancel(self) -> None:
        """crontask is stopping: kill the git call in flight (a fetch from a remote that hangs
        would hold the shutdown for up to ``timeout``); this and later syncs end at once,
        changing nothing and recording no failure."""
        with self._lock:
            self._cancelled = True
            repo = self._in_flight
        if repo is not None:
            repo.cancel()

    def status(self) -> GitStatus:
        with self._lock:
            return GitStatus(
                location=f"{self.url}#{self.options.ref}",
                revision=self._revisions.applied,
                attempted_revision=self._attempted,
                last_sync=self._last_sync,
                last_attempt=self._last_attempt,
                last_error=self._error,
                sync_failures=self._failed_total,
                url=self.url,
                ref=self.options.ref,
                consecutive_failures=self._failures,
                next_retry_in=retry_in(self.options, self._failures),
            )

    # -- its life --------------------------------------------------------------------------

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None:
        """Fetch on the interval (or the backoff after failures), or when asked
        (``request_sync``: a push webhook; see ``HOOK_SPACING``); a new revision notifies.

        Ready after the first sync attempt when no revision is in force yet. When one is (the
        revision in force before a restart, read from disk), ready at once and the first fetch
        follows: a remote that hangs must not hold back the tasks, nor the API, for up to the
        git timeout."""
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        self._wanted = asyncio.Event()
        if self.status().revision is None:
            await self._sync_now(notify, stop, ready)
        else:
            ready()
            await self._sync_now(notify, stop, lambda: None)
        while not stop.is_set():
            await first_of(stop, self._wanted, timeout=self.status().next_retry_in)
            asked = self._wanted.is_set()
            if asked and (wait := self._asked_at + HOOK_SPACING - time.monotonic()) > 0:
                await _hold_off(stop, wait)  # asks meanwhile: the one fetch after it
            self._wanted.clear()
            if stop.is_set():
                return
            await self._sync_now(notify, stop, lambda: None)
            if asked:
                self._asked_at = time.monotonic()

    def request_sync(self) -> bool:
        """Fetch now (from any thread); False if the source is not running."""
        loop, wanted = self._loop, self._wanted
        if loop is None or wanted is None:
            return False
        loop.call_soon_threadsafe(wanted.set)
        return True

    async def _sync_now(self, notify: Notify, stop: asyncio.Event, ready: Ready) -> None:
        # The pass (and ``ready``) once a new revision is in force: the housekeeping is after it.
        loop, applied = asyncio.get_running_loop(), asyncio.Event()
        self._on_applied = lambda: loop.call_soon_threadsafe(applied.set)
        syncing = asyncio.ensure_future(in_thread(self.sync))
        await first_of(stop, applied, ended(syncing))
        if applied.is_set():
            notify(())
        ready()
        await first_of(stop, ended(syncing))
        if not syncing.done():
            # Stopping: a fetch in flight (from a remote that hangs, perhaps) is killed rather
            # than waited for, up to the git timeout.
            self.cancel()
        if await syncing and not applied.is_set():
            notify(())

    def _sync(self) -> bool:
        now = self._clock()
        with self._lock:
            self._last_attempt = now
        redact = Redactor()
        repo: GitRepo | None = None
        try:
            options = self.options
            credentials = credentials_of(options.url, options.token_file, options.token_env)
            redact = Redactor(credentials.secrets() if credentials else [])
            repo = self._repo(credentials, redact)
            with self._lock:
                self._in_flight = repo
                if self._cancelled:
                    repo.cancel()
            self._revisions.prepare(repo)  # the repository made, leftovers deleted
            describe(self.base, self.url, self.options.ref, self.path)
            names = repo.fetch_ref(self.url, self.options.ref)
            self._revisions.fetched()
        except RefNotFoundError as err:
            return self._failed(str(err), None)
        except (GitError, OSError) as err:
            return self._fetch_failed(repo, err, redact(str(err)))
        try:
            sha = repo.resolve(self.url, self.options.ref, names)
        except GitError as err:
            return self._failed(redact(str(err)), None)
        with self._lock:
            self._attempted = sha
        if sha == self._revisions.applied and self.current.is_dir():
            self._succeeded()
            return False
        try:
            self._revisions.check_out(repo, sha)
            self._check_yield(sha)
        except CheckoutRefusedError as err:
            return self._failed(f"revision {sha[:12]} refused: {redact(str(err))}", sha)
        except (GitError, OSError) as err:
            return self._failed(f"checkout of {sha[:12]} failed: {redact(str(err))}", sha)
        previous = self._revisions.applied
        try:
            with self._tree_lock, self._lock:
                self._revisions.switch(sha)
        except OSError as err:
            return self._failed(f"switch to {sha[:12]} failed: {err}", sha)
        self._succeeded()
        fields = {"url": self.url, "ref": self.options.ref, "revision": sha, "previous": previous}
        log.info("git revision applied", extra={"fields": fields})
        if (applied := self._on_applied) is not None:
            applied()
        tidy(self._revisions, repo, self._stopped)
        return True

    def _check_yield(self, sha: str) -> None:
        """Refuse the revision ``sha``, checked out, if it yields no task while the revision in
        force has some (``gitempty``); raises CheckoutRefusedError."""
        with self._tree_lock:
            applied, path = self._revisions.applied, self.path
            read = applied == self._read_revision  # else not read yet in this process
            tasks = applied is not None and (
                bool(self._files.definitions()) if read else has_task_files(self.current, path)
            )
        new, guard = self.worktrees / sha, self.options.guard_empty
        why = without_tasks(new, path, guard_empty=guard, before=self.current)
        if tasks and why is not None:
            raise CheckoutRefusedError(why)

    def _tidy_leftovers(self, switched: bool) -> None:
        """A start's first sync, with a revision in force from before, deletes every other
        worktree (``tidy``, unless its switch did): one whose deletion a kill -9 cut short
        (232 MB seen) stayed until the next new revision. Whatever the fetch did."""
        if self._leftovers and not switched and not self._cancelled:
            with self._lock:
                repo = self._in_flight
            tidy(self._revisions, repo, self._stopped)
        self._leftovers = False

    def _collect(self) -> None:
        """``git gc --auto`` after each sync (``gitmaintenance``): its failure is not the sync's."""
        with self._lock:
            repo = None if self._cancelled else self._in_flight
        if repo is None or not (repo.git_dir / "HEAD").is_file():
            return
        fields: dict[str, object] = {"url": self.url, "ref": self.options.ref}
        self._collection.run(repo.collect, self._clock(), fields, lambda: self._cancelled)

    def _remove_others(self) -> None:
        """Once a sync ended well, the state folders of other refs and paths (``gitkeys``), in
        a thread that a stop ends: a large one holds neither the first pass nor the stop."""
        with self._lock:
            ended_well = self._error is None and self._last_sync is not None
        if ended_well and not self._cancelled and self._removal is None:
            self._removal = start_removal(self._state_dir, self.base, self._stopped)

    def _stopped(self) -> bool:
        """Whether crontask is stopping (``cancel``, or ``watch``'s stop): a deletion ends."""
        stop = self._stop
        return self._cancelled or (stop is not None and stop.is_set())

    def _repo(self, credentials: Credentials | None, redact: Redactor) -> GitRepo:
        env = git_env(
            self.url,
            credentials=credentials,
            ssh_key_file=self.options.ssh_key_file,
            known_hosts_file=self.options.known_hosts_file,
        )
        return GitRepo(
            self.base / "repo.git",
            env=env,
            timeout=self.options.timeout,
            redact=redact,
            memory_limit=self.options.memory_limit,
        )

    def _succeeded(self) -> None:
        """The sync ended well: the ref's revision is in force. Only then does the last sync
        move (a fetch whose revision cannot be applied is a failed sync: the alert on it fires)."""
        ended = self._clock()
        with self._lock:
            self._last_sync = ended
            recovered = self._failures > 0
            self._failures = 0
            self._error = None
        if recovered:
            fields = {"url": self.url, "ref": self.options.ref}
            log.info("git sync recovered", extra={"fields": fields})

    def _failed(self, message: str, sha: str | None) -> bool:
        if self._cancelled:
            return False  # cut short by cancel(): not the remote's failure
        with self._lock:
            self._failures += 1
            self._failed_total += 1
            retry = retry_in(self.options, self._failures)
            self._error = f"{message} (retrying in {retry:g}s)"
            if sha is not None:
                self._attempted = sha
            failures, applied = self._failures, self._revisions.applied
        fields: dict[str, object] = {"url": self.url, "ref": self.options.ref, "revision": sha}
        fields.update(applied=applied, error=message, failures=failures, retry_in=retry)
        log.warning("git sync failed", extra={"fields": fields})
        return False

    def _fetch_failed(self, repo: GitRepo | None, err: Exception, error: str) -> bool:
        """A failed fetch (``err``, said redacted as ``error``); a mirror git found damaged is
        deleted, to be cloned again at the next sync (``Revisions.discard_damaged``), and the
        message says so."""
        message = f"fetch failed: {error}"
        if repo is None or self._cancelled:
            return self._failed(message, None)
        mirror = self._revisions.discard_damaged(repo, err, self._clone_into)
        if mirror is Mirror.DELETED:
            fields = {"url": self.url, "ref": self.options.ref, "error": error[:300]}
            log.warning("git mirror damaged: deleted", extra={"fields": fields})
        return self._failed(f"{message}{MIRROR_SAID[mirror]}", None)

    def _clone_into(self, new: GitRepo) -> None:
        """A new clone of the mirror (``Revisions.discard_damaged``), cancelled by a stop."""
        with self._lock:
            repo, self._in_flight = self._in_flight, new
            if self._cancelled:
                new.cancel()
        try:
            new.ensure()
            new.fetch_ref(self.url, self.options.ref)
        finally:
            with self._lock:
                self._in_flight = repo

    def read_ahead(self, workers: int) -> int:
        """At start-up, before any thread exists: read the tree an earlier run left in force
        on ``workers`` processes (``sources.ahead``), for the first refresh to take. The files
        read; 0 when there is no such tree (the first sync clones it). The tree is checked
        against its commit first, and checked out again if it differs (``gitintact``)."""
        with self._tree_lock:
            if self._revisions.applied is None:
                return 0
            fields: dict[str, object] = {"url": self.url, "ref": self.options.ref}
            check_in_force(self._revisions, self._repo(None, Redactor()), fields)
            self._files.revision = self._revisions.applied
            return read_ahead(self._files, workers)

    # -- the Source protocol -------------------------------------------------------------

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        """Re-read the tree in force. The tree of a revision never changes, so with ``hints``
        (file-watch events, which concern other sources) only a new revision is read."""
        with self._tree_lock:
            revision = self._revisions.applied
            if revision is None:
                return set()
            if hints is not None and revision == self._read_revision:
                return set()
            self._files.revision = revision
            changed = self._files.refresh()
            self._read_revision = revision
            return changed

    def definitions(self) -> list[Definition]:
        with self._tree_lock:
            return self._files.definitions()

    def definitions_of(self, keys: Collection[str]) -> list[Definition]:
        with self._tree_lock:
            return self._files.definitions_of(keys)

    def errors(self) -> list[DefinitionError]:
        with self._tree_lock:
            return self._files.errors()
