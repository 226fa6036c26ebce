"""Commands that talk to a running crontask over its REST API: ``tasks``, ``trigger`` and
``members`` - their arguments, and what they print.

``--server URL`` (default ``$CRONTASK_SERVER`` or ``http://127.0.0.1:8080``) names the
server; ``$CRONTASK_TOKEN``, when set, is sent as a bearer token. Output is a table, or the
API's JSON with ``--json``. An API error is printed as one line (from its problem+json body)
and the command exits 1.

``trigger`` asks again only where the API says nothing was done: a trigger is not idempotent,
and one asked again after it was taken would run the task twice. A 503 ``not-started`` (the
replica may not start runs now: nothing run or recorded) is asked again after its
``Retry-After`` (said on stderr), at most :data:`MAX_TRIES` times and ``--max-wait`` seconds of
waiting in all; past that, "not triggered", and when to try again, exit status
:data:`NOT_TRIGGERED` (EX_TEMPFAIL), as for a request that surely never went out (a connection
refused, a proxy that would not open the tunnel, a connection that timed out: nothing was run;
not asked again). A 503 ``run-undecided`` (the run starts if the store takes its claim) is
not: the line says to look before triggering again. Other 503s (the API busy at the door, a
trigger that waited out the scheduler) do not say whether a run started, and are errors as
before. A run the server took and recorded skipped (nothing ran) is exit
status :data:`SKIPPED`, with or without ``--json``; one it took but that has not started yet
(``pending``: a ``Replace`` run waiting for the run it replaces to stop) is exit status
:data:`PENDING`, its line saying what it waits for; one whose answer says it already ended
without success (it could not start) is :data:`ENDED_UNSUCCESSFULLY`, with its reason.

The calls, and the bounds that keep a server which misbehaves from hanging or flooding the
command, are :mod:`~reconciler.cli.client`'s; here, every string of an answer printed for a
human goes through :func:`~reconciler.cli.terminal.shown` (escaped, and cut to
:data:`~reconciler.cli.terminal.MAX_SHOWN` characters), and a table's cell is cut to
:data:`~reconciler.cli.main_helpers.MAX_CELL`; ``--json`` prints the answer whole.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from time import sleep
from typing import Any, Final
from urllib.parse import quote

from reconciler.cli.answers import (
    TASK_FIELDS,
    RemoteProblem,
    Unanswered,
    UnreadableAnswer,
    Unsent,
    object_list,
    shaped,
)
from reconciler.cli.client import RemoteError, fetch_tasks, request
from reconciler.cli.client_env import (
    DEFAULT_SERVER,
    SERVER_ENV,
    TOKEN_ENV,
    default_server,
    default_token,
)
from reconciler.cli.main import OutputError
from reconciler.cli.main_helpers import (
    bounded_int,
    label,
    print_json,
    print_table,
    server_url,
    task_key,
)
from reconciler.cli.terminal import printable, shown
from reconciler.core.schedule.errors import ScheduleError
from reconciler.core.schedule.zones import validate_time_zone
from reconciler.core.urls import redact_url

# The problem types of the API's 503s to a trigger (``api.run_decision``), and what is done.
NOT_STARTED_TYPE: Final = "https://crontask.dev/problems/not-started"
UNDECIDED_TYPE: Final = "https://crontask.dev/problems/run-undecided"
MAX_TRIES: Final = 5
MAX_WAIT: Final = 30  # seconds of waiting in all, by default (--max-wait)
DEFAULT_RETRY_AFTER: Final = 5.0  # a not-started 503 without a readable Retry-After
NOT_TRIGGERED: Final = 75  # EX_TEMPFAIL (sysexits.h): nothing was done, try again later
# The server took the trigger and recorded the run skipped (Forbid while a run goes, too many
# manual runs, the store down): nothing ran. Not 0, so that `trigger X && echo started` does
# not say it started; no sysexits.h code means "refused by policy", and 1 would say an error.
SKIPPED: Final = 3
# The server took the trigger, but the run has not started (``pending``: under Replace, it
# waits for the run it replaces to stop, and it may yet be skipped): not 0 either, for the
# same reason, nor SKIPPED, as it will most likely run. Look with `crontask runs KEY`.
PENDING: Final = 4
# The server took the trigger, and its answer says the run already ended without success:
# most often it could not start (``failed``, reason StartFailed: a command not found). Not 0,
# so that `trigger X && ...` does not go on as if it ran; not 1, which says the run may have
# started and the outcome is not known.
ENDED_UNSUCCESSFULLY: Final = 5
_UNSUCCESSFUL: Final = frozenset({"failed", "timedOut", "interrupted"})


def add_server_arg(parser: argparse.ArgumentParser) -> None:
    """``--server URL`` (for any command that talks to the API, e.g. ``crontask tasks``;
    ``crontask runs`` has its own, with no default)."""
    parser.add_argument(
        "--server",
        metavar="URL",
        type=server_url,
        default=None,
        help=f"the crontask API (default: ${SERVER_ENV} or {DEFAULT_SERVER}); "
        f"${TOKEN_ENV} is sent as a bearer token",
    )


def add_parsers(commands: Any) -> None:
    """Register ``tasks``, ``trigger`` and ``members`` on the ``crontask`` subcommand parser."""
    tasks = commands.add_parser(
        "tasks",
        help="list the tasks of a running crontask",
        description="List the tasks a running crontask schedules (over its API): state, "
        "source, next and last run.",
    )
    tasks.add_argument("--namespace", metavar="NS", type=label, help="only this namespace")
    tasks.add_argument("--json", action="store_true", help='print the API\'s {"items": [...]}')
    add_server_arg(tasks)
    tasks.set_defaults(handler=run_tasks)

    trigger = commands.add_parser(
        "trigger",
        help="start a run of a task now",
        description="Ask a running crontask to run NAMESPACE/NAME now (needs the operator "
        "role). The run may be skipped, e.g. while one is running and the task's "
        "concurrencyPolicy is Forbid; the reason is printed. Exit status 0 once the server "
        f"took it and the run started, {SKIPPED} when the server recorded it skipped (nothing "
        f"ran), {PENDING} when it took it but the run has not started yet (under Replace, it "
        "waits for the run it replaces to stop: look with `crontask runs KEY --server URL`), "
        f"{ENDED_UNSUCCESSFULLY} when its answer says the run already ended without success "
        "(most often it could not start: the reason is printed), "
        f"{NOT_TRIGGERED} when it surely did not take it (try again later), 1 on any "
        "other error (the run may have started: look with `crontask runs KEY --server URL`).",
    )
    trigger.add_argument("key", metavar="NAMESPACE/NAME", type=task_key)
    trigger.add_argument("--json", action="store_true", help="print the run record as JSON")
    trigger.add_argument(
        "--max-wait",
        metavar="SECONDS",
        type=bounded_int(0, 3600),
        default=MAX_WAIT,
        help="while the server answers that it may not start runs now (nothing was run), ask "
        f"again after the Retry-After it sends, up to {MAX_TRIES} tries and SECONDS of waiting "
        f"in all (default {MAX_WAIT}; 0: ask once); then exit status {NOT_TRIGGERED}",
    )
    add_server_arg(trigger)
    trigger.set_defaults(handler=run_trigger)

    members = commands.add_parser(
        "members",
        help="list the replicas of a running crontask (--ha)",
        description="List the replicas a running crontask (--ha) sees: each one's address, "
        "since when it is a member, its last renewal, the tasks it schedules and which set of "
        "definitions it read (a letter); and, when replicas read different definitions, on "
        "which tasks.",
    )
    members.add_argument("--json", action="store_true", help="print the API's answer")
    add_server_arg(members)
    members.set_defaults(handler=run_members)


def run_tasks(args: argparse.Namespace) -> int:
    server = args.server or default_server()
    params = {"namespace": args.namespace} if args.namespace else {}
    try:
        items = shaped(fetch_tasks(server, default_token(), params), TASK_FIELDS, server, "tasks")
    except RemoteError as exc:
        return _fail(exc)
    if args.json:
        print_json({"items": items})
        return 0
    if not items:
        print("no tasks" + (f" in namespace {args.namespace}" if args.namespace else ""))
        return 0
    headers = ["TASK", "STATE", "SCHEDULE", "NEXT RUN", "LAST RUN", "SOURCE"]
    owners = any(t.get("owner") for t in items)  # replicas: who schedules each task
    if owners:
        headers.append("OWNER")
    print_table(headers, (_task_row(t, owners) for t in items))
    for t in items:
        if t.get("error"):
            print(f"{shown(t.get('key'))}: {shown(t['error'])}", file=sys.stderr)
    return 0


def run_members(args: argparse.Namespace) -> int:
    server = args.server or default_server()
    try:
        answer = request(server, default_token(), "GET", "/api/v1/members")
        members = object_list(answer.get("items"), server, "members")
        differing = object_list(answer.get("differingTasks"), server, "differing tasks")
    except RemoteError as exc:
        return _fail(exc)
    if args.json:
        print_json(answer)
        return 0
    rows = (
        [
            shown(m.get("id")) + (" (this one)" if m.get("me") else ""),
            shown(m.get("address")),
            _when(m.get("since")),
            _when(m.get("renewed")),
            shown(m.get("ownedTasks", 0)),
            shown(m.get("digest")) + (" draining" if m.get("draining") else ""),
            # None: a replica of a release that does not say; absent: a server that does not.
            shown(m.get("version"), "unknown") if "version" in m else "-",
        ]
        for m in members
    )
    headers = ["MEMBER", "ADDRESS", "SINCE", "RENEWED", "TASKS", "DIGEST", "VERSION"]
    print_table(headers, rows)
    if members and not any("version" in m for m in members):
        print("VERSION -: the crontask that answered does not say its replicas' versions")
    if answer.get("fenced") is True:  # the list is from before the fence, not now
        print(
            f"this replica has not renewed its membership since {_when(answer.get('listedAt'))}: "
            "the list is as of then; it starts no runs"
        )
    total = answer.get("total")
    if isinstance(total, int) and total > len(members):  # the API lists a bounded number
        print(f"{len(members)} of {total} live members listed")
    if answer.get("disagreeingSince"):
        print(f"replicas read different definitions since {shown(answer['disagreeingSince'])}:")
        for task in differing:
            hashes = task.get("hashes")
            pairs = hashes.items() if isinstance(hashes, dict) else []
            said = ", ".join(f"{shown(m, '')}={shown(h, 'absent')}" for m, h in pairs)
            print(f"  {shown(task.get('task'))}: {said}")
    return 0


def run_trigger(args: argparse.Namespace) -> int:
    namespace, _, name = args.key.partition("/")
    server = args.server or default_server()
    path = f"/api/v1/tasks/{quote(namespace, safe='')}/{quote(name, safe='')}/runs"
    try:
        run = _taken_run(args.key, server, path, args.max_wait)
    except _NotTaken as exc:
        print(f"crontask: {exc}", file=sys.stderr)
        return exc.code
    except RemoteError as exc:
        return _fail(exc)
    status = run.get("status")
    try:
        _print_run(args, run)
        sys.stdout.flush()  # a full disk fails here, while the run can still be named
    except OutputError as err:
        # Exit status 74 as for any output not written, but the run was taken: said, so that
        # a status other than 0 is not read as "not triggered" and the task run twice.
        run_id = shown(run["id"])
        if status == "skipped":  # nothing ran: a trigger again is no second run of it
            raise OutputError(
                f"{err}; {args.key}: run {run_id} recorded skipped (nothing ran)"
            ) from None
        if status in _UNSUCCESSFUL:  # it ran, or tried to, and ended: not going on
            raise OutputError(f"{err}; {args.key}: run {run_id} recorded {status}") from None
        word = "pending" if status == "pending" else "started"
        taken = f"{args.key}: run {run_id} {word} all the same"
        raise OutputError(f"{err}; {taken}: {_look_first(args.key, server)}") from None
    if status in _UNSUCCESSFUL:
        return ENDED_UNSUCCESSFULLY
    return SKIPPED if status == "skipped" else PENDING if status == "pending" else 0


def _print_run(args: argparse.Namespace, run: dict[str, Any]) -> None:
    """The run a trigger's server took, as ``trigger`` prints it."""
    status = run.get("status")
    if args.json:
        print_json(run)
    elif status == "skipped" or status in _UNSUCCESSFUL:
        why = shown(run.get("message") or run.get("reason"), "no reason given")
        reason = shown(run.get("reason"), "None")
        print(f"{args.key}: run {shown(run['id'])} {status} ({reason}): {why}")
    elif status == "pending":  # not started yet: what it waits for, and where to look
        why = shown(run.get("message"), "no reason given")
        print(f"{args.key}: run {shown(run['id'])} pending: {why}")
    else:
        print(f"{args.key}: run {shown(run['id'])} {shown(status, 'None')}")


class _NotTaken(Exception):
    """A trigger that ends the command with ``code``: a 503 (see the module), an answer
    whose outcome is not known (a 2xx that cannot be read: it may have run), or a request that
    never went out (nothing was run)."""

    def __init__(self, code: int, line: str) -> None:
        super().__init__(line)
        self.code = code


def _taken_run(key: str, server: str, path: str, max_wait: int) -> dict[str, Any]:
    """The run the server took, asked again while it answers that it did nothing."""
    waited = 0.0
    for attempt in range(1, MAX_TRIES + 1):
        try:
            run = request(server, default_token(), "POST", path)
        # A 2xx that cannot be read: the server took the trigger; no answer (in time): it may
        # have. Asking again could run the task twice.
        except (UnreadableAnswer, Unanswered) as exc:
            raise _NotTaken(1, _may_have_run(printable(exc), key, server)) from None
        # It never went out (refused, a proxy that did not open the tunnel, ...): surely not
        # taken, as a not-started 503 - during a restart the API stops listening first.
        except Unsent as exc:
            said = f"{key} not triggered (nothing was run): {printable(exc)}"
            raise _NotTaken(NOT_TRIGGERED, said) from None
        except RemoteProblem as exc:
            wait = _retry_after(exc, key, server)
            if attempt == MAX_TRIES or max_wait == 0 or waited + wait > max_wait:
                said = f"{key} not triggered (nothing was run): {printable(exc)}"
                raise _NotTaken(NOT_TRIGGERED, f"{said}; try again in {wait:g}s") from None
            print(
                f"crontask: {key} not started ({printable(exc)}); asking again in {wait:g}s "
                f"(try {attempt + 1} of {MAX_TRIES})",
                file=sys.stderr,
            )
            sleep(wait)  # what the server asked for: it would start nothing sooner
            waited += wait
            continue
        if not isinstance(run.get("id"), str) or not run["id"]:
            said = f"{redact_url(server)} answered a run without an id"
            raise _NotTaken(1, _may_have_run(said, key, server))
        return run
    raise AssertionError("the last try returns or raises")


def _retry_after(exc: RemoteProblem, key: str, server: str) -> float:
    """How long to wait before asking again after ``exc``; ``exc`` itself, or
    :class:`_NotTaken`, when asking again could run the task twice."""
    if exc.status != 503 or exc.kind not in (NOT_STARTED_TYPE, UNDECIDED_TYPE):
        raise exc
    if exc.kind == UNDECIDED_TYPE:
        raise _NotTaken(1, _may_have_run(printable(exc), key, server, "it may still run"))
    return DEFAULT_RETRY_AFTER if exc.retry_after is None else exc.retry_after


def _may_have_run(said: str, key: str, server: str, why: str = "it may have run") -> str:
    """``said``, and what a trigger whose outcome is not known asks of its caller: to look at
    the runs before asking again, which could run the task twice."""
    return f"{said}; {why}: {_look_first(key, server)}"


def _look_first(key: str, server: str) -> str:
    runs = f"crontask runs {key} --server {redact_url(server)}"
    return f"see `{runs}` before triggering it again"


def _fail(exc: RemoteError) -> int:
    print(f"crontask: {printable(exc)}", file=sys.stderr)
    return 1


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _task_row(task: Mapping[str, Any], owner: bool) -> list[str]:
    next_runs = task.get("nextRuns")
    source = task.get("source")
    # One zone per row, the task's (as the status page shows it): the API gives the next runs
    # in the task's zone and the last run in UTC, and a row of +0100 beside +0000 misreads.
    zone = _zone(_dig(task, "resource", "spec", "timeZone"))
    row = [
        shown(task.get("key")),
        shown(task.get("state")),
        shown(_dig(task, "resource", "spec", "schedule"), ""),
        _when(next_runs[0] if isinstance(next_runs, list) and next_runs else None, zone),
        _last(task.get("lastRun"), zone),
        f"{shown(_dig(source, 'kind'))}:{shown(_dig(source, 'location'))}",
    ]
    return [*row, shown(task.get("owner"))] if owner else row


def _zone(name: Any) -> tzinfo:
    """The task's zone; UTC where it has none (the default) or names one this machine does
    not know (checked as a schedule's zone is: never read as a path)."""
    if not isinstance(name, str):
        return UTC
    try:
        return validate_time_zone(name)
    except ScheduleError:
        return UTC


def _when(value: Any, zone: tzinfo | None = None) -> str:
    """``value`` (an RFC 3339 time) in ``zone``, or as given without one."""
    if not isinstance(value, str) or not value:
        return shown(value)
    try:
        at = datetime.fromisoformat(value)
        if zone is not None and at.tzinfo is not None:  # a time without an offset: as given
            at = at.astimezone(zone)
        return at.strftime("%Y-%m-%d %H:%M:%S%z")
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return shown(value)


def _last(run: Any, zone: tzinfo) -> str:
    if not isinstance(run, dict) or not run:
        return shown(run or None)
    status = shown(run.get("status"), "")
    if run.get("reason"):
        status += f" ({shown(run['reason'])})"
    return f"{status} {_when(run.get('scheduledTime'), zone)}"
