"""A writer's statements compiled as its store opens (``SqlRunStore.open(writer=True)``).

Compiling the claim and save statements took a millisecond of the first burst of runs, in the
store's thread, which gets the GIL only when the event loop lets go of it: the first process
of the first burst started that much later. So they are compiled at open, for one row and for
several, in a write transaction rolled back.

A store that takes no write at that moment (a read-only PostgreSQL after a failover, another
session's LOCK TABLE or VACUUM FULL, another process's SQLite write lock) does not stop the
start: crontask starts all the same (its runs start and their records wait, as in any outage),
one line says so, and the first write compiles what was not. A lock another session holds is
waited for as a run's write waits (``WRITE_LOCK_WAIT``), never longer; on PostgreSQL through
``lock_timeout`` set for this transaction only, so an operator's own setting is not replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import exc
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Executable

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store.base import StoreUnavailable
from reconciler.store.sql_errors import translated_errors
from reconciler.store.sql_rows import record_to_row
from reconciler.store.sql_schema import (
    BEGIN_OPTION,
    IDLE_TIMER,
    LOCK_WAIT,
    WAIT_OPTION,
    WRITE_LOCK_WAIT,
    wait_ms,
)

log = logging.getLogger("crontask.store")


def warm_up(engine: Engine, statements: Sequence[Executable]) -> None:
    """Compile ``statements`` (the claim's and the save's), unless the store takes no write
    now: then one warning line, no traceback (the outage itself is told by readiness and by
    the records that wait)."""
    try:
        _compile(engine, statements)
    except (StoreUnavailable, exc.DBAPIError) as e:
        log.warning(
            "run store writes not compiled at start: the store takes no write now"
            " (the first write compiles them)",
            extra={"fields": {"error": str(e).splitlines()[0][:300]}},
        )


def _compile(engine: Engine, statements: Sequence[Executable]) -> None:
    slot = datetime(1970, 1, 1, tzinfo=UTC)
    rows = [
        record_to_row(
            RunRecord(
                id=f"compile.{n}",
                task="compile",
                scheduled_at=slot,
                trigger=Trigger.SCHEDULE,
                status=RunStatus.RUNNING,
            )
        )
        for n in range(2)
    ]
    sqlite = engine.dialect.name == "sqlite"
    ms = wait_ms(WRITE_LOCK_WAIT)
    with translated_errors(), engine.connect() as conn:
        if sqlite:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE", WAIT_OPTION: ms})
        tx = conn.begin()
        if not sqlite:
            # The run path's statements, with the run path's wait: compiled, and bounded.
            conn.execute(LOCK_WAIT, {"ms": str(ms)})
            conn.execute(IDLE_TIMER)
        for statement in statements:
            conn.execute(statement, rows[:1]).close()
            conn.execute(statement, rows).close()
        tx.rollback()
