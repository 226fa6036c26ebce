"""``crontask runs``: the run history, read from the run store (imported only when it is
read) or from a running crontask's API.

``--id`` shows one run's attempts as ``GET /api/v1/runs/{id}`` answers them, read from either
place: with output (its last 64 Ki characters, after the runner's truncation marker when it
begins with one: how many bytes the runner dropped) and, for a job task, its Kubernetes Job
(name, pod, node, each container's exit code and reason), which ``--json`` spells as the API
does (camelCase keys).

A record of the run store that crontask cannot read (a store edited by hand: SQLite takes any
value in any column) is one line (``store_errors.reading``), not a traceback, and a BLOB where
text should be is shown as text, its bytes that are no UTF-8 escaped.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
from collections.abc import Generator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconciler.cli.answers import ATTEMPT_FIELDS, RUN_FIELDS, object_list, shaped
from reconciler.cli.client import RemoteError, fetch_run, fetch_runs
from reconciler.cli.client_env import SERVER_ENV, TOKEN_ENV, default_token
from reconciler.cli.durations import duration_arg
from reconciler.cli.main_helpers import (
    add_state_args,
    bounded_int,
    print_json,
    print_table_pages,
    run_id,
    server_url,
    task_key,
)
from reconciler.cli.terminal import printable, shown
from reconciler.core.runs import RunRecord, RunStatus, Trigger, truncation_marker
from reconciler.sources.limits import KIB

if TYPE_CHECKING:
    from reconciler.store import RunStore

MAX_LIMIT = 100_000
# Characters of a run's output `--id` shows: what crontask keeps of it (the runner's tail); a
# server's longer one is shown by its end, as the tail it stands for, after the runner's
# truncation marker when it begins with one (see _output_lines).
MAX_OUTPUT = 64 * KIB
# Containers of a Job `--id` lists: a pod has a few; a server's list of thousands is not printed.
MAX_CONTAINERS = 32


def _nothing(args: argparse.Namespace) -> str:
    """What an empty answer means: with a filter, that no run matched it, not that the task
    never ran."""
    task = f" for {args.task}" if args.task else ""
    if args.status or args.trigger or args.since is not None:
        return f"no runs match{task}"
    return f"no runs recorded{task}"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "runs",
        help="list recorded runs",
        description="List runs from the run store, newest first (the same --state-dir / --db "
        "as `crontask run`), or with --server from a running crontask's API. With --id, print "
        "one run with its output.",
    )
    parser.add_argument("task", nargs="?", metavar="KEY", type=task_key, help="NAMESPACE/NAME")
    parser.add_argument("--status", choices=[s.value for s in RunStatus])
    parser.add_argument("--trigger", choices=[t.value for t in Trigger])
    parser.add_argument(
        "--since",
        type=duration_arg,
        metavar="DURATION",
        help="only runs scheduled in the last DURATION, e.g. 1h",
    )
    parser.add_argument(
        "--limit",
        type=bounded_int(1, MAX_LIMIT),
        default=20,
        help=f"how many, newest first (default: 20, at most {MAX_LIMIT:,}; read page by page)",
    )
    parser.add_argument(
        "--id", metavar="RUN_ID", type=run_id, help="one run, all attempts, with output"
    )
    parser.add_argument("--json", action="store_true", help='print {"items": [...]}')
    # Without --server the store is read directly (the same --state-dir / --db as `run`):
    # unlike the client commands, `runs` has no default server, and $CRONTASK_SERVER does not
    # turn a read of the local store (or of $CRONTASK_DB) into one of another instance.
    add_state_args(parser)
    parser.add_argument(
        "--server",
        metavar="URL",
        type=server_url,
        default=None,
        help="read the runs from this running crontask's API instead of the store (no "
        f"default: without --server the store is read, whatever ${SERVER_ENV} says); "
        f"${TOKEN_ENV} is sent as a bearer token",
    )
    parser.set_defaults(handler=run_runs)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_runs(args: argparse.Namespace) -> int:
    since = None
    if args.since is not None:  # --since 0 is the last 0 seconds: no run, not every one
        # durations are bounded (reconciler.cli.durations), so this cannot overflow
        since = datetime.now(UTC) - timedelta(seconds=args.since)
    try:
        if args.server:
            items, attempts = _from_api(args, since)
            if args.id:
                return _show_one(attempts, args)
            return _print_runs(iter([items]), args)
        _refuse_a_missing_store(args)
        if args.id:
            return _show_one(_store_attempts(args), args)
        pages = _store_pages(args, since)
        try:
            return _print_runs(pages, args)
        finally:
            pages.close()  # the store too, when the reader went away (a broken pipe)
    except RemoteError as err:
        raise SystemExit(f"crontask: {err}") from None


def _print_runs(pages: Iterator[list[dict[str, Any]]], args: argparse.Namespace) -> int:
    """The runs of ``pages`` (a list of them: ``--json``, or a table), each page printed before
    the next one is read: ``crontask runs --limit 100000 | head -1`` neither waits for the
    last page of a large store nor holds them all.

    A page may be empty and more follow: the store leaves out the records it cannot read (a
    newer crontask's, sharing it), so the newest ``--limit`` rows may all be left out. The
    first page with a run is read before anything is printed; the walk to it is bounded by
    the rows of the store (each page goes past the rows it read, see :func:`_store_pages`)."""
    # Read before anything is printed: a store that cannot be read is one line on stderr and
    # nothing on stdout (no "{" of --json). Only a later page's failure follows printed pages.
    first = next((page for page in pages if page), [])
    if args.json:
        print_json_pages(itertools.chain([first], pages))
        return 0
    if not first:  # every page was empty: nothing matched (or could be read)
        print(_nothing(args))
        return 0
    header = ["RUN", "TASK", "STATUS", "TRIGGER", "ATTEMPT", "SCHEDULED", "DURATION", "EXIT"]
    print_table_pages(header, ([_row(r) for r in page] for page in itertools.chain([first], pages)))
    return 0


def _row(r: dict[str, Any]) -> list[str]:
    # Every field through shown(): with --server they are a server's words, which may hold
    # escape sequences, lack a field or run to MiB.
    return [
        shown(r.get("id")),
        shown(r.get("task")),
        shown(r.get("status")) + (f" ({shown(r['reason'])})" if r.get("reason") else ""),
        shown(r.get("trigger")),
        shown(r.get("attempt")),
        shown(_short(r.get("scheduledTime")), ""),
        _ms(r.get("durationMs")),
        shown(r.get("exitCode"), ""),
    ]


def print_json_pages(pages: Iterable[list[dict[str, Any]]]) -> None:
    """``{"items": [...]}`` of every page, byte for byte as ``print_json`` prints the whole
    list (``json.dumps(..., indent=2)``), written and flushed a page at a time: each item is
    its own ``json.dumps``, its lines indented to its place in the list (JSON text has a
    newline only between tokens, never in a string, so indenting every line is exact)."""
    import json

    write = sys.stdout.write
    write('{\n  "items": [')
    before = "\n    "  # the first item's; ",\n    " before every other one
    for page in pages:
        for item in page:
            write(before + json.dumps(item, indent=2).replace("\n", "\n    "))
            before = ",\n    "
        sys.stdout.flush()  # a pipe's reader has this page before the next one is asked for
    write("\n  ]\n}\n" if before == ",\n    " else "]\n}\n")  # [] for no item, as json.dumps


def _open_store(args: argparse.Namespace) -> RunStore:
    from reconciler.store import open_store, sqlite_url

    url = args.db or sqlite_url(args.state_dir)
    _store_file_there(args)
    # A reader: it may read another user's store, and creates or changes nothing there.
    return open_store(url, existing=True)


def _store_file_there(args: argparse.Namespace) -> None:
    """SystemExit when, without ``--db``, the state directory holds no ``runs.db``. An
    ``OSError`` (the folder cannot be searched) goes through, to ``store_errors``."""
    if not args.db and not os.path.lexists(args.state_dir / "runs.db"):  # a link: said below
        # One who set $CRONTASK_SERVER for the client commands may expect `runs` to ask it.
        hint = (
            f'; runs reads ${SERVER_ENV} only if told: --server "${SERVER_ENV}"'
            if os.environ.get(SERVER_ENV)
            else ""
        )
        raise SystemExit(
            f"crontask: no run store at {args.state_dir}/runs.db (see --state-dir){hint}"
        )


def _refuse_a_missing_store(args: argparse.Namespace) -> None:
    """:func:`_store_file_there`, before the store's modules and ``store_errors`` load (0.2 s,
    SQLAlchemy more): the common mistake (no ``runs.db`` here) is said at once. What cannot
    be looked at is left to :func:`_open_store`, within ``store_errors``' handlers."""
    with contextlib.suppress(OSError):
        _store_file_there(args)


def _store_attempts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--id``: the run's attempts, with output."""
    from reconciler.cli import store_errors

    with store_errors.reported(args.db, args.state_dir):
        store = _open_store(args)
        try:
            # Once it is open, what the driver cannot read is a record's, not the URL's.
            with store_errors.reading(args.db):
                return [to_json(r, output=True) for r in store.attempts(args.id)]
        finally:
            store.close()


def _store_pages(
    args: argparse.Namespace, since: datetime | None
) -> Generator[list[dict[str, Any]], None, None]:
    """The runs of the store, newest first, a page (at most ``MAX_PAGE_SIZE``) at a time, up
    to ``--limit``. Each page is read within ``store_errors``' handlers, but handed out of
    them: what its printing raises (a broken pipe is an ``OSError``) is not the store's.

    A page that comes back short (or empty) with a cursor left out records this version
    cannot read; the pages after it are read whole (``MAX_PAGE_SIZE`` rows, cut to what is
    left of ``--limit``), so that past many such rows ``--limit 5`` takes a query per 1,000
    of them, not per 5."""
    from reconciler.cli import store_errors
    from reconciler.store.query import MAX_PAGE_SIZE, RunQuery

    with store_errors.reported(args.db, args.state_dir):
        store = _open_store(args)
    try:
        left, cursor = args.limit, None
        size = min(left, MAX_PAGE_SIZE)
        while left:
            with store_errors.reported(args.db, args.state_dir), store_errors.reading(args.db):
                page = store.query(
                    RunQuery(
                        task=args.task,
                        status=RunStatus(args.status) if args.status else None,
                        trigger=Trigger(args.trigger) if args.trigger else None,
                        since=since,
                        limit=size,
                        cursor=cursor,
                        output=False,
                    )
                )
                items = [to_json(r) for r in page.items[:left]]
            yield items
            left -= len(items)
            cursor = page.next_cursor
            # Short with a cursor: rows were left out, and more such may follow.
            size = MAX_PAGE_SIZE if len(page.items) < size else min(left, MAX_PAGE_SIZE)
            if cursor is None:
                break
    finally:
        store.close()


def _from_api(
    args: argparse.Namespace, since: datetime | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    token = default_token()
    if args.id:
        answer = fetch_run(args.server, token, args.id)
        attempts = object_list(answer.get("attempts"), args.server, "attempts")
        return [], shaped(attempts, ATTEMPT_FIELDS, args.server, "attempts")
    if since is not None:
        # The API takes instants from 1970 on, and no run is older: --since 100y asks for all.
        since = max(since, _EPOCH)
    params = {"task": args.task, "status": args.status, "trigger": args.trigger, "since": since}
    runs = fetch_runs(args.server, token, params, args.limit)
    return shaped(runs, RUN_FIELDS, args.server, "runs"), []


def _show_one(attempts: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if not attempts:
        raise SystemExit(f"crontask: no run {args.id!r}")
    if args.json:
        print_json({"items": attempts})
        return 0
    for r in attempts:
        print(f"run {shown(r.get('id'))}  attempt {shown(r.get('attempt'))}")
        for label, value in (
            ("task", r.get("task")),
            ("status", r.get("status")),
            ("reason", r.get("reason")),
            ("message", r.get("message")),
            ("trigger", r.get("trigger")),
            ("scheduled", _short(r.get("scheduledTime"))),
            ("started", _short(r.get("startTime"))),
            ("finished", _short(r.get("completionTime"))),
            ("duration", _ms(r.get("durationMs"))),
            ("exit code", None if r.get("exitCode") is None else str(r["exitCode"])),
        ):
            if value:
                print(f"  {label + ':':<11}{shown(value)}")
        for label, text in _job_lines(r.get("job")):
            print(f"  {label + ':':<11}{text}")
        print("  output:")
        # A command's output, shown as cat -v would: its escape sequences are not played.
        output = r.get("output")
        text = output if isinstance(output, str) and output else "(none)"
        for line in _output_lines(text):
            print(f"    {printable(line)}")
    return 0


def _output_lines(text: str) -> list[str]:
    """A run's output as ``--id`` shows it: its last ``MAX_OUTPUT`` characters, after the
    runner's truncation marker if it begins with one (how many bytes the runner dropped, which
    a cut of the end alone would cut off), then a line saying what this cut left out, if any."""
    marker, body = _leading_marker(text)
    lines = [marker] if marker is not None else []
    if len(body) > MAX_OUTPUT:
        lines.append(f"[... {len(body) - MAX_OUTPUT:,} earlier characters cut]")
        body = body[-MAX_OUTPUT:]
    return lines + body.splitlines()


# The runner's marker, ``core.runs.truncation_marker``, around its count ("more": not known).
_MARKER_HEAD, _, _MARKER_END = truncation_marker(None).partition("more")


def _leading_marker(text: str) -> tuple[str | None, str]:
    """The truncation marker ``text`` begins with, on a line of its own, and the rest; or None
    and ``text``. Only a first line that is the marker exactly: the output of a command, or a
    server's answer, may well say "truncated" elsewhere."""
    first, newline, rest = text.partition("\n")
    if not (newline and first.startswith(_MARKER_HEAD) and first.endswith(_MARKER_END)):
        return None, text
    count = first[len(_MARKER_HEAD) : len(first) - len(_MARKER_END)]  # "" if they overlap
    if count == "more" or (count.isascii() and count.isdigit() and len(count) <= 20):
        return first, rest
    return None, text


def _job_lines(job: Any) -> list[tuple[str, str]]:
    """A job task's Job as label and text lines, each value through shown(): with --server
    they are a server's words, of any shape. None: no Job (a command or http task)."""
    if job is None:
        return []
    if not isinstance(job, dict):
        return [("job", shown(job))]
    name, namespace = job.get("name"), job.get("namespace")
    if isinstance(name, str) and isinstance(namespace, str) and namespace:
        name = f"{namespace}/{name}"
    lines = [("job", shown(name))]
    # Absent until the Job has a pod (and a node), as the attempt's other fields are.
    lines += [(field, shown(job[field])) for field in ("pod", "node") if job.get(field)]
    containers = job.get("containers")
    if isinstance(containers, list):
        lines += [("container", _container(c)) for c in containers[:MAX_CONTAINERS]]
        if len(containers) > MAX_CONTAINERS:
            lines.append(("container", f"... {len(containers) - MAX_CONTAINERS:,} more"))
    elif containers is not None:
        lines.append(("container", shown(containers)))
    if job.get("logError"):
        lines.append(("log error", shown(job["logError"])))
    return lines


def _container(c: Any) -> str:
    """``main: exit code 137 (OOMKilled)``."""
    if not isinstance(c, dict):
        return shown(c)
    reason = f" ({shown(c['reason'])})" if c.get("reason") else ""
    return f"{shown(c.get('name'))}: exit code {shown(c.get('exitCode'))}{reason}"


def to_json(r: RunRecord, *, output: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": _text(r.id),
        "task": _text(r.task),
        "attempt": r.attempt,
        "trigger": str(r.trigger),
        "status": str(r.status),
        "reason": _text(r.reason),
        "message": _text(r.message),
        "scheduledTime": _iso(r.scheduled_at),
        "startTime": _iso(r.started_at),
        "completionTime": _iso(r.finished_at),
        "durationMs": r.duration_ms,
        "exitCode": r.exit_code,
    }
    if output:  # as the API answers one run: with output and job
        item["output"] = _text(r.output)
        item["job"] = None if r.job is None else _camel_keys(r.job.to_json())
    return item


def _text(value: Any) -> Any:
    """A record's text as JSON can hold it: SQLite takes a BLOB in any column (a store edited
    by hand), read as bytes, which ``--json`` could not encode (a traceback). Its bytes are
    read as UTF-8, those that are not escaped (``\\xff``); where printed, ``shown`` escapes
    the rest."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value


def _camel_keys(value: Any) -> Any:
    """The stored job details (snake_case) as the API spells them (``api.models._camel_keys``,
    pydantic's to_camel): ``exit_code`` is ``exitCode``."""
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def _short(iso: Any) -> str:
    """``2026-11-26T22:30:40.5+01:00`` -> ``2026-11-26 21:30:40Z``: in UTC, to the second. A
    time without an offset is shown without the ``Z`` (its zone is not known), and what is no
    time as it is (a server's words, escaped where printed)."""
    if not isinstance(iso, str) or not iso:
        return ""
    try:
        at = datetime.fromisoformat(iso)
        if at.tzinfo is None:
            return at.strftime("%Y-%m-%d %H:%M:%S")
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 in UTC
        return iso


def _ms(ms: Any) -> str:
    if not isinstance(ms, int) or isinstance(ms, bool):
        return ""
    if ms < 10_000:
        return f"{ms}ms"
    # Integer arithmetic: a server's huge number cannot overflow a float (and is still shown).
    tenths = (ms + 50) // 100
    return f"{tenths // 10}.{tenths % 10}s"
