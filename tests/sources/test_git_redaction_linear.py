"""The redaction of git's messages takes time linear in the text: a remote writes them (an ssh
server's stderr reaches git's unchanged), and the pattern that found a URL's userinfo searched
on from each "http://" of a run of them, to the run's end: one 64 KiB line of "http://" took
seconds, the GIL held (the API and the scheduler stood still at every failed sync). git's own
lines are kept up to a bound, and cut only once redacted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.gitsaid import CUT, MAX_OWN_LINE, Redactor
from tests.sources.test_git_damaged_by_git_alone import failing_git

# Each a line of 1 MiB, and what the redaction makes of it. Run in a child with a deadline:
# the redaction runs in C with the GIL held, where no timeout of pytest's can interrupt it.
# Linear, each takes well under a second; searched on from each start (quadratic), hours.
_MIB = 1024 * 1024
_RUNS = {
    "http://": "http://",
    "https://u": "https://u",
    "HTTP://x:y": "HTTP://x:y",
    "https://u@": "https://***@",
    "http://a/b@": "http://***@",
}
_CHILD = """
import json, sys
from reconciler.sources.gitsaid import Redactor
redact, unit, tail = Redactor(), sys.argv[1], " https://user:pw@host/x.git"
text = "fatal: " + unit * ({mib} // len(unit)) + tail
print(json.dumps(redact(text)))
"""


@pytest.mark.parametrize("unit", list(_RUNS))
def test_a_long_run_of_urls_is_redacted_in_linear_time(unit: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD.format(mib=_MIB), unit],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,  # far above a linear redaction's time, far below a quadratic one's
    )
    shown = json.loads(child.stdout)
    count = _MIB // len(unit)
    assert shown == "fatal: " + _RUNS[unit] * count + " https://***@host/x.git"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:p@h/x and http://v@h", "https://***@h/x and http://***@h"),
        ("HTTPS://U:P@h/", "HTTPS://***@h/"),
        ("https://tok3n/S3CRET@h/x", "https://***@h/x"),
        ("https://a@b@c/d@e", "https://***@c/d@e"),
        ("https://h/x.git: see a@b", "https://h/x.git: see a@b"),
        ("http://http://u@h", "http://***@h"),
        ("http:// u@h", "http:// u@h"),
        ("https://@h", "https://***@h"),
        ("ssh://git:pw@h/x", "ssh://git:pw@h/x"),  # not http(s): the secrets list hides pw
        ("no url@all", "no url@all"),
    ],
)
def test_userinfo_is_redacted_as_before(text: str, shown: str) -> None:
    assert Redactor()(text) == shown


def test_a_long_line_is_cut_and_a_userinfo_past_the_summary_is_redacted(tmp_path: Path) -> None:
    """One 64 KiB fatal line (an ssh server's): ``said`` keeps MAX_OWN_LINE of it; and a
    userinfo that the 400-character message cuts before its "@" is still hidden."""
    password = "p" * 600
    long_line = "fatal: " + "http://" * 9300
    err = failing_git(
        tmp_path,
        f"fatal: unable to access 'https://user:{password}@host/x.git/'\n{long_line}\n",
    )
    assert password[:20] not in str(err), str(err)
    assert err.said[0] == "fatal: unable to access 'https://***@host/x.git/'"
    assert len(err.said[1]) == MAX_OWN_LINE
    assert err.said[1] == long_line[: MAX_OWN_LINE - len(CUT)] + CUT
