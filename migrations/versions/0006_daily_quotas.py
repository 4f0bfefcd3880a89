"""Daily quotas: a group's own quota, and an index to count one person's requests today.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("chats", sa.Column("daily_quota", sa.Integer(), nullable=True))
    # (user_id, created_at) answers "this person's rows since midnight" from the index and
    # also every lookup by person alone, so it replaces the single-column index.
    op.create_index("ix_usage_log_user_id_created_at", "usage_log", ["user_id", "created_at"])
    op.drop_index(op.f("ix_usage_log_user_id"), table_name="usage_log")


def downgrade() -> None:
    op.create_index(op.f("ix_usage_log_user_id"), "usage_log", ["user_id"])
    op.drop_index("ix_usage_log_user_id_created_at", table_name="usage_log")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("daily_quota")
