"""The work of ``validate``, ``plan``, ``next``, ``schema`` and ``crd`` (their arguments are in
``inspect``): read definitions, check them, compare them, and print what was found.
``plan`` keeps what ``run`` keeps when a new file has errors (``plan_keeps``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from pydantic import ValidationError

from reconciler.cli.client import RemoteError, fetch_tasks, request
from reconciler.cli.client_env import default_token
from reconciler.cli.collector import rare_collections
from reconciler.cli.given_paths import existing_paths
from reconciler.cli.main_helpers import timestamp
from reconciler.cli.plan_keeps import (
    adrift,
    defined_by_broken_files,
    file_of,
    kept_for_places,
    kept_on_server,
)
from reconciler.cli.terminal import cut, printable, shown
from reconciler.core.crd import crd_document
from reconciler.core.desired import (
    Definition,
    DesiredState,
    Location,
    SourceKind,
    assemble,
    reassemble,
)
from reconciler.core.model import CronTask, json_schema
from reconciler.core.plan import FieldChange, Operation, plan
from reconciler.core.schedule.zones import MAX_YEAR
from reconciler.core.urls import redact_request_url, redact_url
from reconciler.host import usable_cores
from reconciler.scheduling.base import schedule_of
from reconciler.sources.ahead import read_ahead
from reconciler.sources.documents import DEFAULT_LIMITS
from reconciler.sources.files import DirectorySource
from reconciler.sources.gitfiles import repository_files
from reconciler.sources.limits import DEFAULT_MAX_TASKS
from reconciler.sources.messages import more_in_file
from reconciler.sources.survey import survey
from reconciler.sources.taskbound import declared_past


def reader(
    paths: list[Path], args: argparse.Namespace, max_tasks: int = DEFAULT_MAX_TASKS
) -> DirectorySource:
    """What reads ``paths`` as ``crontask run`` would: as folders; with ``--git-path DIR``
    (``args.git_path``), as ``run --git URL --git-path DIR`` reads a revision, ``paths`` being
    one checkout of that repository: its links may lead to any file of the checkout but its
    ``.git``, not only inside DIR (``repository_files``: the git source's own rule, so that a
    change passes ``validate`` exactly when ``run`` reads it). The source's ``roots`` are what
    it reads (``DIR`` in the checkout)."""
    git_path = getattr(args, "git_path", None)  # None: not given; "": the whole checkout
    if git_path is None:
        return DirectorySource(paths, max_file_size=args.max_file_size, max_tasks=max_tasks)
    if len(paths) != 1:
        raise SystemExit("crontask: --git-path reads one checkout of a repository: give one PATH")
    (checkout,) = paths
    bounds = {"max_file_size": args.max_file_size, "max_tasks": max_tasks}
    return repository_files([checkout / git_path], checkout, **bounds)


def load(paths: list[Path], args: argparse.Namespace) -> tuple[DesiredState, DirectorySource]:
    """What ``crontask run`` would have in force from ``paths``, under ``args``' bounds."""
    source = reader(paths, args, max_tasks=args.max_tasks)
    with rare_collections():
        read_ahead(source, usable_cores())  # a large folder on every core, as `run` reads it
        source.refresh(None)
        return assemble(source.definitions(), source.errors()), source


def run_validate(args: argparse.Namespace) -> int:
    source = reader(existing_paths(args.paths), args)
    try:
        with rare_collections():
            found = survey(source, workers=args.jobs)
    except BrokenProcessPool as err:
        print(
            f"crontask: a process reading the files ended: {err} (-j 1 reads them in this one)",
            file=sys.stderr,
        )
        return 2
    problems = found.problems
    if (past := declared_past(found.definitions, args.max_tasks)) is not None:
        problems = [*problems, printable(f"{', '.join(args.paths)}: {past}")]
    receivers, warnings, warned = None, found.warnings, found.warned
    if not problems:  # "ok: 0 tasks" hid a mistyped folder, also beside one of tasks
        warnings = [*warnings, *(printable(f"{r}: warning: {_NO_TASK_FILES}") for r in found.empty)]
        warned += len(found.empty)
    if args.notifications is not None:
        receivers, said, notes = _check_notifications(args.notifications)
        problems, warnings, warned = [*problems, *said], [*warnings, *notes], warned + len(notes)
    for line in [*problems, *warnings]:
        print(line)
    summary = f"{_count(found.files, 'file')}, {_count(found.tasks, 'task')}"
    if found.ignored:
        summary += f", {_count(found.ignored, 'document')} of other kinds ignored"
    if receivers is not None:
        summary += f", {_count(receivers, 'notification receiver')}"
    if warned:  # a warning does not fail validation: the task is valid and runs
        summary += f", {_count(warned, 'warning')}"  # those not shown too (``survey``)
    if problems:
        sys.stdout.flush()  # keep the summary after the problems when both go to one terminal
        print(f"{_problems(problems)} ({summary})", file=sys.stderr)
        return 1
    print(f"ok: {summary}")
    return 0


_NO_TASK_FILES = "no task files: crontask reads the *.yaml and *.yml files under it"


def _problems(problems: list[str]) -> str:
    """``3 problems``; ``20+ problems`` when a file had more than it reports (its last line
    says so, and is no problem: the rest of the file was not read, so they are not counted)."""
    cut_off = f": {more_in_file(DEFAULT_LIMITS.max_errors)}"
    cut = sum(1 for line in problems if cut_off in line)
    shown = len(problems) - cut
    return f"{shown}+ problems" if cut else _count(shown, "problem")


def _check_notifications(path: Path) -> tuple[int | None, list[str], list[str]]:
    """The number of receivers of the ``--notifications`` file, read as ``crontask run`` reads
    it at start (None if it does not read), its problems (``file:line:col: ...``, never a
    URL), and its warnings: those the reading logs (a file others may read), each with its
    file, then a receiver's file that cannot be read here (validate may run in CI, where the
    files are not: ``run`` refuses to start without it), then what is valid but does nothing
    (a receiver no route sends to), each at its place."""
    from reconciler.sinks import notify_config  # only this check needs it

    warned, unread = _Warnings(), list[str]()
    logger = logging.getLogger("crontask")
    logger.addHandler(warned)
    try:
        checked = notify_config.load(path, warn=unread.append)
    except notify_config.NotificationConfigError as err:
        notes = [*warned.lines, *map(printable, unread)]
        return None, [printable(line) for line in str(err).splitlines()], notes
    finally:
        logger.removeHandler(warned)
    notes = [*warned.lines, *map(printable, unread), *map(printable, checked.warnings)]
    return len(checked.config.receivers), [], notes


class _Warnings(logging.Handler):
    """The warnings logged while a file is read, as ``validate`` prints its own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        where = fields.get("path") if isinstance(fields, dict) else None
        self.lines.append(printable(f"{where}: warning: {record.getMessage()}"))


PLANNED_KINDS = (SourceKind.FILE, SourceKind.GIT)
# Characters of a server task's location from a file: a server shows a path in at most 4 096
# (then "...", sources.files), and ":LINE:COLUMN" follows. A longer one is no server's.
MAX_LOCATION = 4096 + 64


def _from_server(
    server: str, local: DesiredState
) -> tuple[DesiredState, list[Definition], dict[str, tuple[str, str]]]:
    """What ``server`` has in force from files and git, its definitions from the other
    sources (the API, custom resources), which the local files do not replace but may clash
    with, and the kind and file (as the server names it) of each task it has from files and
    git; each http task's URL the one of ``local`` when the server shows that URL redacted
    (to a viewer or operator): a URL it shows as ``local``'s would be shown is taken for it,
    not reported as changed."""
    named = redact_url(server)  # in messages and locations: no password or token
    try:
        items = fetch_tasks(server, default_token())  # every page
    except RemoteError as err:
        raise SystemExit(f"crontask: {err}") from None
    definitions: list[Definition] = []
    others: list[Definition] = []  # the API's and custom resources' tasks
    files: dict[str, tuple[str, str]] = {}
    for item in items:
        key = printable(str(item.get("key"))[:200])
        source = item.get("source")
        kind = source.get("kind") if isinstance(source, dict) else None
        if not isinstance(kind, str):
            # Every task a server lists has one (api.models.SourceRefOut). Skipped, the task
            # was planned as an add, exit status 0: the answer is refused, as one whose
            # resource is no CronTask is.
            raise SystemExit(f"crontask: {named} answered a task without a source kind: {key}")
        assert isinstance(source, dict)
        try:
            task = CronTask.model_validate(item.get("resource"))
        except ValidationError:
            raise SystemExit(
                f"crontask: {named} answered a task that is no CronTask: {key}"
            ) from None
        # The kind first: it alone decides which side of a conflict wins (core.desired).
        where = Location(printable(kind), f"{named} {cut(source.get('location'))}")
        found = definitions if kind in PLANNED_KINDS else others
        found.append(Definition.of(_unredacted(task, local), where))
        if kind in PLANNED_KINDS and (location := _file_location(source, named, task.key)):
            files[task.key] = (kind, file_of(location))
    return assemble(definitions), others, files


def _file_location(source: dict[str, Any], named: str, key: str) -> str | None:
    """The location of a server's task from a file, which ``plan_keeps`` matches with the
    new files by its ending; ``None``, with a warning, when it is longer than
    :data:`MAX_LOCATION`: no server's path is, and the plan goes on without matching that
    task's file (a server's answer need not be a server's: one 100 000 folders deep made the
    plan take gigabytes before locations were matched by their ending)."""
    location = str(source.get("location"))
    if len(location) <= MAX_LOCATION:
        return location
    print(
        f"crontask: warning: {named} answered the task {printable(key)} from a file location "
        f"longer than {MAX_LOCATION:,} characters: not matched with the files here",
        file=sys.stderr,
    )
    return None


def _beside(local: DesiredState, source: DirectorySource, others: list[Definition]) -> DesiredState:
    """``local`` as a pass of the server settles it with ``others``, the server's tasks from
    the other sources (as ``POST /api/v1/plan`` does, ``api.planning``): a key both define
    is a conflict (a problem), and a key the other side wins is no longer the files' to plan.
    """
    if not others:
        return local
    keys = {d.key for d in others}
    settled = reassemble(local, keys, [*source.definitions_of(keys), *others], local.errors)
    tasks = {k: d for k, d in settled.tasks.items() if d.location.source in PLANNED_KINDS}
    return DesiredState(tasks, settled.errors, settled.conflicts)


def _unredacted(task: CronTask, local: DesiredState) -> CronTask:
    """``task`` from a server, with the http URL of the local task of its key when the
    server's is that URL as the API shows it to one who may only read it
    (``redact_request_url``: no user name, password, path or query values)."""
    mine = local.tasks.get(task.key)
    theirs, ours = task.spec.http, mine.task.spec.http if mine else None
    if theirs is None or ours is None or theirs.url == ours.url:
        return task
    if theirs.url != redact_request_url(ours.url):
        return task
    http = theirs.model_copy(update={"url": ours.url})
    return task.model_copy(update={"spec": task.spec.model_copy(update={"http": http})})


def _shown_change(change: FieldChange) -> FieldChange:
    """``change`` as a plan prints it: an http URL as the API shows it to a reader, on both
    sides (the local one, or an admin's view of the server's, may hold a token)."""
    if change.path != "spec.http.url":
        return change
    old, new = (
        redact_request_url(v) if isinstance(v, str) else v for v in (change.old, change.new)
    )
    return FieldChange(change.path, old, new)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# A broken file of --against: `run` keeps its last good tasks, which the plan cannot know.
_AGAINST_ERROR = (
    "--against: what this file defines in force is not known; a running crontask keeps its "
    "last good tasks"
)


def run_plan(args: argparse.Namespace) -> int:
    new, new_source = load(existing_paths(args.paths), args)
    new_paths = new_source.roots  # what is read: with --git-path, that folder of the checkout
    unread: set[str] = set()
    held: set[str] = set()
    held_problems: list[str] = []
    maybe: dict[str, Path] = {}  # a task that may be kept, and the broken file that may keep it
    # `run` applies a file whole or not at all: what a file with errors defined stays in force.
    if args.server:
        old, others, files = _from_server(args.server, new)
        new = _beside(new, new_source, others)
        kept, maybe = kept_on_server(args, (new, new_source, new_paths), old, files)
    else:
        old, old_source = load(existing_paths(args.against), args)
        old_paths = old_source.roots
        kept = defined_by_broken_files(new_source, new_paths, old_source, old_paths)
        pairs = (
            list(zip(new_paths, old_paths, strict=True)) if len(new_paths) == len(old_paths) else []
        )
        removed = old.tasks.keys() - new.tasks.keys() - kept
        unread, held, held_problems = kept_for_places(
            new_source, pairs, old_source, removed, args.allow_empty
        )
        # What went where `run` sees it go: a broken document may keep it adrift.
        kept |= adrift(new, new_source, old, kept | unread | held, args.max_tasks)
    # What `run` keeps stands in `desired`, each key for one reason: gone, it would be removed.
    kept = {key for key in kept if key in old.tasks and key not in new.tasks}
    held -= unread
    keeping = kept | unread | held | maybe.keys()
    desired = {**new.tasks, **{key: old.tasks[key] for key in keeping}}
    result = plan(desired, old.tasks, allow_empty=args.allow_empty)
    symbol = {Operation.ADD: "+", Operation.UPDATE: "~", Operation.REMOVE: "-"}
    for step in result.steps:
        where = (
            step.desired.location if step.desired else step.current.location if step.current else ""
        )
        # With --server, "where" (cut already) and the old values are the server's words.
        print(printable(f"{symbol[step.operation]} {step.key}  ({where})"))
        if step.operation is Operation.UPDATE:
            for change in step.field_changes():
                print(f"    {cut(_shown_change(change))}")
    for key in result.held_removals:
        print(f"  {key}  (kept: the new definitions are empty; --allow-empty removes it)")
    for key in sorted(kept):
        print(f"  {key}  (kept as it is: its new definition has errors)")
    for key, path in sorted(maybe.items()):
        print(printable(f"  {key}  (may be kept: {path} has errors)"))
    for key in sorted(unread):
        print(f"  {key}  (kept as it is: where it was defined is not read)")
    for key in sorted(held):
        print(f"  {key}  (kept: its path holds no task file now; --allow-empty removes it)")
    problems = new.problems + held_problems
    for problem in problems:
        print(f"! {problem}")
    for problem in [] if args.server else old.problems:  # said, not failed: not these changes'
        print(f"? {problem} ({_AGAINST_ERROR})")
    print(f"Plan: {result.summary()}.")
    return 1 if problems else 0


def run_next(args: argparse.Namespace, server: str | None = None) -> int:
    """The fire times of the tasks in the file or folder ``args.path``; with ``server``, of
    the task ``args.path`` (NAMESPACE/NAME) that this running crontask schedules, from the
    definition it has in force. Each task's are worked out and written before the next
    task's (10 000 tasks of 1 000 slots each took gigabytes when all were kept to the end).
    ``--json`` of a task named by its key is that task's object; of a file or folder,
    ``{"items": [...]}``, however many tasks they hold (a script's ``jq`` must not change
    when a second task is added)."""
    if server is None:
        desired, _ = load(existing_paths([args.path]), args)
        for problem in desired.problems:
            print(problem, file=sys.stderr)
        found, failed = list(desired.tasks.values()), bool(desired.problems)
        waited = None
    else:
        definition, waited = _task_from_server(server, args.path)
        found, failed = [definition], False
    definitions = _select(found, args.task)
    start = args.start or datetime.now(UTC)  # bounded by its argument type
    if args.start is None and waited is not None:
        # From the slot the server waits for, by its clock, not this one's: after its clock
        # went back no slot runs until it passes that one again (README), and a laptop's
        # clock ahead of the server's would leave it out.
        start = waited - timedelta(microseconds=1)
    reports = (_next_report(d, start, args.n) for d in definitions)
    if args.json and server is not None:
        print(json.dumps(next(reports), indent=2))
    elif args.json:
        from reconciler.cli.history import print_json_pages

        print_json_pages([report] for report in reports)
    else:
        for report in reports:
            print(f"{report['task']}  {report['schedule']!r}  ({report['timeZone']})")
            print(f"  {report['description']}")
            if report.get("suspended"):
                print(f"  {SUSPENDED}")
            for at in report["next"]:
                print(f"  {at}")
            sys.stdout.flush()  # a pipe's reader has this task before the next is worked out
    return 1 if failed else 0


def _task_from_server(server: str, key: str) -> tuple[Definition, datetime | None]:
    """The definition in force of the task ``key`` on ``server``: what it answers to
    ``GET /api/v1/tasks/{namespace}/{name}``, and the first of its ``nextRuns`` (the slot it
    waits for; None without one). A task it does not know (404), or any failure, is one line
    and exit status 1, as for the other client commands."""
    named = redact_url(server)  # in messages: no password
    namespace, _, name = key.partition("/")
    path = f"/api/v1/tasks/{quote(namespace, safe='')}/{quote(name, safe='')}"
    try:
        item = request(server, default_token(), "GET", path)
    except RemoteError as err:
        raise SystemExit(f"crontask: {err}") from None
    try:
        task = CronTask.model_validate(item.get("resource"))
    except ValidationError:
        raise SystemExit(f"crontask: {named} answered a task that is no CronTask: {key}") from None
    if task.key != key:
        raise SystemExit(f"crontask: {named} answered the task {task.key} for {key}")
    if item.get("error"):
        # Its source has a problem; the last good definition, shown here, is the one that runs.
        print(f"{key}: {shown(item['error'])} (the definition in force is shown)", file=sys.stderr)
    source = item.get("source")
    kind = source.get("kind") if isinstance(source, dict) else None
    runs = item.get("nextRuns")
    first = runs[0] if isinstance(runs, list) and runs else None
    try:
        waited = timestamp(first) if isinstance(first, str) else None
    except argparse.ArgumentTypeError:
        waited = None  # no time: the slots from now on, as from a file
    return Definition.of(task, Location(printable(str(kind)), named)), waited


def _select(definitions: list[Definition], task: str | None) -> list[Definition]:
    if task is not None:
        chosen = [d for d in definitions if task in (d.key, d.task.metadata.name)]
        if not chosen:
            names = ", ".join(sorted(d.key for d in definitions)) or "none"
            raise SystemExit(f"crontask: no task {task!r} here (tasks: {names})")
        return chosen
    if not definitions:
        raise SystemExit("crontask: no valid CronTask found")
    return sorted(definitions, key=lambda d: d.key)


# Under a suspended task's schedule: its slots are still listed (``next`` shows what a
# schedule means, as before it is resumed), where the API lists none (``nextRuns: []``).
SUSPENDED = "(suspended: these slots are not run)"


def _next_report(definition: Definition, start: datetime, n: int) -> dict[str, Any]:
    """What ``next`` shows of ``definition`` (with ``--server``, the server's in force):
    ``suspended`` only when it is, so that the other reports keep their shape."""
    spec = definition.task.spec
    schedule = schedule_of(definition)
    report: dict[str, Any] = {
        "task": definition.key,
        "schedule": spec.schedule,
        "timeZone": spec.time_zone,
        "description": schedule.describe(),
    }
    if spec.suspend:
        report["suspended"] = True
    times = schedule.fire_times(start, n)
    if len(times) < n:
        # Slots are searched up to the year MAX_YEAR: a short list must not pass for the
        # whole answer (said on stderr, so that what scripts read keeps its shape).
        print(
            f"crontask: {definition.key}: {len(times)} of {n} slots: none later before the year"
            f" {MAX_YEAR + 1}",
            file=sys.stderr,
        )
    report["next"] = [t.isoformat() for t in times]
    return report


def run_crd(args: argparse.Namespace) -> int:
    sys.stdout.write(yaml.safe_dump(crd_document(), sort_keys=False))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0
