"""A ``--db`` URL whose options SQLAlchemy or the driver refuses (a port that is no number, an
option psycopg does not know, one the SQLite driver does not take, a value of the wrong type)
is one line, ``crontask: --db: ...``, and exit status 2, never a traceback, and it never shows
the URL's password. Real subprocesses, as the user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.hostile import Finished, crontask
from tests.store.conftest import pg_admin, pg_url

__all__ = ["pg_admin", "pg_url"]  # the fixtures, shared with the store suite

PASSWORD = "DbPassw0rdSecret"  # noqa: S105 - a test value
PG = f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/x"  # nothing listens on port 1


def assert_usage_error(done: Finished, says: str) -> None:
    assert "Traceback" not in done.err, done.err
    assert done.code == 2, done.err
    assert done.err == f"crontask: --db: {says}\n"
    assert PASSWORD not in done.err + done.out


def run(tmp_path: Path, url: str) -> Finished:
    (tmp_path / "tasks").mkdir(exist_ok=True)
    state = ["--state-dir", str(tmp_path / "state"), "--listen", "off"]
    return crontask("run", str(tmp_path / "tasks"), *state, timeout=60, env={"CRONTASK_DB": url})


REFUSED = [
    (f"{PG}?port=x", "Received non-integer port arguments: ('x',)"),
    (f"{PG}?port=1&port=2", "number of hosts and ports don't match"),
    (f"{PG}?bogus_opt=1", 'invalid connection option "bogus_opt"'),
]


@pytest.mark.parametrize(("url", "says"), REFUSED)
def test_runs_refuses_the_options_in_one_line(url: str, says: str, tmp_path: Path) -> None:
    done = crontask("runs", timeout=60, env={"CRONTASK_DB": url})
    assert_usage_error(done, says)


@pytest.mark.parametrize(("url", "says"), REFUSED)
def test_run_refuses_the_options_in_one_line(url: str, says: str, tmp_path: Path) -> None:
    assert_usage_error(run(tmp_path, url), says)


@pytest.mark.parametrize("option", ["bogus_opt=1", "mode=ro"])
def test_an_option_the_sqlite_driver_would_drop_is_refused(option: str, tmp_path: Path) -> None:
    """SQLAlchemy dropped it with a two-line warning, and crontask ran without it."""
    name = option.partition("=")[0]
    done = run(tmp_path, f"sqlite:///{tmp_path}/runs.db?{option}")
    assert_usage_error(
        done,
        f"Query string argument(s) '{name}' are not accepted by the pysqlite driver; SQLite "
        "URI arguments require that 'uri=true' also be present in the URL.",
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("row_factory=x", "'str' object is not callable"),
        ("cursor_factory=x", "'str' object is not callable"),
        ("prepare_threshold=x", "'>=' not supported between instances of 'int' and 'str'"),
    ],
)
def test_an_option_of_the_wrong_type_is_refused_as_the_driver_trips_over_it(
    option: str, says: str, pg_url: str, tmp_path: Path
) -> None:
    url = f"{pg_url}&{option}"  # pg_url has a query (its schema's search_path)
    wording = f"an option of the URL is not of a type the driver takes ({says})"
    assert_usage_error(crontask("runs", timeout=60, env={"CRONTASK_DB": url}), wording)
    assert_usage_error(run(tmp_path, url), wording)
