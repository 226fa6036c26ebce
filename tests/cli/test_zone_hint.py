"""A time zone written in another case, or with a space for its underscore, is named in the
error, as a value of a fixed set is: on a case-sensitive file system `utc` or `europe/berlin`
is no zone, and "unknown time zone" alone left the reader to guess why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_inspect import crontask, doc


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("utc", "UTC"),
        ("europe/berlin", "Europe/Berlin"),
        ("'America/New York'", "America/New_York"),
        ("'Europe/Berlin '", "Europe/Berlin"),
    ],
)
def test_a_zone_in_another_case_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str, meant: str
) -> None:
    (tmp_path / "t.yaml").write_text(doc("a", "@daily", zone=written))
    assert crontask("validate", str(tmp_path)) == 1
    shown = written.strip("'")
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{tmp_path / 't.yaml'}:7:3: spec.timeZone: unknown time zone {shown!r} "
        f"(did you mean {meant!r}?)"
    )


@pytest.mark.parametrize("written", ["Mars/Olympus", "posixrules", "POSIXRULES", "right/utc"])
def test_no_zone_is_guessed_where_none_is_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str
) -> None:
    (tmp_path / "t.yaml").write_text(doc("a", "@daily", zone=written))
    assert crontask("validate", str(tmp_path)) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{tmp_path / 't.yaml'}:7:3: spec.timeZone: unknown time zone {written!r}"
    )
