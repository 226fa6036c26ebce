"""How the git source names refs: what a fetch for ``--git-ref`` asks the remote for, and
under which local names the bare repository keeps it.

A pure module (no git, no I/O): ``alternatives`` pairs each refspec a fetch asks for with the
local names that refspec writes, so that what is resolved after a fetch is what that fetch
wrote, never a name an earlier fetch left (a branch deleted on the remote whose name a tag now
has: the failed branch fetch prunes nothing, and its old ref must not stand in for the tag).

A plain name is asked for as a branch and as a tag at once: when the remote has both, the ref
is ambiguous (``GitRepo.resolve`` refuses it), never the branch in place of the tag (anyone who
can push a branch must not stand in for a pinned tag; git itself reads the name as the tag).

A ref is taken only from the remote ref of exactly its full name. git reads the source of a
refspec as an abbreviation (``ABBREVIATIONS``): once ``refs/tags/v1`` is gone, a fetch of it
takes ``refs/heads/refs/tags/v1``, a branch anyone can push. Each exact refspec therefore comes
with negative ones for those other readings (so that nothing of such a ref is downloaded), and
what a fetch took is checked afterwards in its own record (``fetched``, from FETCH_HEAD), so
that a reading git may add one day is refused too.
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

# The names git also reads a refspec's source NAME as (its ref_rev_parse_rules, the same since
# 2009 and checked by ``fetched`` in any case): when the remote lacks NAME itself, the best of
# these it has is fetched in its place.
ABBREVIATIONS = (
    "refs/{}",
    "refs/tags/{}",
    "refs/heads/{}",
    "refs/remotes/{}",
    "refs/remotes/{}/HEAD",
)
# FETCH_HEAD's note on a ref (git's store_updated_refs): "branch 'main' of URL" for
# refs/heads/main, "tag 'v1' of URL", "remote-tracking branch 'x' of URL", "'refs/x' of URL"
# for any other, and the URL alone for HEAD. A ref name holds no space, so its end is the first
# "' of ".
_NOTE = re.compile(r"(branch |tag |remote-tracking branch |)'([^ ]*?)' of ")
_KINDS = {
    "branch ": "refs/heads/",
    "tag ": "refs/tags/",
    "remote-tracking branch ": "refs/remotes/",
}


@dataclasses.dataclass(frozen=True)
class Alternative:
    """One part of what a fetch for a ref asks for (the branch, or the tag, of a name), and
    the local names it writes, the only names ``GitRepo.resolve`` reads after it was fetched."""

    specs: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        """The remote refs (or patterns) ``specs`` ask for: what git names when one is missing."""
        wanted = (spec for spec in self.specs if not spec.startswith("^"))
        return tuple(spec.removeprefix("+").partition(":")[0] for spec in wanted)

    @property
    def exact(self) -> bool:
        """Whether the fetch must be checked to have taken exactly ``sources`` (``fetched``):
        a pattern (``*``) is matched literally by git, and its names are read as they are."""
        return not any("*" in spec for spec in self.specs)


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
    others = (f"^{rule.format(remote)}" for rule in ABBREVIATIONS)
    return Alternative((f"+{remote}:{local}", *others), (local,))


def fetched(fetch_head: str) -> dict[str, str]:
    """The remote refs a fetch took, by full name, and the object each named, read from its
    FETCH_HEAD (lines of ``<oid> TAB [not-for-merge] TAB <note>``). A note that is none of the
    named forms is HEAD's (the URL alone): at worst an odd URL makes HEAD look missing, never
    another ref look like HEAD."""
    refs: dict[str, str] = {}
    for line in fetch_head.splitlines():
        oid, _, rest = line.partition("\t")
        note = rest.partition("\t")[2]
        named = _NOTE.match(note)
        name = "HEAD" if named is None else _KINDS.get(named[1], "") + named[2]
        refs.setdefault(name, oid)
    return refs
