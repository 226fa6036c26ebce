"""``crontask runs``: the run history, read from the run store."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.cli.durations import duration_arg
from reconciler.cli.serve import add_state_args
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunQuery


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "runs",
        help="list recorded runs",
        description="List runs from the run store, newest first (the same --state-dir / --db "
        "as `crontask run`). With --id, print one run with its output.",
    )
    parser.add_argument("task", nargs="?", metavar="KEY", help="NAMESPACE/NAME")
    parser.add_argument("--status", choices=[s.value for s in RunStatus])
    parser.add_argument("--trigger", choices=[t.value for t in Trigger])
    parser.add_argument(
        "--since",
        type=duration_arg,
        metavar="DURATION",
        help="only runs scheduled in the last DURATION, e.g. 1h",
    )
    parser.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    parser.add_argument("--id", metavar="RUN_ID", help="one run, all attempts, with output")
    parser.add_argument("--json", action="store_true", help='print {"items": [...]}')
    add_state_args(parser)
    parser.set_defaults(handler=run_runs)


def run_runs(args: argparse.Namespace) -> int:
    url = args.db or sqlite_url(args.state_dir)
    if not args.db and not (args.state_dir / "runs.db").exists():
        raise SystemExit(f"crontask: no run store at {args.state_dir}/runs.db (see --state-dir)")
    store = open_store(url)
    try:
        if args.id:
            return _show_one(store.attempts(args.id), args)
        since = datetime.now(UTC) - timedelta(seconds=args.since) if args.since else None
        page = store.query(
            RunQuery(
                task=args.task,
                status=RunStatus(args.status) if args.status else None,
                trigger=Trigger(args.trigger) if args.trigger else None,
                since=since,
                limit=args.limit,
            )
        )
    finally:
        store.close()
    if args.json:
        print(json.dumps({"items": [to_json(r) for r in page.items]}, indent=2))
        return 0
    rows = [
        [
            r.id,
            r.task,
            str(r.status) + (f" ({r.reason})" if r.reason else ""),
            str(r.trigger),
            str(r.attempt),
            _time(r.scheduled_at) or "",
            _ms(r.duration_ms),
            "" if r.exit_code is None else str(r.exit_code),
        ]
        for r in page.items
    ]
    if not rows:
        print("no runs recorded" + (f" for {args.task}" if args.task else ""))
        return 0
    header = ["RUN", "TASK", "STATUS", "TRIGGER", "ATTEMPT", "SCHEDULED", "DURATION", "EXIT"]
    print(table(header, rows))
    return 0


def _show_one(attempts: list[RunRecord], args: argparse.Namespace) -> int:
    if not attempts:
        raise SystemExit(f"crontask: no run {args.id!r}")
    if args.json:
        print(json.dumps({"items": [to_json(r, output=True) for r in attempts]}, indent=2))
        return 0
    for r in attempts:
        print(f"run {r.id}  attempt {r.attempt}")
        for label, value in (
            ("task", r.task),
            ("status", str(r.status)),
            ("reason", r.reason),
            ("message", r.message),
            ("trigger", str(r.trigger)),
            ("scheduled", _time(r.scheduled_at)),
            ("started", _time(r.started_at)),
            ("finished", _time(r.finished_at)),
            ("duration", _ms(r.duration_ms)),
            ("exit code", None if r.exit_code is None else str(r.exit_code)),
        ):
            if value:
                print(f"  {label + ':':<11}{value}")
        print("  output:")
        for line in (r.output or "(none)").splitlines():
            print(f"    {line}")
    return 0


def to_json(r: RunRecord, *, output: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": r.id,
        "task": r.task,
        "attempt": r.attempt,
        "trigger": str(r.trigger),
        "status": str(r.status),
        "reason": r.reason,
        "message": r.message,
        "scheduledTime": _iso(r.scheduled_at),
        "startTime": _iso(r.started_at),
        "completionTime": _iso(r.finished_at),
        "durationMs": r.duration_ms,
        "exitCode": r.exit_code,
    }
    if output:
        item["output"] = r.output
    return item


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]
    return "\n".join(lines)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def _time(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else None


def _ms(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"
