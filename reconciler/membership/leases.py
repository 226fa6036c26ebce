"""Membership on Kubernetes: one ``coordination.k8s.io/v1`` Lease per replica.

Each replica owns one Lease in the lease namespace, labelled ``crontask.dev/member=GROUP``,
whose ``holderIdentity`` is its instance id, renewed every renew interval (``renewTime``,
``leaseDurationSeconds``, in whole seconds rounded up); what it publishes (address, digest,
revision, tasks owned, since, the crontask version it runs) rides in annotations. ``kubectl get
leases -l crontask.dev/member=GROUP`` lists the replicas of one group.

A group is the replicas that share one run store (:func:`group_of` its URL): two deployments in
one namespace are two memberships, never one that hands each the other's tasks. A Lease of
crontask before groups (``crontask.dev/member=true``) is a member of every group, so that the
old and the new replicas of a rolling update see each other (the new ones would otherwise
judge the old ones dead and mark their runs interrupted).

Liveness is judged as client-go's leader election judges it: not by comparing ``renewTime``
with this machine's clock (the clocks of two nodes may disagree), but by when *this replica
observed* each Lease's record change. A Lease whose record has not changed for its
``leaseDurationSeconds`` of our own monotonic time is expired. A replica that has just started
therefore counts every Lease it sees as live for one lease duration: a dead replica is noticed
late, never a live one early. Leases expired for ten durations are deleted by whoever sees them.
That duration is the one the Lease states, whatever ours (``base.judged_lease``): judged by a
shorter one, a replica started with a longer ``--lease-duration`` than ours would be taken for
dead between two healthy renewals, and its runs marked interrupted. A Lease stating another
duration than ours is logged once (``base.OtherLeases``).

A Lease is anyone's to write, so each one is judged on its own: a Lease that does not parse, or
whose name is not the one its ``holderIdentity`` would have, is not a member (and is logged
once); a ``crontask.dev/since`` that is no time the holder can have joined (none UTC can hold,
or after its ``renewTime``) reads as its ``renewTime``, and the Lease is still a member; no
Lease counts as live for longer than the longest ``--lease-duration`` (``base.LONGEST_LEASE``,
or ours if longer), whatever it states; a ``crontask.dev/version`` that is no version
(``base.readable_version``: at most 64 characters of a PEP 440 version) is unknown, and the
Lease still a member. So the API server's answers are read as plain JSON, never as the client's
typed models: one Lease those refuse (a ``renewTime`` in year 0, which the API server accepts)
would fail every replica's list, and no replica could forget it. Our own Lease's annotations are
all written at each renewal (one we have no value for is removed, so a ``crontask.dev/draining``
someone else wrote lasts until our next renewal at most), and our own record is read as we
announced it: what this replica publishes is its own state, never what anyone wrote meanwhile.
Each call of a renewal is bounded by what is left of its budget. At most ``most`` members are
returned (``base.Cap``): ours, those we know, then those with a digest, then those seen to renew
most recently.

A Lease is deleted only in the state it was judged in, with a ``resourceVersion`` precondition:
our own at ``leave`` as we last wrote it, an expired one as it was listed. A Lease written since
(ours taken over under the same name, an expired one renewed after all) is someone else's now;
the API server answers 409 Conflict and it is left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core import jsondepth
from reconciler.core.runs import DNS1123_LABEL
from reconciler.membership.base import (
    MOST_MEMBERS,
    Announcement,
    Cap,
    Member,
    MembershipUnavailable,
    OtherLeases,
    judged_lease,
    readable_version,
)

MEMBER_LABEL: Final = "crontask.dev/member"
# The member label's value on the Leases of crontask before groups: a member of every group.
UNGROUPED: Final = "true"
_ANNOTATION: Final = "crontask.dev/"
_FORGET_AFTER: Final = 10
CALL_TIMEOUT: Final = (5.0, 10.0)
# How deep a Lease list is read: list > items > Lease > metadata > annotations. What nests
# deeper (managedFields) is not read.
_LIST_DEPTH: Final = 5
_LEASE_DEPTH: Final = 2  # a Lease > its metadata, for its resourceVersion
# Leases a list page holds: a few replicas' Leases are one page; a page of the largest Leases
# the API server takes stays tens of megabytes.
_PAGE: Final = 50
MOST_TEXT: Final = 4096  # longer than any value a member writes (its id, address, revision)
_SPEC: Final = ("holderIdentity", "renewTime", "leaseDurationSeconds")

Monotonic = Callable[[], float]

log = logging.getLogger("crontask.membership")


def lease_name(instance: str) -> str:
    """A DNS-1123 name for the Lease of instance ``host:...:token``: ``crontask-host-token``."""
    host, _, rest = instance.partition(":")
    token = rest.rpartition(":")[2] or rest
    slug = re.sub(r"[^a-z0-9-]+", "-", host.lower()).strip("-")[:40] or "host"
    tail = re.sub(r"[^a-z0-9]+", "", token.lower())[:16] or "0"
    return f"crontask-{slug}-{tail}"


def group_of(store_url: str) -> str:
    """The group of the replicas that share the run store at ``store_url``: a short hash of
    the URL without its password (a password rotated is the same store) or driver
    (``postgresql://`` and ``postgresql+psycopg://`` too). Never raises."""
    scheme, _, rest = store_url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    path, _, query = rest[end:].partition("?")
    kept = "&".join(q for q in query.split("&") if q.partition("=")[0] != "password")
    same = f"{scheme.partition('+')[0]}://{userinfo.partition(':')[0]}{at}{host}{path}?{kept}"
    return hashlib.sha256(same.encode()).hexdigest()[:12]


class LeaseMembership:
    def __init__(
        self,
        api: Any,
        namespace: str,
        *,
        group: str = UNGROUPED,
        monotonic: Monotonic = time.monotonic,
        most: int = MOST_MEMBERS,
    ) -> None:
        if len(group) > 63 or re.fullmatch(DNS1123_LABEL, group) is None:
            raise ValueError(f"a group is a DNS-1123 label of at most 63, got {group!r}")
        # Any: every call asks for the raw answer (_preload_content=False), not the models.
        self._leases: Any = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.group = group
        self._selector = f"{MEMBER_LABEL} in ({','.join(sorted({group, UNGROUPED}))})"
        self._monotonic = monotonic
        self._cap = Cap(most)
        # Lease name -> (the record last seen, when we first saw that record).
        self._observed: dict[str, tuple[tuple[Any, ...], float]] = {}
        self._since: datetime | None = None
        # Lease name -> the record last refused (logged once per record, forgotten with it).
        self._refused: dict[str, tuple[Any, ...]] = {}
        # The resourceVersion of our Lease as we last wrote it: all that `leave` may delete.
        self._written: str | None = None
        self._other_leases = OtherLeases(most)

    @property
    def live_count(self) -> int:
        return self._cap.live

    @property
    def clock_offset(self) -> float | None:
        """None: each replica dates its own Lease; no clock here is another's to compare."""
        return None

    def renew(self, me: Announcement) -> list[Member]:
        name = lease_name(me.id)
        now = datetime.now(UTC)
        if self._since is None:
            self._since = now
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {MEMBER_LABEL: self.group},
                "annotations": _annotations(me, self._since),
            },
            "spec": {
                "holderIdentity": me.id,
                "leaseDurationSeconds": _whole_seconds(me.lease_seconds),
                "acquireTime": micro_time(self._since),
                "renewTime": micro_time(now),
            },
        }
        until = None if me.budget is None else self._monotonic() + me.budget
        try:
            try:
                written = self._leases.patch_namespaced_lease(
                    name, self.namespace, body, **self._raw(until)
                )
            except ApiException as err:
                if err.status != 404:
                    raise
                # Gone (swept as expired, deleted): a membership begun anew, its own ``since``,
                # so that the renewal that finds it so tells of a lapse (``Cluster._lapsed``).
                self._since = now
                body["metadata"]["annotations"] = _annotations(me, now)
                body["spec"]["acquireTime"] = micro_time(now)
                written = self._leases.create_namespaced_lease(
                    self.namespace, _created(body), **self._raw(until)
                )
            self._written = _resource_version(written.data)
            items = self._listed(until)
        except Exception as err:  # an API error or a connection error: nothing is known
            raise MembershipUnavailable(f"leases in {self.namespace}: {describe(err)}") from err
        return self._live(items, me, until)

    def leave(self, me: Announcement) -> None:
        name = lease_name(me.id)
        # Never written (or already left): no Lease of that name is ours to delete.
        if self._written is not None:
            try:
                self._leases.delete_namespaced_lease(
                    name, self.namespace, body=_unchanged_since(self._written), **self._raw(None)
                )
            except ApiException as err:
                if err.status == 409:
                    # Written since our last renewal (forgotten as expired, then taken over
                    # under the same name): not ours any more. Ours, if the write we lost track
                    # of was ours after all, expires like any other.
                    log.info(
                        "our Lease was written by someone else since; leaving it",
                        extra={"fields": {"lease": name}},
                    )
                elif err.status != 404:
                    raise MembershipUnavailable(describe(err)) from err
            except Exception as err:
                raise MembershipUnavailable(describe(err)) from err
        self._written = None
        self._since = None

    def close(self) -> None:
        pass

    def _listed(self, until: float | None) -> list[dict[str, Any]]:
        """The member Leases, read a page at a time, each kept as the little a renewal reads
        (:func:`_slim`): anyone may write a Lease as large as the API server takes, and a
        whole list of such was held at once."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = jsondepth.decode(
                self._leases.list_namespaced_lease(
                    self.namespace,
                    label_selector=self._selector,
                    limit=_PAGE,
                    **({"_continue": token} if token else {}),
                    **self._raw(until),
                ).data,
                _LIST_DEPTH,
            )
            found = page.get("items") if isinstance(page, dict) else None
            if not isinstance(found, list):
                raise ValueError("the answer is not a list of Leases")
            items.extend(_slim(lease) for lease in found)
            token = part_of(page, "metadata").get("continue")
            if not isinstance(token, str) or not token:
                return items

    def _raw(self, until: float | None) -> dict[str, Any]:
        """A call's options: its answer left undecoded (read by :func:`_decode`, or not at
        all), and its timeouts within what is left of the renewal's budget."""
        timeout = CALL_TIMEOUT
        if until is not None:
            left = until - self._monotonic()
            if left <= 0:
                raise MembershipUnavailable("the renewal's time ran out")
            timeout = (min(CALL_TIMEOUT[0], left), min(CALL_TIMEOUT[1], left))
        return {"_request_timeout": timeout, "_preload_content": False}

    def _live(self, leases: list[Any], me: Announcement, until: float | None) -> list[Member]:
        mine, lease_seconds = lease_name(me.id), me.lease_seconds
        now = self._monotonic()
        live: list[Member] = []
        seen: set[str] = set()
        observed: dict[str, float] = {}  # member -> when its record last changed
        for lease in leases:
            metadata, spec = part_of(lease, "metadata"), part_of(lease, "spec")
            name = metadata.get("name")
            if not isinstance(name, str) or not spec.get("holderIdentity"):
                continue
            seen.add(name)
            record = (
                spec["holderIdentity"],
                spec.get("renewTime"),
                spec.get("leaseDurationSeconds"),
            )
            previous = self._observed.get(name)
            if previous is None or previous[0] != record:
                self._observed[name] = (record, now)
            observed_at = self._observed[name][1]
            stated = _stated(spec.get("leaseDurationSeconds"))
            duration = lease_seconds if stated is None else judged_lease(stated, lease_seconds)
            if name != mine and now - observed_at >= duration:
                listed = metadata.get("resourceVersion")
                if now - observed_at >= duration * _FORGET_AFTER and isinstance(listed, str):
                    self._forget(name, listed, until)
                continue
            member = self._parsed(name, lease, record)
            if member is not None and name == mine:
                member = _as_announced(member, me)
            if member is not None:
                live.append(member)
                observed[member.id] = observed_at
                if name != mine and stated is not None:
                    # Ours as our Lease states it (whole seconds), not as a difference of it.
                    self._other_leases.note(member.id, stated, _whole_seconds(lease_seconds))
        for gone in set(self._observed) - seen:
            del self._observed[gone]
        for gone in set(self._refused) - seen:
            del self._refused[gone]
        return self._cap.kept(live, me, lambda m: (m.digest is None, -observed[m.id], m.id))

    def _parsed(self, name: str, lease: dict[str, Any], record: tuple[Any, ...]) -> Member | None:
        """The member a Lease describes, or None (logged once per record) if it is not one."""
        try:
            holder = lease["spec"]["holderIdentity"]
            if not isinstance(holder, str) or name != lease_name(holder):
                raise ValueError(f"not the Lease of {holder!r}")
            member = _member(holder, lease)
        except Exception as err:  # anyone may write a Lease: one bad record is not a member
            if self._refused.get(name) != record:
                self._refused[name] = record
                log.warning(
                    "a Lease with the member label is not a member; ignoring it",
                    extra={"fields": {"lease": name, "error": describe(err)}},
                )
            return None
        self._refused.pop(name, None)
        return member

    def _forget(self, name: str, listed: str, until: float | None) -> None:
        # Another replica may delete it first; if this fails (or the renewal's time is up),
        # the next renewal tries again. Only as listed: renewed since (409 Conflict), it is
        # live again, not ours to delete.
        with contextlib.suppress(Exception):
            self._leases.delete_namespaced_lease(
                name, self.namespace, body=_unchanged_since(listed), **self._raw(until)
            )


def _unchanged_since(resource_version: str) -> client.V1DeleteOptions:
    """DeleteOptions that delete an object only while it is still at ``resource_version``."""
    return client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=resource_version)
    )


def _annotations(me: Announcement, since: datetime) -> dict[str, str | None]:
    """Every annotation a replica publishes, None for one it has no value for now: a patch
    merges annotations, so one left out would keep whatever was there (an earlier value of
    ours, or ``kubectl annotate ... crontask.dev/draining=true``); None removes it."""
    values = {
        "address": me.address,
        "digest": me.digest,
        "revision": me.revision,
        "owned": str(me.owned),
        "since": since.isoformat(),
        "draining": "true" if me.draining else None,
        # None (removed) for one that is no version: the readers would take it for unknown.
        "version": readable_version(me.version),
    }
    return {_ANNOTATION + k: v for k, v in values.items()}


def _created(body: dict[str, Any]) -> dict[str, Any]:
    """The patch ``body`` as a Lease to create: without the annotations it removes (a null
    annotation in a new object is no removal, and the API server may refuse it)."""
    metadata = body["metadata"]
    notes = {k: v for k, v in metadata["annotations"].items() if v is not None}
    return {**body, "metadata": {**metadata, "annotations": notes}}


def _as_announced(member: Member, me: Announcement) -> Member:
    """Our own record as this renewal announced it: anyone may annotate our Lease between our
    patch and the list, and what we publish is our own state (a ``draining`` written by someone
    else would otherwise take every task from this replica), never what the Lease says."""
    return dataclasses.replace(
        member,
        address=me.address,
        digest=me.digest,
        revision=me.revision,
        owned=me.owned,
        draining=me.draining,
        version=readable_version(me.version),
    )


def _member(holder: str, lease: dict[str, Any]) -> Member:
    """Raises for a Lease that does not parse."""
    given = part_of(lease, "metadata").get("annotations")
    notes = (
        {k: v for k, v in given.items() if isinstance(v, str)} if isinstance(given, dict) else {}
    )
    renew_time = lease["spec"].get("renewTime")
    renewed = datetime.fromisoformat(renew_time) if renew_time else datetime.now(UTC)
    if renewed.tzinfo is None:
        raise ValueError(f"renewTime {renew_time!r} has no offset")
    owned = notes.get(_ANNOTATION + "owned", "0")
    return Member(
        id=holder,
        address=notes.get(_ANNOTATION + "address"),
        since=_since(notes.get(_ANNOTATION + "since"), renewed.astimezone(UTC)),
        renewed=renewed.astimezone(UTC),
        digest=notes.get(_ANNOTATION + "digest"),
        revision=notes.get(_ANNOTATION + "revision"),
        owned=int(owned) if owned.isdigit() else 0,
        draining=notes.get(_ANNOTATION + "draining") == "true",
        # Anyone may annotate a Lease: one that is no version is unknown, never an error.
        version=readable_version(notes.get(_ANNOTATION + "version")),
    )


def _since(text: str | None, renewed: datetime) -> datetime:
    """When the holder joined, in UTC, from its ``since`` annotation; ``renewed`` when there is
    none, or it is no time it can have joined: not a time, one UTC cannot hold (the API server
    keeps any annotation; ``9999-12-31T23:00:00-05:00`` is past year 9999 in UTC), or one after
    its last renewal (the holder writes both from one clock, ``since`` first). Anyone may annotate
    a Lease, and a live replica is not dropped from the membership for it."""
    try:
        since = datetime.fromisoformat(text).astimezone(UTC) if text else renewed
    except (ValueError, OverflowError):
        return renewed
    return min(since, renewed)


def _slim(lease: Any) -> dict[str, Any]:
    """What a renewal reads of a Lease: its name and version, its spec's scalars, and its
    ``crontask.dev/`` annotations, each dropped when longer than a member publishes."""
    metadata, spec = part_of(lease, "metadata"), part_of(lease, "spec")
    notes = part_of(metadata, "annotations")
    return {
        "metadata": {
            "name": metadata.get("name"),
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {
                k: v
                for k, v in notes.items()
                if k.startswith(_ANNOTATION) and isinstance(v, str) and len(v) <= MOST_TEXT
            },
        },
        "spec": {k: spec.get(k) for k in _SPEC if _short(spec.get(k))},
    }


def _short(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or len(value) <= MOST_TEXT)


def part_of(value: Any, key: str) -> dict[str, Any]:
    """``value[key]`` if both are mappings, else an empty one: anyone may write a Lease."""
    part = value.get(key) if isinstance(value, dict) else None
    return part if isinstance(part, dict) else {}


def _stated(value: Any) -> float | None:
    """The duration a Lease states, if a positive whole number of seconds, else None (it is
    then judged by ours)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _whole_seconds(lease_seconds: float) -> int:
    # Rounded up: rounded down, the others would take our tasks before we fence.
    return max(1, math.ceil(lease_seconds))


def _resource_version(data: bytes) -> str | None:
    found = part_of(jsondepth.decode(data, _LEASE_DEPTH), "metadata").get("resourceVersion")
    return found if isinstance(found, str) else None


def micro_time(at: datetime) -> str:
    """A MicroTime: RFC 3339 with microseconds, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"{err.status} {err.reason}"
    return str(err) or type(err).__name__
