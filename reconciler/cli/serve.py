"""``crontask run``: the reconciler."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from reconciler import logs
from reconciler.cli.durations import duration_arg
from reconciler.cli.main_helpers import existing_paths
from reconciler.controller.runtime import Options, serve

HELP = """\
Read CronTask definitions from PATH... (YAML files, or folders searched recursively for
*.yaml/*.yml), schedule them, run them, and record every run. Files are watched: an edit takes
effect within a second; a file that breaks keeps its tasks on their last good definition and
the error is logged with file:line:col. Stop with Ctrl-C or SIGTERM: running tasks get
--shutdown-grace to finish.
"""


def add_state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".crontask"),
        help="where the run history lives (default: ./.crontask, SQLite file runs.db)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="run store URL instead of the state dir's SQLite file, "
        "e.g. sqlite:////var/lib/crontask/runs.db or postgresql+psycopg://user@host/db",
    )


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run the reconciler",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    add_state_args(parser)
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="let every path yielding no task remove all running tasks (default: keep them, "
        "since an empty result is usually a wrong path or a failed checkout)",
    )
    parser.add_argument(
        "--resync",
        type=duration_arg,
        default=300.0,
        metavar="DURATION",
        help="full re-read of every source, healing missed events (default: 5m)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=duration_arg,
        default=30.0,
        metavar="DURATION",
        help="on SIGTERM, how long running tasks may finish before they are stopped (30s)",
    )
    parser.add_argument(
        "--kill-grace",
        type=duration_arg,
        default=10.0,
        metavar="DURATION",
        help="after TERM at a timeout, how long before KILL (default: 10s)",
    )
    parser.add_argument(
        "--history-max-age",
        type=duration_arg,
        default=30 * 86400.0,
        metavar="DURATION",
        help="delete run records older than this (default: 30d); per-task limits "
        "(successfulRunsHistoryLimit, failedRunsHistoryLimit) apply too; 0 keeps them forever",
    )
    parser.add_argument(
        "--housekeeping-interval",
        type=duration_arg,
        default=600.0,
        metavar="DURATION",
        help="how often history retention is enforced (default: 10m)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--log-format", default="logfmt", choices=["logfmt", "json"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    options = Options(
        paths=existing_paths(args.paths),
        state_dir=args.state_dir,
        db_url=args.db,
        allow_empty=args.allow_empty,
        resync_seconds=args.resync,
        shutdown_grace=args.shutdown_grace,
        kill_grace=args.kill_grace,
        history_max_age=args.history_max_age or None,
        housekeeping_seconds=args.housekeeping_interval,
    )
    return asyncio.run(serve(options))
