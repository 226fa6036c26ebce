"""Without ``--ha``: one Lease, ``crontask-single``, that tells of a second crontask running the
same CronTasks.

Two crontasks without ``--ha`` that watch the same CronTasks (a Deployment scaled to two, an
operator's laptop pointed at the cluster) each run every slot, each in its own run store, and
nothing else says so. So each one keeps the ``coordination.k8s.io/v1`` Lease ``crontask-single``
in the lease namespace (``--lease-namespace``, else the namespace watched, else the pod's: see
``controller.runtime``), as client-go's leader election keeps its lock, but only to *tell*:

- every :data:`PERIOD` one GET, then at most one write: the Lease created when absent, renewed
  (``renewTime``) while ``holderIdentity`` is this instance's id (the id of its run records), and
  taken over once its holder's record has not been seen to change for :data:`DURATION` (a
  crontask killed without a word) or was released (an empty holder);
- another holder whose record this instance has *seen change* within :data:`DURATION` is
  running: judged as client-go judges a lock, by when this process observed the record change
  (its own monotonic clock), never by comparing ``renewTime`` with this machine's clock. A record
  seen once and never changing is not evidence: a crontask that starts after one was killed
  takes the Lease over after a lease duration, without a false alarm;
- the instance that finds the Lease held by a live other writes its own id and time into the
  Lease's ``crontask.dev/contender`` annotations, so that the holder, judging them the same way,
  learns of it too: both say so;
- while another is running, an ERROR line every minute at most (:data:`SAY_EVERY`) names it and
  says what it means, and a line says when it ends (``on_other`` feeds the gauge
  ``crontask_single_lease_conflict``). It only warns: refusing to schedule would turn the
  harmless overlap of a rollout into missed slots;
- at a graceful stop (:meth:`SingleLease.release`) the holder clears ``holderIdentity`` (as
  client-go's ``ReleaseOnCancel``) and a contender removes its annotations, as soon as the stop
  begins (no new slot from then on): the new pod of a rollout takes the Lease at once, and
  one that overlaps the old (a RollingUpdate) reports it for its drain at most;
- without RBAC for leases (403) one WARNING says the check is off and which rule to add; it is
  tried again without a word after :data:`PERIOD`, then twice as long each time up to
  :data:`FORBIDDEN_RETRY`, and says when it works. While this instance's record in the Lease
  (its hold, its contender annotations) is current, it is tried at every period, as it is
  renewed: a 403 shorter than a lease duration (a Role re-created by a GitOps tool) neither
  lets the Lease lapse, for another crontask to take it over without a word, nor turns the
  check off for minutes. Any other failure is one WARNING per streak. Nothing here ever stops
  crontask.

The Lease is crontask's own by its name: each write rewrites it whole (spec and the contender
annotations; any other annotation or label is dropped), with the ``resourceVersion`` read, so
that a write that lost a race answers 409 Conflict and is simply tried at the next period.
Anyone may write it: it is read as plain JSON (``leases.part_of``), never the client's models.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.aio import Ready, ended, first_of
from reconciler.core import jsondepth
from reconciler.membership.leases import CALL_TIMEOUT, MOST_TEXT, describe, micro_time, part_of
from reconciler.resolver import abandonable

NAME: Final = "crontask-single"
CONTENDER: Final = "crontask.dev/contender"
CONTENDER_AT: Final = "crontask.dev/contender-renewed"
# --renew-interval's and --lease-duration's defaults: those options need --ha.
PERIOD: Final = 2.0
DURATION: Final = 15
SAY_EVERY: Final = 60.0
# How long a stop waits for the Lease's release: an API server that does not answer would
# otherwise hold the stop for the calls' timeouts and the client's retries (40 s a call).
RELEASE_WAIT: Final = 2.0
# Each call's thread (``resolver.abandonable``): one at a time, as a check waits for the one
# before it; at a stop, a check in flight and the release.
THREAD: Final = "crontask-single-lease"
# The longest wait between two tries of a check answered 403: a permission missing for good
# costs about one request per FORBIDDEN_RETRY.
FORBIDDEN_RETRY: Final = 300.0
_DEPTH: Final = 3  # a Lease > its metadata > its annotations
# Each call's options: the answer left undecoded (read as plain JSON), and the timeouts of
# the membership's calls.
_RAW: Final[dict[str, Any]] = {"_request_timeout": CALL_TIMEOUT, "_preload_content": False}
_RULE: Final = (
    'apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: '
    '["crontask-single"], verbs: ["get", "update"]; and verbs: ["create"] without resourceNames'
)

Monotonic = Callable[[], float]

log = logging.getLogger("crontask.membership")


@dataclasses.dataclass(slots=True)
class _Observed:
    """A record (the holder's spec, a contender's annotations) as this process saw it."""

    record: tuple[Any, ...] | None = None
    at: float = 0.0  # when this process first saw ``record``
    changed: bool = False  # seen to change at least once: evidence of a live writer

    def live(self, record: tuple[Any, ...], now: float) -> bool:
        """Whether the writer of ``record`` is seen running: its record changed, as this
        process saw it, within :data:`DURATION`."""
        if record != self.record:
            self.changed = self.record is not None  # written since we first looked
            self.record, self.at = record, now
        return self.changed and now - self.at < DURATION

    def expired(self, now: float) -> bool:
        return now - self.at >= DURATION


class SingleLease:
    """The Lease ``crontask-single``, checked by one caller at a time (blocking calls)."""

    def __init__(
        self, api: Any, namespace: str, me: str, *, monotonic: Monotonic = time.monotonic
    ) -> None:
        # Any: every call asks for the raw answer (_preload_content=False), not the models.
        self._leases: Any = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.me = me
        self._monotonic = monotonic
        self._holder = _Observed()
        self._contender = _Observed()
        self._mine = False  # holderIdentity is ours, as we last wrote or read it
        self._contending = False  # our contender annotations are in the Lease

    @property
    def recorded(self) -> bool:
        """Whether the Lease holds this instance's record (its hold, or its contender
        annotations), as it last wrote or read it."""
        return self._mine or self._contending

    def check(self) -> str | None:
        """One GET and at most one write; the other instance seen running, or None. Raises
        ApiException (403 among them) or a connection error."""
        lease = self._get()
        now = self._monotonic()
        if lease is None:
            self._write(None, holder=self.me, acquired=True)
            return None
        metadata, spec = part_of(lease, "metadata"), part_of(lease, "spec")
        holder = spec.get("holderIdentity")
        version = metadata.get("resourceVersion")
        notes = part_of(metadata, "annotations")
        if isinstance(holder, str) and holder and holder != self.me:
            self._mine = False
            record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if self._holder.live(record, now):
                self._write(version, holder=holder, spec=spec, contend=True)
                return holder
            if self._holder.expired(now):  # not seen renewing for a lease duration: dead
                self._write(version, holder=self.me, acquired=True)
            return None
        # Ours, or released (no holder): renewed, or acquired.
        other = notes.get(CONTENDER)
        seen, keep = None, False
        if isinstance(other, str) and other and other != self.me:
            if self._contender.live((other, notes.get(CONTENDER_AT)), now):
                seen = other
            # A contender's annotations stay until they have not changed for a lease duration.
            keep = not self._contender.expired(now)
        self._write(version, holder=self.me, acquired=holder != self.me, notes=notes, keep=keep)
        return seen

    def release(self) -> None:
        """A graceful stop: our hold cleared, or our contender annotations removed."""
        if not (self._mine or self._contending):
            return
        lease = self._get()
        if lease is None:
            return
        metadata, spec = part_of(lease, "metadata"), part_of(lease, "spec")
        version, notes = metadata.get("resourceVersion"), part_of(metadata, "annotations")
        if spec.get("holderIdentity") == self.me:
            # As client-go's ReleaseOnCancel: no holder, a duration of one second.
            now = micro_time(datetime.now(UTC))
            released = {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}
            self._put(self._body(version, holder="", spec=released, notes=notes))
        elif notes.get(CONTENDER) == self.me:
            self._put(self._body(version, holder=spec.get("holderIdentity"), spec=spec, notes={}))
        self._mine = self._contending = False

    def _get(self) -> dict[str, Any] | None:
        try:
            answer = self._leases.read_namespaced_lease(NAME, self.namespace, **_RAW)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        found = jsondepth.decode(answer.data, _DEPTH)
        return found if isinstance(found, dict) else {}

    def _write(
        self,
        version: Any,
        *,
        holder: Any,
        acquired: bool = False,
        spec: dict[str, Any] | None = None,
        notes: dict[str, Any] | None = None,
        contend: bool = False,
        keep: bool = True,
    ) -> None:
        if contend:
            notes = {CONTENDER: self.me, CONTENDER_AT: micro_time(datetime.now(UTC))}
        body = self._body(version, holder=holder, spec=spec, notes=notes or {}, keep=keep)
        if acquired:
            body["spec"]["acquireTime"] = body["spec"]["renewTime"]
        written = self._put(body) if version is not None else self._create(body)
        if written:
            self._mine = holder == self.me
            self._contending = contend

    def _body(
        self,
        version: Any,
        *,
        holder: Any,
        spec: dict[str, Any] | None,
        notes: dict[str, Any],
        keep: bool = True,
    ) -> dict[str, Any]:
        """The whole Lease as it is written: the holder's spec (``spec``: another's, as read;
        None: ours, renewed now) and the contender annotations (``keep``: as read)."""
        if spec is None:
            now = micro_time(datetime.now(UTC))
            spec = {"holderIdentity": holder, "leaseDurationSeconds": DURATION, "renewTime": now}
        kept = {
            k: v
            for k, v in notes.items()
            if keep and k in (CONTENDER, CONTENDER_AT) and isinstance(v, str)
            and len(v) <= MOST_TEXT
        }  # fmt: skip
        metadata: dict[str, Any] = {"name": NAME, "namespace": self.namespace, "annotations": kept}
        if isinstance(version, str):
            metadata["resourceVersion"] = version
        fields = ("holderIdentity", "leaseDurationSeconds", "renewTime", "acquireTime")
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {k: spec[k] for k in fields if _scalar(spec.get(k))},
        }

    def _put(self, body: dict[str, Any]) -> bool:
        """False when the Lease was written since we read it (409): the next period reads it
        again."""
        try:
            self._leases.replace_namespaced_lease(NAME, self.namespace, body, **_RAW)
        except ApiException as err:
            if err.status in (404, 409):
                return False
            raise
        return True

    def _create(self, body: dict[str, Any]) -> bool:
        try:
            self._leases.create_namespaced_lease(self.namespace, body, **_RAW)
        except ApiException as err:
            if err.status == 409:  # another created it first: read at the next period
                return False
            raise
        return True


def _scalar(value: Any) -> bool:
    """A spec field as crontask writes it: a whole number, or a string no longer than any a
    crontask writes (an instance id, a time). Anyone may write the Lease."""
    if isinstance(value, str):
        return len(value) <= MOST_TEXT
    return isinstance(value, int) and not isinstance(value, bool)


class SingleCheck:
    """:class:`SingleLease` checked every :data:`PERIOD` as a component of ``crontask run``:
    what it finds logged and told to ``on_other`` (True while another instance runs); the
    Lease released as soon as crontask begins to stop (no new slot from then on)."""

    name = "single-lease"

    def __init__(
        self,
        lease: SingleLease,
        on_other: Callable[[bool], None] = lambda running: None,
        *,
        period: float = PERIOD,
        monotonic: Monotonic = time.monotonic,
        release_wait: float = RELEASE_WAIT,
    ) -> None:
        self.lease = lease
        self.release_wait = release_wait
        self.on_other = on_other
        self.period = period
        self._monotonic = monotonic
        self._other: str | None = None
        self._said = 0.0
        self._forbidden_until: float | None = None  # None: the check is on
        self._backoff: float | None = None  # the last wait after a 403, None: none yet
        self._checked = 0.0  # when the last check that was answered began
        self._failing = False
        self._closing = asyncio.Event()

    def closing(self) -> None:
        self._closing.set()

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        checking: asyncio.Future[None] | None = None
        while not (stop.is_set() or self._closing.is_set()):
            checking = asyncio.ensure_future(self.once())
            await first_of(ended(checking), stop, self._closing)
            if not checking.done():  # the stop begins: the release waits for it, a while
                break
            checking = None
            await first_of(stop, self._closing, timeout=self.period)
        await self._release(checking)
        await stop.wait()

    async def once(self) -> None:
        now = self._monotonic()
        if self._forbidden_until is not None and now < self._forbidden_until:
            return
        try:
            other = await abandonable(self.lease.check, THREAD)
        except ApiException as err:
            if err.status == 403:
                self._forbidden(now)
            else:
                self._failed(err)
            return
        except Exception as err:  # a connection error, a timeout: tried at the next period
            self._failed(err)
            return
        if self._forbidden_until is not None:
            log.info("the check for another crontask without --ha is on", extra=self._where())
        self._forbidden_until = self._backoff = None
        self._checked = now
        self._failing = False
        self._found(other, now)

    def _found(self, other: str | None, now: float) -> None:
        # The gauge first: whoever reads the line and then scrapes sees the gauge agree.
        if (other is None) != (self._other is None):
            self.on_other(other is not None)
        if other is not None and (self._other is None or now - self._said >= SAY_EVERY):
            self._said = now
            log.error(
                "another crontask without --ha runs the same CronTasks: every slot runs once in "
                "each; scale to one, or run replicas with --ha and a shared run store",
                extra=self._where(other=other),
            )
        elif other is None and self._other is not None:
            log.info(
                "the other crontask without --ha is no longer seen running",
                extra=self._where(other=self._other),
            )
        self._other = other

    def _forbidden(self, now: float) -> None:
        if self._forbidden_until is None:
            log.warning(
                "not allowed to read or write leases: the check for another crontask without "
                f"--ha running the same CronTasks is off; add the Role rules {{{_RULE}}} for "
                "crontask's service account in this namespace (deploy/rbac.yaml)",
                extra=self._where(),
            )
        if self.lease.recorded and now - self._checked < DURATION:
            # Our record in the Lease is still current: tried at each period, as it is renewed,
            # so that a brief 403 lets it neither lapse nor be taken over without a word.
            wait = self.period
        else:
            wait = self.period if self._backoff is None else 2 * self._backoff
            self._backoff = wait = min(wait, FORBIDDEN_RETRY)
        self._forbidden_until = now + wait

    def _failed(self, err: BaseException) -> None:
        if not self._failing:
            log.warning(
                "cannot check for another crontask without --ha; will try again",
                extra=self._where(error=describe(err)),
            )
        self._failing = True

    async def _release(self, checking: asyncio.Future[None] | None) -> None:
        async def calls() -> None:
            # One call at a time: a check in flight renews with the resourceVersion the
            # release would read too, and one of the two writes would find a 409.
            if checking is not None:
                await checking
            await abandonable(self.lease.release, THREAD)

        try:
            await asyncio.wait_for(calls(), self.release_wait)
        except TimeoutError:
            log.info(
                "could not release the Lease crontask-single: no answer; it expires by itself",
                extra={"fields": {"seconds": self.release_wait}},
            )
        except Exception as err:  # expires without us: the next crontask takes it over then
            log.info(
                "could not release the Lease crontask-single",
                extra={"fields": {"error": describe(err)}},
            )

    def _where(self, **fields: str) -> dict[str, Any]:
        return {"fields": {**fields, "lease": NAME, "namespace": self.lease.namespace}}
