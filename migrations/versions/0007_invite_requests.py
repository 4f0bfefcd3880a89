"""Invite codes remember the message that asked for them, so handling it twice mints one code.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invite_codes", sa.Column("requested_in", sa.String(64), nullable=True))
    op.create_index(
        op.f("ix_invite_codes_requested_in"), "invite_codes", ["requested_in"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invite_codes_requested_in"), table_name="invite_codes")
    with op.batch_alter_table("invite_codes") as batch:
        batch.drop_column("requested_in")
