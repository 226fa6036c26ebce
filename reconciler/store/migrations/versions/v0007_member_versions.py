"""0007: ``members.version``, the crontask version each replica runs (``reconciler.__version__``),
so that an operator can tell the replicas of a rolling update apart (``crontask members``, the
API, the status page).

Nullable, with no default: the previous release keeps renewing its row on this schema during
the rolling update (its INSERT names the columns it knows), and a row without a version is a
member of unknown version.

So a crontask of revision 0006 may run on this schema as it is: the revision creates
``crontask_schema_readers`` (see ``reconciler.store.migrations``) with ``oldest`` 0006, and a
0006 crontask that starts during a rolling update, or after a rollback, runs on it. One of an
earlier revision (0.2.0 and before) does not know the table, and refuses the schema at start,
saying a newer crontask wrote it. The downgrade drops the table with the column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


# Written out, not imported: a revision is never edited once released, whatever the code does.
READERS_TABLE = "crontask_schema_readers"
OLDEST_READER = "0006"


def upgrade() -> None:
    op.add_column("members", sa.Column("version", sa.String(64), nullable=True))
    readers = op.create_table(READERS_TABLE, sa.Column("oldest", sa.String(4), nullable=False))
    op.bulk_insert(readers, [{"oldest": OLDEST_READER}])


def downgrade() -> None:
    op.drop_table(READERS_TABLE)
    with op.batch_alter_table("members") as batch:
        batch.drop_column("version")
