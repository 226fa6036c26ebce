"""What the status page shows, shaped from a :class:`RuntimeView`: rows, badges, strips,
timelines. The templates only lay these out.

Everything is read through the ``RuntimeView`` (tasks, sources, ``runtime.store`` for runs),
never from the controller's objects, so the page shows what the API shows. Reads are bounded:
a list page holds at most :data:`PAGE_SIZE` tasks, a strip the last :data:`STRIP` runs of
each, a history page :data:`HISTORY_PAGE` attempts, a timeline (:mod:`reconciler.web.timeline`)
``TIMELINE_MAX`` runs, and a list filtered by run state reads at most :data:`SCAN_MAX` tasks a
page.

A task's times are shown in its zone (``spec.timeZone``), with the zone's abbreviation,
wherever the page shows them for that task; times of no task (a source's sync) in UTC.

With the run store down, the task list is drawn from what the runtime holds, its strips
marked as unavailable (``TaskPage.store_down``); a page that is all the store's fails with
``StoreUnavailable``, which the page shows as its 503 page. A store that does not answer (a
table locked, a connection gone silent) is down for the page past ``LIST_READ_WAIT``: each
read is waited for within the bound the API's are, in the one ``OneRead`` of the store
(``read_store``), and while a read it holds goes on the page does not ask it again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, Literal, TypeVar
from zoneinfo import ZoneInfo

from reconciler.controller.store_calls import LIST_READ_WAIT, PAGE_READ_WAIT, reads_of
from reconciler.controller.view import RuntimeView, SourceStatus, TaskQuery, TaskView
from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus
from reconciler.core.schedule import ScheduleError, parse_schedule
from reconciler.core.status import is_failure
from reconciler.store.base import RunQuery, RunStore, StoreUnavailable
from reconciler.visible import escaped

T = TypeVar("T")

PAGE_SIZE: Final = 50
STRIP: Final = 20
HISTORY_PAGE: Final = 50
SCAN_CHUNK: Final = 500  # tasks read at a time while a run state filter scans
SCAN_MAX: Final = 4 * SCAN_CHUNK  # then a page ends early, with a link to scan on
TEXT_MAX: Final = 100
ATTEMPTS_LISTED: Final = 100  # a retry limit is at most 100: a run has at most 101 attempts
SUMMARY_MAX: Final = 300  # characters of an earlier attempt's message on a run page

State = Literal["ok", "failing", "error", "suspended", "running"]
STATES: Final[tuple[State, ...]] = ("ok", "failing", "error", "suspended", "running")
# The RuntimeView's own states, for the filters it can apply itself.
_VIEW_STATE: Final = {"error": "Error", "suspended": "Suspended"}
_ANSI: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    namespace: str | None = None
    source: str | None = None
    state: State | None = None
    text: str = ""

    @property
    def active(self) -> bool:
        return bool(self.namespace or self.source or self.state or self.text)


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    """One run in a strip: its final status (latest attempt) and its id."""

    id: str
    status: str
    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    view: TaskView
    badges: tuple[State, ...]
    schedule: str
    words: str
    zone: str
    next_run: datetime | None
    last: RunRecord | None  # the newest attempt that says how the task did (``last_result``)
    strip: tuple[Cell, ...]  # oldest first, as a timeline reads
    runs_known: bool = True  # False: the run store did not answer (no strip, last run held)

    @property
    def namespace(self) -> str:
        return self.view.key.partition("/")[0]

    @property
    def name(self) -> str:
        return self.view.key.partition("/")[2]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPage:
    rows: list[Row]
    after: str | None  # the key to continue after, when more follow
    scanned: int
    store_down: bool = False  # the run store did not answer: the rows' runs are not shown
    # The search stopped at ``scan_max`` tasks, the rows found so far shown: the next page
    # searches on (the page says so, or its rows would read as all there are).
    stopped: bool = False


def describe(schedule: str, zone: str) -> str:
    try:
        return parse_schedule(schedule, zone).describe()
    except (ScheduleError, ValueError):
        return ""


def attempts_of(runtime: RuntimeView, key: str, limit: int = STRIP) -> list[RunRecord]:
    """The newest attempts of ``key`` for ``limit`` runs, newest first, the highest attempt of
    a run first."""
    # Twice the number of runs covers the usual retry or two; a run whose attempts fall off
    # the page is not shown.
    query = RunQuery(task=key, limit=min(limit * 2, 1000), output=False)
    return read_store(runtime, lambda store: store.query(query)).items


def runs_of(attempts: Sequence[RunRecord], limit: int = STRIP) -> list[RunRecord]:
    """The last ``limit`` runs of ``attempts`` (``attempts_of``), each as its latest attempt."""
    seen: set[str] = set()
    runs: list[RunRecord] = []
    for record in attempts:
        if record.id not in seen:
            seen.add(record.id)
            runs.append(record)
            if len(runs) >= limit:
                break
    return runs


def last_result(view: TaskView, attempts: Sequence[RunRecord]) -> RunRecord | None:
    """The newest attempt that says how the task did, of ``attempts`` (newest first, as
    ``attempts_of`` reads them), else the task's last run as the runtime holds it. A skip says
    nothing, nor does an attempt that crontask's own shutdown interrupted, nor one still
    running: a run whose retry was abandoned (skipped), cut short by the shutdown, or is
    still going is then told by its failed attempt before, as the notifier and the metrics
    tell it (a run's earlier attempts come after its newest: one tells only when none of
    the attempts after it does)."""
    for record in (*attempts, view.last_run):
        if record is not None and _tells(record):
            return record
    return None


def _tells(record: RunRecord) -> bool:
    if not record.status.finished or record.status is RunStatus.SKIPPED:
        return False
    return record.status is RunStatus.SUCCEEDED or is_failure(record)


def badges_of(view: TaskView, last: RunRecord | None) -> tuple[State, ...]:
    return _badges(view, failing=last is not None and is_failure(last))


def _badges(view: TaskView, *, failing: bool) -> tuple[State, ...]:
    found: list[State] = []
    if view.error:
        found.append("error")
    if view.suspended:
        found.append("suspended")
    if view.running:
        found.append("running")
    if failing:
        found.append("failing")
    elif not view.error and not view.suspended:
        found.append("ok")
    return tuple(found)


@dataclasses.dataclass(slots=True)
class StoreReads:
    """Whether the run store failed while one page was drawn: after it failed once, the rest
    of the page does not ask it again (a store that is down may take its connection timeout at
    each query, fifty times for a list)."""

    down: bool = False


def row_of(runtime: RuntimeView, view: TaskView, reads: StoreReads | None = None) -> Row:
    """The row of ``view``. Given ``reads``, a store that does not answer leaves the row's
    runs unknown (``Row.runs_known``) rather than failing the page; without, it raises."""
    schedule = str(view.resource.get("spec", {}).get("schedule", ""))
    zone = task_zone(view)
    attempts = _attempts_or_none(runtime, view.key, reads)
    runs = runs_of(attempts or ())
    last = last_result(view, attempts or ())  # else the last run the runtime holds
    badges = badges_of(view, last)
    if attempts is None and last is None:
        badges = tuple(b for b in badges if b != "ok")  # not known: no "ok" said
    strip = tuple(Cell(r.id, r.status.value, cell_title(r, zone)) for r in reversed(runs))
    return Row(
        view=view,
        badges=badges,
        schedule=schedule,
        words=describe(schedule, zone),
        zone=zone,
        next_run=view.next_runs[0] if view.next_runs else None,
        last=last,
        strip=strip,
        runs_known=attempts is not None,
    )


def task_zone(view: TaskView) -> str:
    """The zone the task's times are shown in: its ``spec.timeZone``, else UTC."""
    return str(view.resource.get("spec", {}).get("timeZone") or "UTC")


def _attempts_or_none(
    runtime: RuntimeView, key: str, reads: StoreReads | None
) -> list[RunRecord] | None:
    if reads is None:
        return attempts_of(runtime, key)
    if reads.down:
        return None
    try:
        return attempts_of(runtime, key)
    except StoreUnavailable:
        reads.down = True
        return None


def cell_title(record: RunRecord, zone: str) -> str:
    """A run as a tooltip says it: when it was scheduled, in its task's ``zone``, and how it
    ended."""
    when = absolute(record.scheduled_at, zone)
    detail = f" ({record.reason})" if record.reason else ""
    attempt = f", attempt {record.attempt}" if record.attempt > 1 else ""
    return f"{when}: {record.status.value}{detail}{attempt}"


def task_page(
    runtime: RuntimeView,
    filters: Filters,
    after: str | None,
    size: int = PAGE_SIZE,
    scan_max: int = SCAN_MAX,
) -> TaskPage:
    """One page of rows matching ``filters``, in key order, after the key ``after``.

    Namespace, source, text (``TaskQuery.text``: before a view of a task is made) and the
    definition states are filtered by the runtime; the run states (ok, failing, running)
    here, reading the tasks :data:`SCAN_CHUNK` at a time until the page is full or
    ``scan_max`` tasks were read (then the page continues after the last task read, however
    few rows it has, and says it stopped: ``stopped``). Only the rows shown read their strips
    from the run store; the scan decides ok/failing from the task's last run as the runtime
    holds it, and for the tasks whose last run it does not hold, from one batched
    ``RunStore.last_outcomes`` per chunk: never one store query per task.

    A store that does not answer leaves the rows without their runs (``store_down``), except
    for the ok and failing filters, which only the store decides: they raise
    ``StoreUnavailable``.
    """
    base = TaskQuery(
        namespace=filters.namespace,
        source=filters.source,
        state=_VIEW_STATE.get(filters.state or ""),
        text=filters.text,
    )
    scanning = filters.state in ("ok", "failing", "running")
    chunk_size = SCAN_CHUNK if scanning else size + 1
    rows: list[Row] = []
    cursor = after
    scanned = 0
    reads = StoreReads()
    while True:
        chunk = runtime.tasks(dataclasses.replace(base, after=cursor, limit=chunk_size))
        outcomes = _outcomes(runtime, chunk, filters)
        for view in chunk:
            scanned += 1
            cursor = view.key
            if not _wanted(view, filters, outcomes):
                continue
            if len(rows) == size:
                return TaskPage(rows, rows[-1].view.key, scanned, reads.down)
            rows.append(row_of(runtime, view, reads))
        if len(chunk) < chunk_size:
            return TaskPage(rows, None, scanned, reads.down)
        if scanned >= scan_max:
            # Stopped at the bound, unless the last task read was the last there is: a next
            # page would find nothing.
            more = bool(runtime.tasks(dataclasses.replace(base, after=cursor, limit=1)))
            return TaskPage(rows, cursor if more else None, scanned, reads.down, stopped=more)


def _held(view: TaskView) -> RunRecord | None:
    """The task's last run as the runtime holds it, if it says how the task did (else the
    store says it: a shutdown's interruption, say, leaves the attempt before it to tell)."""
    last = view.last_run
    return last if last is not None and _tells(last) else None


def _outcomes(
    runtime: RuntimeView, chunk: Sequence[TaskView], filters: Filters
) -> dict[str, LastOutcomes]:
    """How the tasks of ``chunk`` whose last run the runtime does not hold last ended, as the
    store knows it (a few queries for the whole chunk); empty when the filter needs none."""
    if filters.state not in ("ok", "failing"):
        return {}
    unknown = [view.key for view in chunk if _held(view) is None]
    return read_store(runtime, lambda store: store.last_outcomes(unknown)) if unknown else {}


def _wanted(view: TaskView, filters: Filters, outcomes: dict[str, LastOutcomes]) -> bool:
    if filters.state == "running":
        return bool(view.running)
    if filters.state in ("ok", "failing"):
        held = _held(view)
        if held is not None:
            return filters.state in badges_of(view, held)
        # Not held: the newer of its last success and its last failure in the store, if any.
        outcome = outcomes.get(view.key, LastOutcomes())
        failing = outcome.failure is not None and (
            outcome.success is None or outcome.failure > outcome.success
        )
        return filters.state in _badges(view, failing=failing)
    return True


NAMESPACES_SUGGESTED: Final = 500


def namespaces(keys: Iterable[str]) -> list[str]:
    """The namespaces of the tasks ``keys`` (every task declared, not only a page's rows), as
    suggestions for the namespace filter: the first :data:`NAMESPACES_SUGGESTED`. (10 ms for
    100 000 tasks.)"""
    return sorted({key.partition("/")[0] for key in keys})[:NAMESPACES_SUGGESTED]


# -- zones (one task's timeline: reconciler.web.timeline) ------------------------------------


def zone_of(name: str) -> tzinfo:
    """The zone ``name`` (a task's ``timeZone``); UTC for one this Python does not know."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return UTC


def in_zone(at: datetime, zone: str) -> datetime:
    return at.astimezone(zone_of(zone))


# -- formatting --------------------------------------------------------------------------------


def human_duration(ms: int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def relative(at: datetime | None, now: datetime) -> str:
    """``"3 min ago"``, ``"in 2 h"``: how a person reads a time close to now."""
    if at is None:
        return ""
    delta = (at - now).total_seconds()
    future = delta > 0
    size = abs(delta)
    if size < 1:
        return "now"
    if size < 60:
        text = f"{int(size)} s"
    elif size < 3600:
        text = f"{int(size // 60)} min"
    elif size < 86400 * 2:
        text = f"{int(size // 3600)} h {int(size % 3600 // 60)} min"
    else:
        text = f"{int(size // 86400)} days"
    return f"in {text}" if future else f"{text} ago"


def absolute(at: datetime | None, zone: str | None = None) -> str:
    if at is None:
        return ""
    local = at.astimezone(zone_of(zone)) if zone else at.astimezone(UTC)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def readable_output(text: str) -> str:
    """Output (or a message) as a page shows it: terminal colour codes removed, other C0
    control characters (which a browser would hide) made visible as U+FFFD, and the rest of
    what is no text (C1 controls, bidirectional overrides and isolates, zero-width characters,
    tags, line separators: :func:`reconciler.visible.escaped`) as its escape, ``\\u202e``:
    drawn raw, they drew the output reordered or hid part of it. Tabs and newlines stay."""
    return escaped(_CONTROL.sub("\ufffd", _ANSI.sub("", text)), keep="\t\n")


@dataclasses.dataclass(frozen=True, slots=True)
class RunView:
    """What a run page shows: its newest attempt whole (output and all), the earlier ones
    newest first without their output, and whether older attempts than those were left out."""

    newest: RunRecord
    earlier: list[RunRecord]
    more: bool


def run_of(runtime: RuntimeView, run_id: str) -> RunView | None:
    """The run ``run_id`` as its page shows it; None if there is none.

    One output is read, the newest attempt's (at most 64 KiB): a run that retried 100 times
    holds 6 MiB of output, which the page (refreshed every 2 s while the run goes on) neither
    shows nor reads. The earlier attempts come from the history without their output: a
    run's id is its task and its slot, so they are the task's records of that one instant."""
    newest = read_store(runtime, lambda store: store.get(run_id))
    if newest is None:
        return None
    at = newest.scheduled_at
    query = RunQuery(
        task=newest.task,
        since=at,
        until=at + timedelta(microseconds=1),
        limit=ATTEMPTS_LISTED + 1,  # the newest too, newest first
        output=False,
    )
    page = read_store(runtime, lambda store: store.query(query))
    earlier = [r for r in page.items if r.id == run_id and r.attempt < newest.attempt]
    return RunView(newest, earlier[:ATTEMPTS_LISTED], page.next_cursor is not None)


def summary(text: str, limit: int = SUMMARY_MAX) -> str:
    """``text`` on one line of at most ``limit`` characters (an earlier attempt's message)."""
    line = " ".join(text.split())
    line = line if len(line) <= limit else line[: limit - 1] + "\u2026"
    return readable_output(line)  # cut first: the limit is of the message's characters


def history(
    runtime: RuntimeView, key: str, status: RunStatus | None, cursor: str | None
) -> tuple[list[RunRecord], str | None]:
    query = RunQuery(task=key, status=status, limit=HISTORY_PAGE, cursor=cursor, output=False)
    page = read_store(runtime, lambda store: store.query(query), PAGE_READ_WAIT)
    return page.items, page.next_cursor


def read_store(
    runtime: RuntimeView, read: Callable[[RunStore], T], wait: float = LIST_READ_WAIT
) -> T:
    """``read`` of the run store, StoreUnavailable past ``wait`` (a locked table held a page
    for as long as the lock): in a thread of its own, shared with the API's reads of the store
    (``store_calls.reads_of``: a few at once), so that a store that hangs holds a few threads,
    not one a request."""
    store = runtime.store
    return reads_of(store, wait).answer(lambda: read(store))


def sorted_sources(runtime: RuntimeView) -> list[SourceStatus]:
    return sorted(runtime.sources(), key=lambda s: (s.kind, s.location))


__all__ = [
    "STATES",
    "Filters",
    "Row",
    "RunView",
    "StoreReads",
    "TaskPage",
    "absolute",
    "cell_title",
    "history",
    "human_duration",
    "readable_output",
    "relative",
    "run_of",
    "summary",
    "task_page",
    "task_zone",
    "zone_of",
]
