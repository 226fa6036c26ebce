"""0004: ``runs.details``, what an action knows of an attempt beyond its output.

JSON text, NULL for attempts that have nothing more to say (commands, HTTP calls). A ``job``
task's attempt keeps its Kubernetes Job there (namespace, name, uid, pod, node, each
container's exit code and reason, start and completion times, why the log could not be read):
written as soon as the Job's name is known, so that a crontask that restarts while the Job runs
finds it and adopts the run instead of marking it interrupted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("details", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("details")
