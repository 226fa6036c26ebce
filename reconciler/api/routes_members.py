"""``/api/v1/members``: the replicas (``crontask run --ha``) as the answering one sees them.

Each live member with where its API listens, the crontask version it runs (null: unknown, a
replica of a release that does not say), since when it is a member, its last renewal, how many
tasks it schedules and which desired set it read (a letter); when the members read
different definitions, since when and a sample of the tasks that differ (which members agree on
each, as letters: not the spec hashes, which a reader could check guesses against). A crontask
running alone answers 404, saying so. At most :data:`MEMBERS_SHOWN` members are listed (the one
that answers always among them; ``total`` says how many are live): anyone who can write the
members table could otherwise make the answer as large as they like. The list is the one this
replica's last renewal that worked read (``listedAt``): ``fenced`` (as ``crontask_replica_fenced``)
says it has not renewed since, within its renew deadline, so that a list from before a store
outage is not taken for the current one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.api.auth import role_extra
from reconciler.api.problems import ProblemError
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.controller.view import MemberStatus

MEMBERS_SHOWN: Final = 100

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["members"],
    generate_unique_id_function=operation_id,
)


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class MemberOut(_Out):
    id: str = Field(description="the instance id: host:pid:start:boot:pidns:token")
    address: str | None = Field(description="where its API listens")
    since: datetime = Field(description="when it joined")
    renewed: datetime = Field(description="its last renewal")
    owned_tasks: int = Field(description="tasks it schedules")
    digest: str | None = Field(
        description="the desired set it read, as a letter: members with the same letter read "
        "the same set; null before its first pass"
    )
    revision: str | None = Field(description="the git revision in force there")
    draining: bool = Field(description="stopping: its tasks have moved, its runs are finishing")
    me: bool = Field(description="the replica that answered")
    version: str | None = Field(
        None,
        description="the crontask version it runs, so that the replicas of a rolling update "
        "can be told apart; null: unknown (a replica of a release that does not say)",
    )


class DifferingTaskOut(_Out):
    task: str
    hashes: dict[str, str | None] = Field(
        description="each member's version of the task, as a letter: members with the same "
        "letter read the same definition; null: it does not declare it"
    )


class MemberListOut(_Out):
    items: list[MemberOut] = Field(
        description=f"the live members by id, at most {MEMBERS_SHOWN} (the one that answered "
        "always among them)"
    )
    total: int = Field(description="how many members were live at listedAt, listed or not")
    listed_at: datetime | None = Field(
        description="when the list was read: this replica's last renewal that worked (null: "
        "none yet); the list is as of then"
    )
    fenced: bool = Field(
        description="this replica has not renewed its membership within its renew deadline "
        "(as crontask_replica_fenced): it starts no runs, and the list is as of listedAt, not "
        "now (the others may have taken its tasks, members may have left or joined)"
    )
    disagreeing_since: datetime | None = Field(
        None, description="when the members began to read different definitions; null: they agree"
    )
    differing_tasks: list[DifferingTaskOut] = Field(
        default_factory=list, description="a sample of the tasks the members read differently"
    )


@router.get(
    "/members",
    response_model=MemberListOut,
    response_model_by_alias=True,
    summary="List the replicas (--ha) with the tasks each owns",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(404, 422, 500),
)
def list_members(runtime: Runtime) -> MemberListOut:
    members = runtime.members()
    if members is None:
        raise ProblemError(404, "this crontask runs alone: start replicas with --ha")
    digests = _lettered({m.id: m.digest for m in members.items})
    shown = _shown(members.items)
    ids = {m.id for m in shown}
    return MemberListOut(
        total=max(members.live, len(members.items)),  # live: counted past what a renewal reads
        listed_at=members.listed_at,
        fenced=members.fenced,
        items=[
            MemberOut(
                id=m.id,
                address=m.address,
                since=m.since,
                renewed=m.renewed,
                owned_tasks=m.owned,
                digest=digests[m.id],
                revision=m.revision,
                draining=m.draining,
                me=m.me,
                version=m.version,
            )
            for m in shown
        ],
        disagreeing_since=members.disagreeing_since,
        differing_tasks=[
            DifferingTaskOut(
                task=k, hashes={m: h for m, h in _lettered(hashes).items() if m in ids}
            )
            for k, hashes in members.differing
        ],
    )


def _shown(items: Sequence[MemberStatus]) -> list[MemberStatus]:
    """The members listed: the first :data:`MEMBERS_SHOWN` by id, the one that answered
    always among them."""
    if len(items) <= MEMBERS_SHOWN:
        return list(items)
    me = [m for m in items if m.me][:1]
    others = sorted((m for m in items if not m.me), key=lambda m: m.id)
    others = others[: MEMBERS_SHOWN - len(me)]
    return sorted(me + others, key=lambda m: m.id)


def _lettered(hashes: Mapping[str, str | None]) -> dict[str, str | None]:
    """Which members read the same, without the hashes: a spec hash, and a digest of the set
    (of every key and spec hash), are unkeyed digests of specs, an http action's URL whole
    included, that a viewer could check guesses against offline. Letters in the order of the
    members, ``A`` for the first hash."""
    letters: dict[str, str] = {}
    for value in hashes.values():
        if value is not None and value not in letters:
            letters[value] = _letter(len(letters))
    return {member: None if h is None else letters[h] for member, h in hashes.items()}


def _letter(n: int) -> str:
    """A, B, ..., Z, AA, AB, ...: as many as there are members."""
    word = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        word = chr(ord("A") + rest) + word
    return word
