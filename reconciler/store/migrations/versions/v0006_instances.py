"""0006: ``instances``, one row per ``crontask run`` without ``--ha``, renewed every few
seconds (see ``controller.heartbeat``). A crontask whose row has not been renewed for its
lease is dead as far as those sharing the store can tell: its runs still recorded ``running``
are marked ``interrupted`` by whichever of them sees it first, where before they stayed
``running`` for ever when the dead one was on another machine or in another pod.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column(
            "id",
            sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("renewed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )


def downgrade() -> None:
    op.drop_table("instances")
