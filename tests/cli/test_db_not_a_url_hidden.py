"""A ``--db`` that is no URL but holds an ``@`` (``user:password@host/db`` typed without its
scheme) is refused in one line that does not show it: ``user:`` reads as
a scheme, and the URL redaction showed such a text whole, password and all, on stderr (which
logs keep). The "crontask starting" line never shows it either."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.urls import redact_db_url
from tests.cli.hostile import crontask

PASSWORD = "DbPassw0rdSecret"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    "db",
    [
        f"ops:{PASSWORD}@db/crontask",
        f"ops:{PASSWORD}@db/x?target=https://y",
        f"host=db user=ops password={PASSWORD} dbname=crontask",  # libpq's form
        f"ops:{PASSWORD}",
        PASSWORD,  # pasted in the wrong place
    ],
)
def test_a_db_that_is_no_url_is_refused_without_showing_it(tmp_path: Path, db: str) -> None:
    (tmp_path / "tasks").mkdir()
    state = ["--state-dir", str(tmp_path / "state"), "--listen", "off"]
    done = crontask("run", str(tmp_path / "tasks"), *state, "--db", db, timeout=60)
    assert done.code == 2, done.err
    assert "Traceback" not in done.err, done.err
    assert done.err.startswith("crontask: run store ***: not a run store URL"), done.err
    assert "sqlite:////" not in done.err  # no path: no hint of one
    assert len(done.err.splitlines()) == 1, done.err
    assert PASSWORD not in done.err + done.out


@pytest.mark.parametrize(
    ("db", "shown"),
    [
        (
            f"postgresql+psycopg://ops:{PASSWORD}@db/crontask",
            "postgresql+psycopg://ops@db/crontask",
        ),
        ("sqlite:////var/lib/crontask/runs.db", "sqlite:////var/lib/crontask/runs.db"),
        (f"ops:{PASSWORD}@db/crontask", "***"),
        (f"ops:{PASSWORD}@db/x?opt=http://a", "***"),  # a scheme is at the start, or none
        ("runs.db", "runs.db"),  # a path, no URL: shown, and said how to write one
        ("/var/lib/crontask/runs.db", "/var/lib/crontask/runs.db"),
        (PASSWORD, "***"),  # no / nor .: no path
        (f"host=db password={PASSWORD}", "***"),
    ],
)
def test_how_a_db_url_is_shown(db: str, shown: str) -> None:
    assert redact_db_url(db) == shown


@pytest.mark.parametrize("db", ["a.db", "runs.db", "/tmp/x/runs.db"])
def test_a_path_is_shown_as_given_and_said_how_to_write(tmp_path: Path, db: str) -> None:
    # The message is whole: the text given was shown as *** wherever its letters appeared.
    (tmp_path / "tasks").mkdir()
    state = ["--state-dir", str(tmp_path / "state"), "--listen", "off"]
    done = crontask("run", str(tmp_path / "tasks"), *state, "--db", db, timeout=60)
    assert done.code == 2, done.err
    assert done.err == (
        f"crontask: run store {db}: not a run store URL: Could not parse SQLAlchemy URL from "
        "given URL string; a SQLite file is sqlite:////absolute/path.db\n"
    )


@pytest.mark.parametrize("db", ["a", "run"])
def test_a_short_text_hidden_leaves_the_message_whole(tmp_path: Path, db: str) -> None:
    # Hidden, it was hidden wherever its letters were: "not *** run store URL".
    (tmp_path / "tasks").mkdir()
    state = ["--state-dir", str(tmp_path / "state"), "--listen", "off"]
    done = crontask("run", str(tmp_path / "tasks"), *state, "--db", db, timeout=60)
    assert done.err == (
        "crontask: run store ***: not a run store URL: Could not parse SQLAlchemy URL from "
        "given URL string\n"
    )
