"""``crontask next --from`` with a fraction past the microsecond: RFC 3339 sets no limit on its
digits, and Go's RFC3339Nano and ``date --rfc-3339=ns`` write 9. It is cut to the microsecond,
never rounded into the next second (whose slot would then be left out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli.main import main

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: tick, namespace: ops}
spec:
  schedule: "* * * * * *"
  command: {args: ["true"]}
"""


def _next(path: Path, start: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit) as exited:
        main(["next", str(path), "-n", "2", "--from", start, "--json"])
    assert exited.value.code == 0, capsys.readouterr().err
    (item,) = json.loads(capsys.readouterr().out)["items"]
    return list(item["next"])


@pytest.mark.parametrize(
    ("start", "first"),
    [
        # Go's RFC3339Nano; `date --rfc-3339=ns` writes the same digits.
        ("2027-03-28T02:30:00.999999999+01:00", "2027-03-28T01:30:01+00:00"),
        ("2027-03-28T02:30:00.9999999Z", "2027-03-28T02:30:01+00:00"),  # .NET's "o": 7 digits
        ("2027-03-28T02:30:00.000000001Z", "2027-03-28T02:30:01+00:00"),
        ("2027-03-28T02:30:00.000000000Z", "2027-03-28T02:30:01+00:00"),
        ("2027-03-28T02:30:00.123456789012345678z", "2027-03-28T02:30:01+00:00"),
        ("2027-03-28T02:30:00.999999+01:00", "2027-03-28T01:30:01+00:00"),  # as before
    ],
)
def test_a_fraction_past_the_microsecond_is_cut_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, first: str
) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(TASK)
    times = _next(file, start, capsys)
    assert times[0] == first
    assert len(times) == 2


def test_the_slot_at_the_cut_second_is_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rounded, .9999999995 would be the next whole second, and its slot (strictly after the
    time given) would be left out of the list."""
    file = tmp_path / "t.yaml"
    file.write_text(TASK)
    assert _next(file, "2027-01-01T00:00:59.9999999995Z", capsys) == [
        "2027-01-01T00:01:00+00:00",
        "2027-01-01T00:01:01+00:00",
    ]


@pytest.mark.parametrize(
    "start",
    [
        "2027-03-28T02:30:00.+01:00",  # a point and no digit
        "2027-03-28T02:30:00.999999999",  # no offset
        "2027-03-28T02:30:00,999999999Z",  # a comma: ISO 8601's, not RFC 3339's
        "2027-03-28T02:30:00." + "9" * 60 + "Z",  # past the length any time has
    ],
)
def test_what_is_no_rfc_3339_time_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str
) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(TASK)
    with pytest.raises(SystemExit) as exited:
        main(["next", str(file), "--from", start])
    assert exited.value.code == 2
    assert "expected an RFC 3339 time with an offset" in capsys.readouterr().err
