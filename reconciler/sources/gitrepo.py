"""The git client, as the git source drives it: one bare repository, fetched and checked out.

Contracts (how each call is run, with its deadline, is ``gitprocess``'s):

- git runs isolated from the machine. Of crontask's environment it inherits only what git, its
  HTTP helper (libcurl) and ssh need, no credential among it but a proxy URL's (``INHERITED``):
  git and its children are dumpable, so a command task (same user) reads their
  ``/proc/<pid>/environ`` during a fetch, and ``CRONTASK_DB``, a ``--git-token-env`` variable
  or a cloud key must not be there. ``GIT_CONFIG_NOSYSTEM=1`` and
  ``GIT_CONFIG_GLOBAL=/dev/null`` (no user or system config: no credential helper, no hooks,
  no ``url.insteadOf`` surprises), ``GIT_TERMINAL_PROMPT=0`` and an empty ``GIT_ASKPASS``
  (never prompt, never fall back to ``SSH_ASKPASS``), ssh in ``BatchMode`` (and with
  keepalives: a server gone silent ends the connection after about a minute, even for a git
  this process left behind), and ``LC_ALL=C`` so that the few messages recognised below are
  in English.
- A local repository (``file://`` or a path) is read whoever owns it: git refuses one another
  user owns ("dubious ownership") unless ``safe.directory`` names it, in a config crontask's git
  does not read; the fetch names the repository it was given, and only that one
  (``upload_pack``).
- Secrets never reach argv or disk. HTTP credentials (a token, or the user:password of a URL)
  are handed to git by a credential helper defined through ``GIT_CONFIG_COUNT`` /
  ``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n``, scoped to the repository's
  ``scheme://host[:port]``; the helper is a shell snippet that prints two environment variables
  set only in git's environment (where a command task can read them during a fetch: with a
  proxy URL's userinfo, the only secret git's environment holds). The URL given to git (and
  so stored in ``FETCH_HEAD``-like places and echoed in its messages) never carries userinfo.
  Every message that leaves this module went through ``Redactor``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import urllib.parse
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from reconciler import statedir
from reconciler.sources import gitmaintenance
from reconciler.sources.gitprocess import GitError, GitRunner
from reconciler.sources.gitrefs import FULL_SHA, HEX, PRIVATE, alternatives

# The userinfo of an http(s) URL in git's messages: up to its first "@", and on to the last
# "@" before the next "/". A "/" in it (unencoded: "https://tok3n/S3CRET@host") made urlsplit,
# and git, end the authority there, so it may run past a "/".
_HTTP_USERINFO = re.compile(r"(?i)(https?://)[^\s@]*@(?:[^\s/@]*@)*")
# How much of git's stdout is read (past it, a GitError): ``run``'s commands write a few lines
# or SHAs; ``run_bytes``'s largest read is gitcheckout.read_blobs's one cat-file of link
# targets, at most MAX_CHECKOUT_LINKS (1000) of at most MAX_PATH (4 KiB) each, with headers.
_MAX_TEXT_OUTPUT = 1024 * 1024
_MAX_BLOBS_OUTPUT = 8 * 1024 * 1024

USERNAME_VAR = "CRONTASK_GIT_USERNAME"
PASSWORD_VAR = "CRONTASK_GIT_PASSWORD"  # noqa: S105 - the variable's name, not a password
# A "!" helper is run by the shell; it answers "get" and ignores "store"/"erase".
_HELPER = (
    f'!f() {{ test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    f'"${USERNAME_VAR}" "${PASSWORD_VAR}"; }}; f'
)


class RefNotFoundError(GitError):
    """The remote was reached but does not have the ref (deleted branch, unknown tag/SHA)."""


class AmbiguousRefError(GitError):
    """An abbreviated SHA that is also a branch or tag name, or the start of several commits."""


# A user name this short is a name, not a token (tokens run to 20 characters and more).
_TOKEN_MIN = 8
# What a checkout writes is the blob: no end-of-line conversion, no $Id$ expansion, no
# re-encoding, no filter driver (see GitRepo._as_stored).
_AS_STORED = "* -text -eol -ident -working-tree-encoding -filter\n"


# What git inherits of crontask's environment, and nothing else (see the module's docstring).
# Proxies: git reads these itself (NO_PROXY only with a proxy from them). The ssh agent, a
# Kerberos ticket cache (HTTP Negotiate, ssh GSSAPI) and CA bundles are paths. The loader's,
# with nss_wrapper's: a container under an arbitrary uid gives ssh (which refuses a uid
# without one) its passwd entry that way. PWD: git makes a relative path absolute with it,
# keeping its links (upload_pack's safe.directory names the path as written). Not LANG/LC_*:
# LC_ALL=C overrides them.
INHERITED = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "PWD"),
        *("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"),
        *("all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"),
        *("SSH_AUTH_SOCK", "KRB5CCNAME", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"),
        *("LD_LIBRARY_PATH", "LD_PRELOAD", "NSS_WRAPPER_PASSWD", "NSS_WRAPPER_GROUP"),
    }
)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """HTTP basic credentials; neither field is ever shown in a repr."""

    username: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)

    def secrets(self) -> list[str]:
        """What git's messages must not show: the password, and the user name when it may be
        a token (``https://TOKEN@host``, ``https://TOKEN:x-oauth-basic@host``). A short user
        name is not one, and replacing it everywhere made ``u`` of ``Couldn't`` a ``***``."""
        return [self.password, *([self.username] if len(self.username) >= _TOKEN_MIN else [])]


class Redactor:
    """Removes known secrets and the userinfo of http(s) URLs from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _HTTP_USERINFO.sub(r"\1***@", text)


def url_credentials(url: str) -> Credentials | None:
    """The user:password embedded in an http(s) URL, if any."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return None
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    return Credentials(urllib.parse.unquote(user), urllib.parse.unquote(password))


def _origin(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}"


def git_env(
    url: str,
    *,
    credentials: Credentials | None = None,
    ssh_key_file: Path | None = None,
    known_hosts_file: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every git call for ``url`` (a URL without userinfo)."""
    inherited = os.environ if base is None else base
    # None of git's own variables (GIT_DIR, GIT_SSH_COMMAND, GIT_CONFIG_PARAMETERS, ...) either:
    # they would change what git does behind our back.
    env = {k: v for k, v in inherited.items() if k in INHERITED}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",  # empty, not unset: stops git falling back to SSH_ASKPASS
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        LC_ALL="C",
    )
    # Keepalives: a server that stops answering ends the connection after 4 x 15 s unanswered,
    # also when this process died without killing git (none of git's own deadlines covers ssh).
    ssh = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=4",
    ]
    if ssh_key_file is not None:
        ssh += ["-i", str(ssh_key_file), "-o", "IdentitiesOnly=yes"]
    if known_hosts_file is not None:
        ssh += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts_file}"]
    env["GIT_SSH_COMMAND"] = shlex.join(ssh)  # run by a shell: quote the paths
    env["GIT_SSH_VARIANT"] = "ssh"
    origin = _origin(url)
    if credentials is not None and origin is not None:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"credential.{origin}.helper",
            GIT_CONFIG_VALUE_0=_HELPER,
        )
        env[USERNAME_VAR] = credentials.username
        env[PASSWORD_VAR] = credentials.password
    return env


def local_path(url: str) -> str | None:
    """The path of the local repository ``url`` names (``file://`` or a path, as git tells
    them from ``host:path``), None for a remote one."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.unquote(parts.path) if parts.scheme.lower() == "file" else None
    return None if ":" in url.partition("/")[0] else url


def upload_pack(url: str) -> list[str]:
    """The options of a fetch from ``url``: for a local repository owned by another user, git's
    ``upload-pack`` refuses it ("dubious ownership") unless ``safe.directory`` names it, and
    neither ``-c`` nor ``GIT_CONFIG_PARAMETERS`` reaches it (git clears the latter for a local
    ``upload-pack``): its command line carries the setting. Both spellings git may compare:
    the path as written (relative ones too) and the real one (git resolves links in it); and
    for each, the repository git may find there: the folder itself (bare), its ``.git`` (a
    working clone) or the folder with ``.git`` added (``repo`` for ``repo.git``)."""
    path = local_path(url)
    if path is None:
        return []
    path = path.rstrip("/") or "/"
    command = ["git"]
    for written in dict.fromkeys([path, os.path.realpath(path)]):
        for allowed in (written, os.path.join(written, ".git"), f"{written}.git"):
            command += ["-c", f"safe.directory={allowed}"]
    return ["--upload-pack", shlex.join([*command, "upload-pack"])]  # run by a shell: quoted


def check_ref(ref: str) -> None:
    """Refuse a ref that could be read as an option or is not a ref name at all."""
    if not ref or ref.startswith("-") or any(c.isspace() or c in "~^:?*[\\" for c in ref):
        raise ValueError(f"invalid git ref: {ref!r}")
    if ".." in ref or ref.endswith((".", "/", ".lock")) or "//" in ref or "@{" in ref:
        raise ValueError(f"invalid git ref: {ref!r}")


def remove_tree(top: Path) -> None:
    """``shutil.rmtree(top)`` without recursion: on Python 3.11 it recursed, and a commit can
    nest folders past the recursion limit (a RecursionError, not an OSError).
    Links are removed, never followed. Raises OSError."""
    stack = [(top, False)]
    while stack:
        path, emptied = stack.pop()
        if emptied:
            path.rmdir()
            continue
        if not path.is_dir() or path.is_symlink():
            path.unlink()
            continue
        stack.append((path, True))
        with os.scandir(path) as entries:
            for entry in entries:
                stack.append((Path(entry.path), False))


def clean_path(path: str) -> str:
    """``path`` as a clean relative POSIX path ("" for the root); refuses escapes."""
    pure = PurePosixPath(path.strip() or ".")
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"git path must be relative to the repository root: {path!r}")
    clean = str(pure)
    return "" if clean == "." else clean


class GitRepo:
    """A bare repository at ``git_dir`` and the git calls made on it."""

    def __init__(
        self,
        git_dir: Path,
        *,
        env: Mapping[str, str],
        timeout: float,
        redact: Redactor,
    ) -> None:
        self.git_dir = git_dir
        self._runner = GitRunner(env=env, timeout=timeout, redact=redact)

    def cancel(self) -> None:
        """Kill the git call in flight (its whole group) and refuse later ones: each raises
        GitError. For a shutdown that must not wait for a remote that hangs."""
        self._runner.cancel()

    # -- the operations ------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the bare repository if it is missing (or was left half-made)."""
        self._remove_scratches()
        if (self.git_dir / "HEAD").is_file():
            return
        with contextlib.suppress(OSError):
            remove_tree(self.git_dir)
        statedir.make_dirs(self.git_dir.parent)  # 0700: checkouts may hold secrets
        # Made under a temporary name and renamed, so a crash never leaves a half-made one.
        scratch = self.git_dir.with_name(f".{self.git_dir.name}.{os.getpid()}")
        self.run(["init", "--bare", "--quiet", str(scratch)], git_dir=False)
        os.rename(scratch, self.git_dir)

    def _remove_scratches(self) -> None:
        """Delete the scratch repositories of ``ensure`` calls killed before their rename: each
        is named after its process's pid, so no later process came upon one of them."""
        prefix = f".{self.git_dir.name}."
        scratches: list[Path] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.git_dir.parent) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit():
                    scratches.append(Path(entry.path))
        for scratch in scratches:
            with contextlib.suppress(OSError):
                remove_tree(scratch)

    def forget_worktrees(self, keep: str | None) -> None:
        """Delete git's record of every worktree (``repo.git/worktrees/<name>``) but ``keep``'s.
        A ``git worktree add`` killed (a shutdown's cancel, the timeout, crontask killed)
        between writing its record (``locked``, and a HEAD of zeros) and the ``update-ref``
        child that sets that HEAD leaves one that fails every later fetch ("bad object
        worktrees/<sha>/HEAD"), and ``git worktree prune`` never removes a locked record. Each
        worktree is crontask's own, named after its SHA, and only the one in force is needed.
        Only between git calls (as ``gitmaintenance.remove_leftovers``). Raises OSError."""
        stale: list[Path] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.git_dir / "worktrees") as it:
            stale += [Path(e.path) for e in it if e.name != keep]
        for record in stale:
            remove_tree(record)

    def fetch_ref(self, url: str, ref: str) -> tuple[str, ...]:
        """Fetch ``ref``: its ``alternatives`` in turn until the remote has one; the names that
        one wrote, for ``resolve``. RefNotFoundError if the remote has none. The names of an
        alternative the remote lacks are deleted: a fetch that finds nothing prunes nothing, and
        the ref a deleted branch left would keep its commits (or be taken for the ref)."""
        *first, last = alternatives(ref)
        for alternative in first:
            try:
                self.fetch(url, alternative.specs, ref)
            except RefNotFoundError:
                self._forget(alternative.names)
                continue
            return alternative.names
        try:
            self.fetch(url, last.specs, ref)
        except RefNotFoundError:
            self._forget(last.names)
            raise
        return last.names

    def fetch(self, url: str, specs: Sequence[str], ref: str) -> None:
        """``git fetch --prune --force``: a force-push or a moved tag simply replaces the ref.
        git's automatic maintenance is left to ``collect`` (see ``gitmaintenance``)."""
        args = ["fetch", "--prune", "--force", "--no-tags", "--no-write-fetch-head", "--quiet"]
        args += ["--no-auto-maintenance", *upload_pack(url)]
        try:
            self._cleanly([*args, url, *specs])
        except GitError as err:
            if "couldn't find remote ref" in str(err):
                raise RefNotFoundError(f"ref {ref!r} not found on remote") from None
            raise

    def _forget(self, names: Sequence[str]) -> None:
        for name in names:  # on a failure, the next fetch that finds nothing tries again
            with contextlib.suppress(GitError):
                self.run(["update-ref", "-d", name])

    def collect(self) -> None:
        """git's automatic collection (``git gc --auto``: it decides whether there is anything
        to do), with a deadline of its own (see ``gitmaintenance``). GitError if it fails."""
        timeout = gitmaintenance.collection_timeout(self._runner.timeout)
        self._cleanly(gitmaintenance.COLLECT, timeout=timeout)

    def _cleanly(self, args: Sequence[str], *, timeout: float | None = None) -> None:
        """A fetch killed at the timeout leaves what it had received (a remote that is slow, or
        streams for ever, would add to it on every retry until the disk is full), and the
        locks it held; so does a collection. They are deleted before each such call and after a
        failed one (``gitmaintenance.remove_leftovers``). The caller runs one at a time."""
        gitmaintenance.remove_leftovers(self.git_dir)
        try:
            self.run(args, timeout=timeout)
        except GitError:
            gitmaintenance.remove_leftovers(self.git_dir)
            raise

    def resolve(self, url: str, ref: str, names: Sequence[str]) -> str:
        """The commit ``ref`` names, after ``fetch_ref`` fetched ``names`` (the first of them
        that exists); RefNotFoundError if there is none.

        A full SHA is that commit and nothing else. An abbreviated one that is also the name of
        a branch or tag is AmbiguousRefError: a branch anyone can push must not stand in for a
        pinned commit, and guessing which one was meant would do just that."""
        if FULL_SHA.fullmatch(ref):
            return self._pinned(url, ref)
        named = [sha for sha in map(self.rev_parse, names) if sha is not None]
        commits = self._commits_starting_with(ref) if HEX.fullmatch(ref) else []
        if named and commits:
            raise AmbiguousRefError(
                f"ref {ref!r} is ambiguous: a branch or tag has this name and a commit SHA starts"
                " with it; use refs/heads/..., refs/tags/... or the full SHA"
            )
        if len(commits) > 1:
            raise AmbiguousRefError(
                f"ref {ref!r} is ambiguous: more than one commit starts with it"
            )
        if named or commits:
            return (named or commits)[0]
        raise RefNotFoundError(f"ref {ref!r} not found on remote")

    def _pinned(self, url: str, sha: str) -> str:
        if self.rev_parse(sha) != sha:
            # A commit no branch or tag reaches any more: servers that allow it hand it out.
            try:
                pin = ["fetch", "--quiet", "--no-write-fetch-head", "--no-auto-maintenance"]
                self._cleanly([*pin, *upload_pack(url), url, f"+{sha}:{PRIVATE}pin"])
            except GitError:
                raise RefNotFoundError(f"ref {sha!r} not found on remote") from None
        # git reads a full hex name as the object even when a ref has that name.
        if self.rev_parse(sha) != sha:
            raise RefNotFoundError(f"ref {sha!r} not found on remote")
        return sha

    def _commits_starting_with(self, prefix: str) -> list[str]:
        """The commits whose SHA starts with ``prefix`` (by object name only, never a ref)."""
        try:
            out = self.run(["rev-parse", f"--disambiguate={prefix}"])
        except GitError:
            return []
        return [oid for oid in out.split() if self.rev_parse(oid) == oid]

    def _as_stored(self) -> None:
        """The repository's own attributes (above every ``.gitattributes`` of the commit, for
        every worktree) turn off what would write a file other than its blob: the sizes
        checked before the checkout (``gitcheckout``) are the blobs', and a commit's
        ``ident``, ``working-tree-encoding`` or ``eol`` multiplied them (a 12 MB blob of
        ``$Id$`` was written as 141 MB)."""
        info = self.git_dir / "info"
        attributes = info / "attributes"
        with contextlib.suppress(OSError):
            if attributes.read_text() == _AS_STORED:
                return
        info.mkdir(mode=0o700, exist_ok=True)
        scratch = info / f".attributes.{os.getpid()}"
        scratch.write_text(_AS_STORED)
        os.replace(scratch, attributes)

    def rev_parse(self, name: str) -> str | None:
        try:
            out = self.run(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"]
            )
        except GitError:
            return None
        return out.strip() or None

    def add_worktree(self, dest: Path, sha: str, paths: Sequence[str]) -> None:
        """Check ``paths`` of ``sha`` out into the new folder ``dest`` (detached: no branch is
        involved), and nothing else of the commit ("." for all of it). Each file as its blob
        is (``_AS_STORED``)."""
        self._as_stored()
        try:
            self.run(["worktree", "add", "--detach", "--no-checkout", "--quiet", str(dest), sha])
            if paths:
                pathspecs = "".join(f"{p}\0" for p in paths).encode("utf-8", "surrogateescape")
                checkout = ["checkout", "--quiet", sha, "--pathspec-from-file=-"]
                self.run(
                    ["--literal-pathspecs", *checkout, "--pathspec-file-nul"],
                    git_dir=False,
                    cwd=dest,
                    input=pathspecs,
                )
        except GitError:
            # git removes a failed checkout itself; make sure, and forget its record: by hand,
            # as a killed add leaves it locked (see forget_worktrees) and a cancel stops git.
            with contextlib.suppress(OSError):
                remove_tree(dest)
            with contextlib.suppress(OSError):
                remove_tree(self.git_dir / "worktrees" / dest.name)
            with contextlib.suppress(GitError):
                self.prune_worktrees()
            raise

    def prune_worktrees(self) -> None:
        self.run(["worktree", "prune"])

    # -- running git ---------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        *,
        git_dir: bool = True,
        cwd: Path | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> str:
        """git's output (a few lines); GitError (redacted) if it fails, times out (after
        ``timeout``, by default the repository's), was cancelled or writes more than
        _MAX_TEXT_OUTPUT bytes."""
        out = self.run_bytes(
            args,
            git_dir=git_dir,
            cwd=cwd,
            input=input,
            max_stdout=_MAX_TEXT_OUTPUT,
            timeout=timeout,
        )
        return out.decode("utf-8", "replace")

    def run_bytes(
        self,
        args: Sequence[str],
        *,
        git_dir: bool = True,
        cwd: Path | None = None,
        input: bytes | None = None,
        max_stdout: int = _MAX_BLOBS_OUTPUT,
        timeout: float | None = None,
    ) -> bytes:
        """git's stdout; GitError past ``max_stdout`` bytes (see ``GitRunner.run_bytes``)."""
        prefix = [f"--git-dir={self.git_dir}"] if git_dir else []
        return self._runner.run_bytes(
            [*prefix, *args], cwd=cwd, input=input, max_stdout=max_stdout, timeout=timeout
        )

    def run_records(
        self, args: Sequence[str], *, separator: bytes, max_record: int
    ) -> Generator[bytes, None, None]:
        """git's output record by record, as ``GitRunner.run_records``: close it to stop git."""
        return self._runner.run_records(
            [f"--git-dir={self.git_dir}", *args], separator=separator, max_record=max_record
        )
