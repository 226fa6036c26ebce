"""The ``job`` action: each attempt of a run is one Kubernetes batch/v1 Job.

One attempt is a :class:`~reconciler.runner.job_attempt.JobRun` (its steps, and how it ends,
are told there). The cluster side is the :class:`JobCluster` protocol
(``sources.kubernetes_jobs.JobWatch`` implements it), so neither module imports a Kubernetes
client.

Which Jobs are a task's is decided here (:meth:`JobRunner.home`, ``core.jobs.run_in``), not by
their annotations, which anyone who may create a Job where crontask watches can write: the
Job must be in the task's Job namespace, carry the name of one of the task's slots and
attempts, and, for a task read from a CronTask, be controlled by that object (its uid). A Job
controlled by a CronTask that is not the owner in force (one whose key a folder, git or API
task holds, or one being deleted) is no task's (``run_in``): crontask neither counts it for
the policies nor deletes it (but for the run whose record names it by uid, when the CronTask
controlling it is the task's own and no definition is in force for the key: that run follows
it to its end, :meth:`JobRunner.unclaimed`); nor does it clean up a removed CronTask's Jobs
(:meth:`JobRunner.collected`): how the CronTask was deleted decides (``kubectl delete
--cascade=orphan`` keeps them). For clean-up alone (history limits, a removed task), the Jobs of a
task no CronTask controls are also looked for in the other namespaces crontask watches, each
judged by ``run_in`` for its own namespace: those left where the task's ``spec.job.namespace``
put them before it changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from reconciler.core.desired import Definition, SourceKind
from reconciler.core.jobs import (
    DEADLINE_MARGIN,
    TERMINATING,
    is_deleting,
    job_name,
    job_namespace,
    run_in,
)
from reconciler.core.model import retry_hash
from reconciler.core.runs import JobDetails, RunRecord, RunStatus
from reconciler.core.status import ObjectRef, parse_time
from reconciler.runner.job_attempt import JobCluster, JobRun, PodReads, Progress
from reconciler.runner.job_create import DEFINITION_ANNOTATION
from reconciler.runner.job_end import DEADLINE_EXCEEDED, job_uid

__all__ = ["DEADLINE_EXCEEDED", "DEADLINE_MARGIN", "JobCluster", "JobRun", "JobRunner", "PodReads"]

CONCLUDED_KEPT = 4096  # uids of Jobs this process saw end, kept to tell a stale cache from news


class JobRunner:
    """The ``job`` action (see the module docstring), and the runs its Jobs still carry
    (:class:`~reconciler.runner.base.Resumable`).

    ``namespace`` is where a task from a folder, git or the API without ``spec.job.namespace``
    puts its Jobs (``--job-namespace``); ``owner`` gives the CronTask object of a task whose
    definition in force is read from that resource (its Jobs get an ownerReference to it), and
    None for any other task, even one whose key a CronTask also declares; ``claimed`` says
    whether a definition is in force for a key, whichever source (``unclaimed``; None: judged
    from the definitions placed here); ``listed`` gives the CronTask of a key as the cluster
    holds it now, valid or not (a Job its earlier object controlled is not its); ``announce``
    writes a running record that says more about its attempt (the dispatcher's ``progress``).
    ``stop_reads`` reads the pods and log at a run's end (its Job's own, ``Replace``'s stop, the
    backstop): each read sent once (again if it failed at once) and given up soon
    (``JobWatch.stop_reads``), as the run holds
    its slot until then; None: ``cluster``'s own reads.
    """

    field = "job"

    def __init__(
        self,
        cluster: JobCluster,
        *,
        namespace: str,
        owner: Callable[[str], ObjectRef | None] = lambda key: None,
        claimed: Callable[[str], bool] | None = None,
        listed: Callable[[str], ObjectRef | bool | None] = lambda key: None,
        output_limit: int = 64 * 1024,
        verify_seconds: float = 30.0,
        create_attempts: int = 3,
        deadline_margin: float = DEADLINE_MARGIN,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        stop_reads: PodReads | None = None,
    ) -> None:
        self.cluster = cluster
        self.stop_reads: PodReads = cluster if stop_reads is None else stop_reads
        self.namespace = namespace
        self.owner = owner
        self.claimed = claimed  # None: judged from the definitions placed here (``unclaimed``)
        # The CronTask of a key as the cluster holds it now, valid or not (False: none, once
        # listed; None: not listed yet).
        self.listed = listed
        self.output_limit = output_limit
        self.verify_seconds = verify_seconds
        self.create_attempts = create_attempts
        self.deadline_margin = deadline_margin
        self.clock = clock  # the wall clock: a Job's creationTimestamp is on one
        self.progress: Progress | None = None
        # Jobs this process saw end, by a GET or the watch, or deleted (Replace): not
        # "running" while a watch cache that lags still shows them so.
        self._over: OrderedDict[str, None] = OrderedDict()
        # Where each task's Jobs go, as its last definition seen here said (a task that is no
        # CronTask): a removed task's stay, so that its Jobs are still found and cleaned up.
        self._homes: dict[str, str] = {}
        # Each task's timeoutSeconds, as its last definition seen here said: a run resumed
        # after a restart has no definition of its own, and its Job is bounded all the same.
        self._timeouts: dict[str, float | None] = {}
        # The tasks whose last definition seen here is a CronTask's: once removed, their Jobs
        # are the garbage collector's (deleted with the CronTask, or kept by an orphaning
        # delete, which also drops their ownerReferences), not clean-up's.
        self._crontasks: set[str] = set()
        # The tasks whose last definition seen here is not a CronTask's (a folder, git or the
        # API): what ``unclaimed`` knows without ``claimed``.
        self._elsewhere: set[str] = set()
        cluster.trust(self.home)

    async def announce(self, record: RunRecord) -> None:
        if self.progress is not None:
            await self.progress(record)

    def forget(self, uid: str | None) -> None:
        """The Job of ``uid`` is over for this process (ended, or deleted)."""
        if uid:
            self._over[uid] = None
            self._over.move_to_end(uid)
            while len(self._over) > CONCLUDED_KEPT:
                self._over.popitem(last=False)

    def home(self, task: str) -> tuple[str, str | None]:
        """Where the Jobs of ``task`` are, and the uid of the CronTask that must control them
        (None: a task from a folder, git or the API, or one no source declares any more). A
        CronTask's Jobs are in its namespace; the others' where its definition puts them
        (``place``), else ``--job-namespace``."""
        owner = self.owner(task)
        if owner is not None:
            return owner.namespace, owner.uid or None
        return self._homes.get(task, self.namespace), None

    def unclaimed(self, task: str) -> bool:
        """Whether no definition is in force for ``task``, from any source: its CronTask is
        invalid now (its last good definition was in the memory of a crontask that stopped),
        or not listed yet (a first list slower than the start-up waits for). A Job its own
        CronTask (same namespace and name) controls and this run's record names by uid is then
        followed to its end (``JobRun``): no one else can claim it. With ``claimed`` (whether
        a definition is in force, whichever source), that says; without it, what the passes
        placed here: a task whose last definition seen here came from a folder, git or the API
        is claimed (a task from another source that is not a ``job`` task is not placed, so
        ``claimed`` is what tells it)."""
        if self.owner(task) is not None:
            return False
        if self.claimed is not None:
            return not self.claimed(task)
        return task not in self._elsewhere

    def collected(self, task: str) -> bool:
        """Whether the Jobs of ``task``, which no source declares any more, are left to the
        cluster: its last definition seen here was a CronTask, whose deletion deletes its Jobs
        with it, or keeps them (``kubectl delete --cascade=orphan``, which leaves them without
        an ownerReference: nothing else on them tells they were a CronTask's)."""
        return task in self._crontasks

    def place(self, definition: Definition) -> str:
        """Learn (and return) where the Jobs of ``definition`` go. Each reconcile pass tells
        the runner of every ``job`` task it settled, before anything is adopted or cleaned up,
        so a task's Jobs in its own ``spec.job.namespace`` are found after a restart too."""
        namespace = job_namespace(definition, self.namespace)
        self._homes[definition.key] = namespace
        if definition.location.source == SourceKind.KUBERNETES:
            self._crontasks.add(definition.key)
            self._elsewhere.discard(definition.key)
        else:
            self._crontasks.discard(definition.key)
            self._elsewhere.add(definition.key)
        self._timeouts[definition.key] = definition.task.spec.timeout_seconds
        return namespace

    def remember(self, record: RunRecord) -> str | None:
        """Learn where the Jobs of ``record``'s task are from a run left running by an earlier
        crontask, until its definition says (``place``): a restart's first pass decides the
        slots missed meanwhile before it places anything, and ``Forbid`` must see that Job.
        The namespace to watch, or None if the record names no Job."""
        if record.job is None or not record.job.namespace:
            return None
        self._homes.setdefault(record.task, record.job.namespace)
        return record.job.namespace

    def where(self, definition: Definition, record: RunRecord) -> JobDetails:
        namespace = self.place(definition)
        qualified = namespace != definition.task.metadata.namespace
        return JobDetails(
            namespace,
            job_name(record.task, record.scheduled_at, record.attempt, qualified=qualified),
        )

    def attempt(self, definition: Definition, record: RunRecord) -> JobRun:
        where = self.where(definition, record)
        timeout = definition.task.spec.timeout_seconds
        return JobRun(self, record, where, definition=definition, timeout=timeout)

    # -- Resumable -----------------------------------------------------------------------------

    def resume(self, record: RunRecord) -> JobRun:
        assert record.job is not None  # only records that name their Job are resumed
        return JobRun(self, record, record.job, timeout=self._timeouts.get(record.task))

    def changed(self, definition: Definition, record: RunRecord) -> bool:
        """Whether ``definition`` is not the one ``record``'s Job was made from, by the rule of
        a change seen while the run goes on (``core.model.retry_hash``: any field but
        ``suspend``): a task no longer a job task, or whose Job says another definition. A Job
        that does not say (made by an older crontask), or not seen, is taken as made from it."""
        if definition.task.spec.job is None:
            return True
        where = record.job
        job = None if where is None else self.cluster.cached(where.namespace, where.name)
        if job is None or where is None or where.uid not in (None, job_uid(job)):
            return False
        made = ((job.get("metadata") or {}).get("annotations") or {}).get(DEFINITION_ANNOTATION)
        return made is not None and made != retry_hash(definition.task.spec)

    def running(self, task: str) -> list[RunRecord]:
        """The runs of ``task`` whose Jobs run in the cluster, as the Jobs tell them."""
        found = []
        namespace, owner_uid = self.home(task)
        for job in self.cluster.live(task):
            run = run_in(job, task, namespace, owner_uid)
            meta = job.get("metadata") or {}
            # A Job over for this process that the watch shows being deleted, its pods still
            # running (a finalizer holds it, ``JobWatch.live``), is no lagging cache: it runs.
            if run is None or (meta.get("uid") in self._over and not is_deleting(job)):
                continue
            found.append(
                RunRecord(
                    id=run.run_id,
                    task=run.task,
                    scheduled_at=run.scheduled_at,
                    trigger=run.trigger,
                    status=RunStatus.RUNNING,
                    reason=TERMINATING if is_deleting(job) else None,
                    attempt=run.attempt,
                    started_at=parse_time(meta.get("creationTimestamp")),
                    job=JobDetails(
                        str(meta.get("namespace")), str(meta.get("name")), meta.get("uid")
                    ),
                )
            )
        return found
