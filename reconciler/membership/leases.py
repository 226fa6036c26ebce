"""Membership on Kubernetes: one ``coordination.k8s.io/v1`` Lease per replica.

Each replica owns one Lease in the lease namespace, labelled ``crontask.dev/member``, whose
``holderIdentity`` is its instance id, renewed every renew interval (``renewTime``,
``leaseDurationSeconds``); what it publishes (address, digest, revision, tasks owned, since)
rides in annotations. ``kubectl get leases -l crontask.dev/member`` lists the replicas.

Liveness is judged as client-go's leader election judges it: not by comparing ``renewTime``
with this machine's clock (the clocks of two nodes may disagree), but by when *this replica
observed* each Lease's record change. A Lease whose record has not changed for its
``leaseDurationSeconds`` of our own monotonic time is expired. A replica that has just started
therefore counts every Lease it sees as live for one lease duration: a dead replica is noticed
late, never a live one early. Leases expired for ten durations are deleted by whoever sees them.

A Lease is anyone's to write, so each one is judged on its own: a Lease that does not parse, or
whose name is not the one its ``holderIdentity`` would have, is not a member (and is logged once);
no Lease counts as live for longer than this replica's own lease duration.

A Lease is deleted only in the state it was judged in, with a ``resourceVersion`` precondition:
our own at ``leave`` as we last wrote it, an expired one as it was listed. A Lease written since
(ours taken over under the same name, an expired one renewed after all) is someone else's now;
the API server answers 409 Conflict and it is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.membership.base import Announcement, Member, MembershipUnavailable

MEMBER_LABEL: Final = "crontask.dev/member"
_ANNOTATION: Final = "crontask.dev/"
_FORGET_AFTER: Final = 10
_TIMEOUT: Final = (5, 10)

Monotonic = Callable[[], float]

log = logging.getLogger("crontask.membership")


def lease_name(instance: str) -> str:
    """A DNS-1123 name for the Lease of instance ``host:pid:token``: ``crontask-host-token``."""
    host, _, rest = instance.partition(":")
    token = rest.rpartition(":")[2] or rest
    slug = re.sub(r"[^a-z0-9-]+", "-", host.lower()).strip("-")[:40] or "host"
    tail = re.sub(r"[^a-z0-9]+", "", token.lower())[:16] or "0"
    return f"crontask-{slug}-{tail}"


class LeaseMembership:
    def __init__(self, api: Any, namespace: str, *, monotonic: Monotonic = time.monotonic) -> None:
        self._leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self._monotonic = monotonic
        # Lease name -> (the record last seen, when we first saw that record).
        self._observed: dict[str, tuple[tuple[Any, ...], float]] = {}
        self._since: datetime | None = None
        # Lease name -> the record last refused (logged once per record, forgotten with it).
        self._refused: dict[str, tuple[Any, ...]] = {}
        # The resourceVersion of our Lease as we last wrote it: all that `leave` may delete.
        self._written: str | None = None

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
                "labels": {MEMBER_LABEL: "true"},
                "annotations": _annotations(me, self._since),
            },
            "spec": {
                "holderIdentity": me.id,
                "leaseDurationSeconds": max(1, round(me.lease_seconds)),
                "acquireTime": _micro(self._since),
                "renewTime": _micro(now),
            },
        }
        try:
            try:
                written = self._leases.patch_namespaced_lease(
                    name, self.namespace, body, _request_timeout=_TIMEOUT
                )
            except ApiException as err:
                if err.status != 404:
                    raise
                written = self._leases.create_namespaced_lease(
                    self.namespace, body, _request_timeout=_TIMEOUT
                )
            self._written = written.metadata.resource_version if written.metadata else None
            found = self._leases.list_namespaced_lease(
                self.namespace, label_selector=MEMBER_LABEL, _request_timeout=_TIMEOUT
            )
        except Exception as err:  # an API error or a connection error: nothing is known
            raise MembershipUnavailable(f"leases in {self.namespace}: {_describe(err)}") from err
        return self._live(found.items, name, me.lease_seconds)

    def leave(self, me: Announcement) -> None:
        name = lease_name(me.id)
        # Never written (or already left): no Lease of that name is ours to delete.
        if self._written is not None:
            try:
                self._leases.delete_namespaced_lease(
                    name,
                    self.namespace,
                    body=_unchanged_since(self._written),
                    _request_timeout=_TIMEOUT,
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
                    raise MembershipUnavailable(_describe(err)) from err
            except Exception as err:
                raise MembershipUnavailable(_describe(err)) from err
        self._written = None
        self._since = None

    def close(self) -> None:
        pass

    def _live(self, leases: list[Any], mine: str, lease_seconds: float) -> list[Member]:
        now = self._monotonic()
        live: list[Member] = []
        seen: set[str] = set()
        for lease in leases:
            name = lease.metadata.name
            spec = lease.spec
            if spec is None or not spec.holder_identity:
                continue
            seen.add(name)
            record = (spec.holder_identity, spec.renew_time, spec.lease_duration_seconds)
            previous = self._observed.get(name)
            if previous is None or previous[0] != record:
                self._observed[name] = (record, now)
            observed_at = self._observed[name][1]
            # Another writer's duration never keeps a Lease live longer than ours would be.
            duration = min(float(spec.lease_duration_seconds or lease_seconds), lease_seconds)
            if name != mine and now - observed_at >= duration:
                if now - observed_at >= duration * _FORGET_AFTER:
                    self._forget(name, lease.metadata.resource_version)
                continue
            member = self._parsed(lease, record)
            if member is not None:
                live.append(member)
        for gone in set(self._observed) - seen:
            del self._observed[gone]
        for gone in set(self._refused) - seen:
            del self._refused[gone]
        return sorted(live, key=lambda m: m.id)

    def _parsed(self, lease: Any, record: tuple[Any, ...]) -> Member | None:
        """The member a Lease describes, or None (logged once per record) if it is not one."""
        name = lease.metadata.name
        try:
            if name != lease_name(lease.spec.holder_identity):
                raise ValueError(f"not the Lease of {lease.spec.holder_identity!r}")
            member = _member(lease)
        except Exception as err:  # anyone may write a Lease: one bad record is not a member
            if self._refused.get(name) != record:
                self._refused[name] = record
                log.warning(
                    "a Lease with the member label is not a member; ignoring it",
                    extra={"fields": {"lease": name, "error": _describe(err)}},
                )
            return None
        self._refused.pop(name, None)
        return member

    def _forget(self, name: str, listed: str) -> None:
        # Another replica may delete it first; if this fails, the next renewal tries again.
        # Only as listed: renewed since (409 Conflict), it is live again, not ours to delete.
        with contextlib.suppress(Exception):
            self._leases.delete_namespaced_lease(
                name, self.namespace, body=_unchanged_since(listed), _request_timeout=_TIMEOUT
            )


def _unchanged_since(resource_version: str) -> client.V1DeleteOptions:
    """DeleteOptions that delete an object only while it is still at ``resource_version``."""
    return client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=resource_version)
    )


def _annotations(me: Announcement, since: datetime) -> dict[str, str]:
    values = {
        "address": me.address,
        "digest": me.digest,
        "revision": me.revision,
        "owned": str(me.owned),
        "since": since.isoformat(),
        "draining": "true" if me.draining else None,
    }
    return {_ANNOTATION + k: v for k, v in values.items() if v is not None}


def _member(lease: Any) -> Member:
    notes = lease.metadata.annotations or {}
    renewed = lease.spec.renew_time or datetime.now(UTC)
    since_text = notes.get(_ANNOTATION + "since")
    try:
        since = datetime.fromisoformat(since_text) if since_text else renewed
    except ValueError:
        since = renewed
    owned = notes.get(_ANNOTATION + "owned", "0")
    return Member(
        id=lease.spec.holder_identity,
        address=notes.get(_ANNOTATION + "address"),
        since=since.astimezone(UTC),
        renewed=renewed.astimezone(UTC),
        digest=notes.get(_ANNOTATION + "digest"),
        revision=notes.get(_ANNOTATION + "revision"),
        owned=int(owned) if owned.isdigit() else 0,
        draining=notes.get(_ANNOTATION + "draining") == "true",
    )


def _micro(at: datetime) -> str:
    """A MicroTime: RFC 3339 with microseconds, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"{err.status} {err.reason}"
    return str(err) or type(err).__name__
