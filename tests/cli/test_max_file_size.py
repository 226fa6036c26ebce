"""--max-file-size on run, validate, plan and next: sizes as people write them, and a bound."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.cli.main_helpers import parse_size, size_arg


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("512KiB", 512 * 1024),
        ("2MiB", 2 * 1024 * 1024),
        ("2mib", 2 * 1024 * 1024),
        ("1Gi", 1024**3),
        ("100kB", 100_000),
        ("1 MB", 1_000_000),
        ("4096B", 4096),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1.5MiB", "-1", "1x", "MiB", "1M", "1k", "9" * 40])
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["1023", "2GiB"])
def test_the_limit_itself_is_bounded(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
        size_arg(text)


def crontask(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 1


TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@daily", command: {args: ["true"]}}\n'
)


@pytest.mark.parametrize("command", ["validate", "plan", "next"])
def test_every_reading_command_takes_the_limit(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(TASK + "#" * 2000 + "\n")
    extra = ["--against", str(tmp_path)] if command == "plan" else []
    assert crontask(command, str(path), *extra) == 0
    capsys.readouterr()
    assert crontask(command, str(path), *extra, "--max-file-size", "1KiB") == 1
    out = capsys.readouterr()
    expected = f"{path}:1:1: file is {path.stat().st_size} bytes, over the limit of 1 KiB"
    assert expected in out.out + out.err


def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert crontask("validate", ".", "--max-file-size", "lots") == 2
    assert "invalid size 'lots'" in capsys.readouterr().err
