"""0003: what replicas share besides the run history.

- ``members``: one row per live replica (``crontask run --ha`` without Kubernetes), renewed
  every few seconds and judged by the database's clock (``now()``), so no two replicas' clocks
  are ever compared.
- ``api_tasks``: tasks created through the API, so that every replica sharing the store sees
  the same ones; ``version`` (a digest of the text) is what a conditional PUT (``If-Match``)
  checks.
- ``member_views``: the spec hash of each task as each replica reads it, so that replicas that
  read different desired sets (a volume mounted on one only, a git fetch behind) can say on
  which tasks they differ.
- ``runs.stop_requested``: the reason another replica asked the run's owner to stop it (the
  Replace policy across a handover); the owner polls for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", _key(255), nullable=False),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("revision", sa.String(64), nullable=True),
        sa.Column("owned", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
    )
    op.create_table(
        "member_views",
        sa.Column("member", _key(255), nullable=False),
        sa.Column("key", _key(255), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("member", "key", name="pk_member_views"),
    )
    op.create_table(
        "api_tasks",
        sa.Column("key", _key(255), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_api_tasks"),
    )
    op.add_column("runs", sa.Column("stop_requested", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("stop_requested")
    op.drop_table("api_tasks")
    op.drop_table("member_views")
    op.drop_table("members")
