"""A ``--db`` that is no URL (``user:password@host/db`` typed without its scheme, or a
password pasted in its place) is refused in one line that does not show it: ``user:`` reads as
a scheme, and the URL redaction showed such a text whole, password and all, on stderr (which
logs keep). The "crontask starting" line never shows it either."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.urls import redact_db_url
from tests.cli.hostile import crontask

PASSWORD = "DbPassw0rdSecret"  # noqa: S105 - a test value


@pytest.mark.parametrize("db", [f"ops:{PASSWORD}@db/crontask", PASSWORD])
def test_a_db_that_is_no_url_is_refused_without_showing_it(tmp_path: Path, db: str) -> None:
    (tmp_path / "tasks").mkdir()
    state = ["--state-dir", str(tmp_path / "state"), "--listen", "off"]
    done = crontask("run", str(tmp_path / "tasks"), *state, "--db", db, timeout=60)
    assert done.code == 2, done.err
    assert "Traceback" not in done.err, done.err
    assert done.err.startswith("crontask: run store ***: not a run store URL"), done.err
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
    ],
)
def test_how_a_db_url_is_shown(db: str, shown: str) -> None:
    assert redact_db_url(db) == shown
