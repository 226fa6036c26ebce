"""The ``crontask`` command: argument parsing and dispatch to one function per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reconciler import __version__

DESCRIPTION = """\
crontask keeps a scheduler in step with CronTask resources declared in YAML files
(and, later, git repositories and Kubernetes). It runs each task at its slots, records
every run, and reports what it did.
"""

EPILOG = """\
examples:
  crontask validate examples/tasks          check definitions, print file:line:col errors
  crontask next examples/tasks/backup.yaml  the next fire times and the schedule in words
  crontask plan new/ --against old/         what would change, field by field
  crontask run examples/tasks               run the reconciler on a folder of YAML
  crontask runs                             the latest runs from the run store
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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `crontask runs | head`
        sys.stderr.close()
        code = 0
    raise SystemExit(code)
