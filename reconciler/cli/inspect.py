"""Commands that read definitions without running anything: validate, plan, next, schema,
crd. Here are their arguments; their work is in ``definitions``, imported only when one runs,
so that ``--help`` and a usage error are answered before YAML, pydantic and the sources load."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.client_env import SERVER_ENV, TOKEN_ENV, configured_server
from reconciler.cli.given_paths import NO_SUCH_PATH, absent, existing_paths
from reconciler.cli.main_helpers import (
    add_source_bounds_args,
    bounded_int,
    git_path,
    path_arg,
    server_url,
    task_key,
    timestamp,
)
from reconciler.cli.terminal import printable
from reconciler.sources.limits import PARALLEL_MIN_FILES


def add_parsers(commands: Any) -> None:
    _add_validate(commands)
    _add_plan(commands)
    _add_next(commands)
    _add_schemas(commands)


def _add_validate(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check CronTask definitions",
        description="Check every CronTask in PATH... (files or folders). Prints each problem as "
        "file:line:col: message and exits 1 if there is any; otherwise prints a one-line "
        "summary and exits 0. Documents of other API groups are ignored and counted.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH")
    add_source_bounds_args(validate)
    validate.add_argument(
        "-j",
        "--jobs",
        type=bounded_int(1, 256),
        metavar="N",
        help="processes reading the files (default: one per usable core; a folder of fewer "
        f"than {PARALLEL_MIN_FILES} files is read by one)",
    )
    validate.add_argument(
        "--notifications",
        type=path_arg,
        metavar="FILE",
        help="check this receivers and routes file too, as `crontask run --notifications` "
        "reads it at start",
    )
    _add_git_path(validate)
    validate.set_defaults(handler=run_validate)


def _add_plan(commands: Any) -> None:
    plan_cmd = commands.add_parser(
        "plan",
        help="show what applying definitions would change",
        description="Compare the CronTasks in PATH... with those in --against PATH... and print "
        "what would be added (+), changed (~, field by field) and removed (-). Exits 1 if "
        "PATH... has errors (the plan then keeps those tasks as they are, as `run` would).",
    )
    plan_cmd.add_argument("paths", nargs="+", metavar="PATH", help="the new definitions")
    against = plan_cmd.add_mutually_exclusive_group(required=True)
    against.add_argument(
        "--against",
        nargs="+",
        metavar="PATH",
        help="the definitions in force now (e.g. a checkout of the main branch)",
    )
    against.add_argument(
        "--server",
        metavar="URL",
        type=server_url,
        help="a running crontask: compare with the tasks it reads from files and git "
        "(API-created and Kubernetes tasks are not what a folder replaces); $CRONTASK_TOKEN",
    )
    plan_cmd.add_argument("--allow-empty", action="store_true", help="as for `crontask run`")
    add_source_bounds_args(plan_cmd)
    _add_git_path(plan_cmd)
    plan_cmd.set_defaults(handler=run_plan)


def _add_git_path(command: Any) -> None:
    command.add_argument(
        "--git-path",
        type=git_path,
        metavar="DIR",
        help="PATH is a checkout of the repository `crontask run --git URL --git-path DIR` "
        "reads (as --against PATH of plan): read DIR in it as run reads a revision (its links "
        "may lead to any file of the checkout but .git, not only inside DIR)",
    )


def _add_next(commands: Any) -> None:
    next_cmd = commands.add_parser(
        "next",
        help="show the next fire times of a task",
        description="Print the next N fire times strictly after --from (default: now), in the "
        "task's time zone as RFC 3339 timestamps, and the schedule in words. PATH-or-KEY is a "
        "file or folder of CronTasks, or, when no such path exists, the NAMESPACE/NAME of a "
        "task that a running crontask (--server) schedules.",
    )
    next_cmd.add_argument(
        "path",
        metavar="PATH-or-KEY",
        help="a file or folder of CronTasks, or NAMESPACE/NAME of a task of --server",
    )
    next_cmd.add_argument(
        "--server",
        metavar="URL",
        type=server_url,
        help=f"the running crontask a KEY is read from (default: ${SERVER_ENV}; a KEY needs "
        f"one or the other); ${TOKEN_ENV} is sent as a bearer token",
    )
    next_cmd.add_argument("--task", metavar="NAME", help="NAME or NAMESPACE/NAME, if PATH has many")
    next_cmd.add_argument(
        "-n", type=bounded_int(1, 1000), default=5, metavar="N", help="how many (default: 5)"
    )
    next_cmd.add_argument(
        "--from",
        dest="start",
        type=timestamp,
        metavar="RFC3339",
        help="e.g. 2027-03-28T00:00:00+01:00",
    )
    next_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    add_source_bounds_args(next_cmd)
    next_cmd.set_defaults(handler=run_next)


def _add_schemas(commands: Any) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of a CronTask",
        description="Print the JSON Schema of one CronTask document (for editors and CI), "
        "generated from the model crontask validates with.",
    )
    schema.set_defaults(handler=run_schema)

    crd = commands.add_parser(
        "crd",
        help="print the CustomResourceDefinition",
        description="Print the CronTask CustomResourceDefinition (crontasks.crontask.dev) as "
        "YAML, generated from the same model as the files: `crontask crd | kubectl apply -f -`. "
        "deploy/crd.yaml is the committed copy.",
    )
    crd.set_defaults(handler=run_crd)


def run_validate(args: argparse.Namespace) -> int:
    # A missing path is said before the definitions' stack loads (0.2-0.3 s), as their own
    # first check would (``definitions.run_validate`` makes it again, and passes).
    existing_paths(args.paths)
    from reconciler.cli import definitions

    return definitions.run_validate(args)


def run_plan(args: argparse.Namespace) -> int:
    from reconciler.cli import definitions

    return definitions.run_plan(args)


def run_next(args: argparse.Namespace) -> int:
    # A path that exists wins over a key of the same spelling (a folder `ops/backup`).
    is_key = _is_key(args.path) and absent(Path(args.path)) is not None
    server = (args.server or configured_server()) if is_key else None
    if is_key and server is None:
        # Said here, before the definitions' stack loads: a usage error, as for a missing path.
        print(
            f"crontask: {NO_SUCH_PATH}: {printable(args.path)}; to read the task {args.path} "
            f"from a running crontask, give --server URL or set ${SERVER_ENV}",
            file=sys.stderr,
        )
        return 2
    if server is None:
        existing_paths([args.path])  # before the definitions' stack, as for validate
    from reconciler.cli import definitions

    return definitions.run_next(args, server)


def _is_key(text: str) -> bool:
    try:
        task_key(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def run_schema(args: argparse.Namespace) -> int:
    from reconciler.cli import definitions

    return definitions.run_schema(args)


def run_crd(args: argparse.Namespace) -> int:
    from reconciler.cli import definitions

    return definitions.run_crd(args)
