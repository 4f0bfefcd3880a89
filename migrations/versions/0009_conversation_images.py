"""A person's turn in a conversation may carry a photo: kept as Telegram's file_id, not bytes.

The bot reads the photo again through the Bot API when a later turn shows it to a
model that sees; the row (and so the reference) goes with the turn's retention and
with /forget, like the words beside it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "conversation_messages", sa.Column("image_file_id", sa.String(255), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("conversation_messages") as batch:
        batch.drop_column("image_file_id")
