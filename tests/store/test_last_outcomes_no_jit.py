"""``last_outcomes`` on PostgreSQL reads without JIT compilation, for its own transaction only.

Its lookups at the ends of index ranges gain nothing from JIT; but where attempts whose
process died fill the table (a crash loop's store), the planner costs each task's look past
them as a scan of its whole range, over ``jit_above_cost``, and every call paid a compile of
70 ms or more (a reviewer measured 0.9-1.2 s for 49 tasks against 8-25 ms before the look
past them). The setting is the transaction's: the connection's next one has the server's.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from reconciler.store import open_store, sql_summaries

from ._records import rec

pytestmark = pytest.mark.postgres


def test_last_outcomes_turns_jit_off_for_its_transaction_only(pg_url: str) -> None:
    store = open_store(pg_url)
    store.save_many([rec("ops/a", at=0)])
    store.close()
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            with conn.begin():
                conn.execute(sa.text("SET LOCAL jit = on"))  # as the server's default has it
                assert "ops/a" in sql_summaries.last_outcomes(conn, ["ops/a"])
                assert conn.execute(sa.text("SHOW jit")).scalar() == "off"
            with conn.begin():
                server = "SELECT reset_val FROM pg_settings WHERE name = 'jit'"
                default = conn.execute(sa.text(server)).scalar()
                assert conn.execute(sa.text("SHOW jit")).scalar() == default
    finally:
        engine.dispose()
