"""The usage log says which requests count against a daily quota: the work a person got.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "usage_log",
        sa.Column("charged", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # Until now a quota counted the answered requests, and only those.
    op.execute(sa.text("UPDATE usage_log SET charged = ok"))


def downgrade() -> None:
    with op.batch_alter_table("usage_log") as batch:
        batch.drop_column("charged")
