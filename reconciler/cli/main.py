"""The ``crontask`` command: argument parsing and dispatch to one function per command.

Output that cannot be written (a full disk, stdout closed with ``>&-`` or opened read-only)
is one line on stderr, ``crontask: cannot write output: ...``, and exit status
:data:`OUTPUT_FAILED`, whichever command wrote it, ``--help`` and ``--version`` too (stdout is
guarded before parsing), and also when stderr cannot take that line; a reader that went away
(``crontask runs | head``) ends the command quietly with status 0. Only the failures of stdout
itself are said so: its descriptor is wrapped (``_Stdout``), so an ``OSError`` of anything else
is never taken for one. The guard keeps stdout's buffering (``python -u``, ``PYTHONUNBUFFERED``:
written through) and encoding, and writes a character that encoding cannot hold as its escape
(``\\u2713``), as Python's stderr does.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from typing import Final, TextIO

from reconciler import __version__
from reconciler.cli.main_helpers import UsageError

OUTPUT_FAILED: Final = 74  # EX_IOERR (sysexits.h): the output could not be written

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
    # Guarded before parsing: ``--help`` and ``--version`` print while argparse parses.
    _guard_stdout()
    try:
        code = _run(argv)
    except OutputError as err:
        _say(f"crontask: cannot write output: {err}")
        code = OUTPUT_FAILED
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `crontask runs | head`
        sys.stderr.close()
        code = 0
    raise SystemExit(code)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        _flush_stdout()  # what --help or --version printed fails here, not in Python's exit
        raise
    try:
        code: int = args.handler(args)
    except UsageError as err:
        # Options that cannot work together, found once parsed: said as argparse says a bad
        # option (the command's usage line, one line, exit status 2).
        args.command_parser.error(str(err))
    _flush_stdout()  # what is still buffered fails here, not in Python's exit
    return code


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _say(line: str) -> None:
    """``line`` on stderr, if stderr can take it (a full disk there too): the exit status
    says it all the same, and Python's exit has nothing left to fail on."""
    stderr = sys.stderr
    if stderr is None:
        return
    try:
        print(line, file=stderr, flush=True)
    except OSError:
        sys.stderr = None  # what it kept is not flushed at exit


class OutputError(Exception):
    """Writing to stdout failed; the message says why (``strerror``). Not an ``OSError``: no
    handler of a file's or a connection's errors may take it for one of theirs."""


class _Stdout(io.FileIO):
    """The descriptor of stdout, its failures raised as :class:`OutputError`, once: what is
    written after that is dropped, so that Python's flush at exit says nothing more. A broken
    pipe stays a ``BrokenPipeError`` (``main`` ends quietly on it)."""

    failed = False

    def write(self, data: object, /) -> int:
        if self.failed:
            return len(memoryview(data))  # type: ignore[arg-type]
        try:
            return super().write(data)  # type: ignore[arg-type]
        except OSError as err:
            self.failed = True
            if isinstance(err, BrokenPipeError):
                raise
            raise OutputError(err.strerror or str(err)) from None


class _Closed(io.RawIOBase):
    """Stdout when crontask was started without one (``>&-``): Python leaves ``sys.stdout``
    None, where ``print`` drops everything and ``sys.stdout.write`` raises AttributeError."""

    failed = False

    def writable(self) -> bool:
        return True

    def write(self, data: object, /) -> int:
        if self.failed:
            return len(memoryview(data))  # type: ignore[arg-type]
        self.failed = True
        raise OutputError("stdout is closed")


def _guard_stdout() -> None:
    """Put ``sys.stdout`` on :class:`_Stdout` (or :class:`_Closed`), with the same encoding and
    buffering. A stdout that is not the process's own (a test's capture) is left alone."""
    given: TextIO | None = sys.stdout
    if given is None:
        raw: io.RawIOBase = _Closed()
        encoding, errors, lines, through = "utf-8", "backslashreplace", False, False
    elif given is sys.__stdout__ and isinstance(given, io.TextIOWrapper):
        given.flush()
        raw = _Stdout(given.fileno(), "w", closefd=False)
        # A character the encoding cannot hold is written as its escape, as on stderr: a
        # server's word (``✓`` under PYTHONIOENCODING=ascii) made a traceback and exit 1, for
        # ``trigger`` after the run was taken too. surrogateescape (a C locale) would write a
        # lone surrogate's byte raw.
        encoding, errors = given.encoding, "backslashreplace"
        lines, through = given.line_buffering, given.write_through  # as -u or a terminal has it
    else:
        return
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=encoding,
        errors=errors,
        line_buffering=lines,
        write_through=through,
    )
