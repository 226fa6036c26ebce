"""The ``crontask`` command: argument parsing and dispatch to one function per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reconciler import __version__
from reconciler.cli.main_helpers import UsageError

DESCRIPTION = """\
crontask keeps a scheduler in step with CronTask resources declared in YAML files, git
repositories and Kubernetes. It runs each task at its slots, records every run, and reports
what it did (REST API, metrics, CR status).
"""

EPILOG = """\
examples:
  crontask validate examples/tasks                    check definitions: file:line:col errors
  crontask next examples/tasks/maintenance.yaml -n 3  the next fire times, and in words
  crontask plan new/ --against old/                   what would change, field by field
  crontask run examples/tasks                         the reconciler on a folder of YAML
  crontask run --git https://git.example/ops/tasks.git --git-path crontasks
  crontask run --kubernetes                           CronTask custom resources of a cluster
  crontask runs                                       the latest runs from the run store
  crontask trigger ops/nightly-archive                a manual run on a running instance
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crontask",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"crontask {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from reconciler.cli import history, inspect, remote, serve

    serve.add_parser(commands)
    inspect.add_parsers(commands)
    history.add_parser(commands)
    remote.add_parsers(commands)
    for command in commands.choices.values():
        # A usage error found after parsing is said by its command's parser (see main).
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as err:
        # Options that cannot work together, found once parsed: said as argparse says a bad
        # option (the command's usage line, one line, exit status 2).
        args.command_parser.error(str(err))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `crontask runs | head`
        sys.stderr.close()
        code = 0
    raise SystemExit(code)
