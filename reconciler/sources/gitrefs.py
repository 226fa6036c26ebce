"""How the git source names refs: what a fetch for ``--git-ref`` asks the remote for, and
under which local names the bare repository keeps it.

A pure module (no git, no I/O): ``alternatives`` pairs each refspec a fetch asks for with the
local names that refspec writes, so that what is resolved after a fetch is what that fetch
wrote, never a name an earlier fetch left (a branch deleted on the remote whose name a tag now
has: the failed branch fetch prunes nothing, and its old ref must not stand in for the tag).

A plain name is asked for as a branch and as a tag at once: when the remote has both, the ref
is ambiguous (``GitRepo.resolve`` refuses it), never the branch in place of the tag (anyone who
can push a branch must not stand in for a pinned tag; git itself reads the name as the tag).
"""

from __future__ import annotations

import dataclasses
import re

# The names under which the bare repository keeps what it fetched. Branches go to
# refs/remotes/origin/* (not refs/heads/*) so that nothing ever counts as "checked out".
BRANCHES = "refs/remotes/origin/"
TAGS = "refs/tags/"
PRIVATE = "refs/crontask/"

HEX = re.compile(r"[0-9a-f]{4,64}")
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class Alternative:
    """One part of what a fetch for a ref asks for (the branch, or the tag, of a name), and
    the local names it writes, the only names ``GitRepo.resolve`` reads after it was fetched."""

    specs: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        """The remote refs (or patterns) ``specs`` ask for: what git names when one is missing."""
        return tuple(spec.removeprefix("+").partition(":")[0] for spec in self.specs)


def alternatives(ref: str) -> list[Alternative]:
    """What a fetch for ``ref`` asks for, all in one fetch; those the remote lacks are left out
    of the next (``GitRepo.fetch_ref``), and the ref is found if one is left. A name is a branch
    and a tag: both asked for. Otherwise ``ref`` alone. Every other branch and tag is anyone's
    to push (a blob of any size, a name no file system takes), and must not fill the state
    directory or fail every fetch. Only a ref that looks like a commit's SHA takes them all:
    telling a commit from a branch or tag of that name needs them (``GitRepo.resolve``). A full
    SHA names only its commit, never a branch or tag (anyone who can push a branch could name
    one after it)."""
    if ref == "HEAD":
        return [_one("HEAD", f"{PRIVATE}HEAD")]
    if ref.startswith("refs/heads/"):
        return [_one(ref, BRANCHES + ref.removeprefix("refs/heads/"))]
    if ref.startswith("refs/tags/"):
        return [_one(ref, ref)]
    if ref.startswith("refs/"):
        return [_one(ref, f"{PRIVATE}other/{ref.removeprefix('refs/')}")]
    if HEX.fullmatch(ref):
        every = (f"+refs/heads/*:{BRANCHES}*", f"+refs/tags/*:{TAGS}*")
        named = () if FULL_SHA.fullmatch(ref) else (BRANCHES + ref, TAGS + ref)
        return [Alternative(every, named)]
    return [_one(f"refs/heads/{ref}", BRANCHES + ref), _one(f"refs/tags/{ref}", TAGS + ref)]


def _one(remote: str, local: str) -> Alternative:
    return Alternative((f"+{remote}:{local}",), (local,))
