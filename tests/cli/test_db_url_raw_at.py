"""A ``--db`` whose password holds a raw ``@`` (or ``/``, ``#``, ``?`` before one) is refused
at once, exit status 2, naming neither the password nor any part of it: SQLAlchemy ends the
password at its first ``@``, so the rest of it was taken for the host, shown in the driver's
error ("failed to resolve host 'RETPW@127.0.0.1'") and looked up in DNS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.store_errors import _hidden, _raw_at


def crontask(tmp_path: Path, db: str, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tasks").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=tmp_path,
        env={**os.environ, "CRONTASK_DB": db},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://crontask:S3C@RETPW@127.0.0.1:9/rv", "RETPW"),
        ("postgresql+psycopg://crontask:p%40ss@w0rd/x@127.0.0.1:9/rv", "w0rd"),
        ("postgresql+psycopg://crontask:Pw1@ss#wrd9@127.0.0.1:9/rv", "wrd9"),
        ("postgresql+psycopg://crontask:Pw1@ss?x@127.0.0.1:9/rv", "x@127"),
    ],
)
@pytest.mark.parametrize("argv", [("runs",), ("run", "tasks", "--listen", "off")])
def test_a_raw_at_in_the_password_is_refused(
    tmp_path: Path, url: str, secret: str, argv: tuple[str, ...]
) -> None:
    done = crontask(tmp_path, url, *argv)
    assert done.returncode == 2, done.stderr
    assert "percent-encoded (%40, %23, %3F, %2F)" in done.stderr
    assert secret not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://crontask:p%40ss@db:5432/x",
        "postgresql://crontask@db/x?options=a@b",
        "sqlite:////var/lib/a@b/c@d/runs.db",
        "postgresql://db/x",
        "postgresql+psycopg://admin@server:pw@db.example.com/app",  # a user with an '@'
        "postgresql+psycopg://u:pw@host/my@db",  # a database with one
        "postgresql+psycopg://crontask@/db?host=/var/run/postgresql",
        "postgresql://u:pw@host/db?options=a@b",
    ],
)
def test_urls_sqlalchemy_reads_as_meant_pass(url: str) -> None:
    assert not _raw_at(url)


@pytest.mark.parametrize(
    ("url", "message", "shown"),
    [
        # A short password is hidden where it stands alone, not inside every word.
        (
            "postgresql+psycopg://u:p@127.0.0.1:1/db",
            'connection to "127.0.0.1", port 1 failed: password p refused',
            'connection to "127.0.0.1", port 1 failed: password *** refused',
        ),
        # In a URL the message quotes; not inside the message's own words (a password that is
        # a common word would garble them, and tell it).
        (
            "postgresql+psycopg://u:s3cret-pw@db/x",
            "auth failed at postgresql://u:s3cret-pw@db:5432/x",
            "auth failed at postgresql://u:***@db:5432/x",
        ),
        (
            "postgresql+psycopg://u:p@db/x",
            "postgresql+psycopg://u:p@db/x",
            "postgresql+psycopg://u@db/x",  # the URL whole: shown without it,
        ),
    ],
)
def test_the_password_is_hidden_and_the_rest_is_readable(
    url: str, message: str, shown: str
) -> None:
    assert _hidden(message, url) == shown
