"""Conversations: their messages, system prompts per user and group, shared group conversations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        _timestamp("started_at"),
        sa.Column("trim_noticed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(op.f("ix_conversations_chat_id"), "conversations", ["chat_id"])
    op.create_index(op.f("ix_conversations_user_id"), "conversations", ["user_id"])
    op.create_table(
        "conversation_messages",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("conversation_id", ROW_ID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    for column in ("conversation_id", "author_id", "telegram_message_id", "created_at"):
        op.create_index(
            op.f(f"ix_conversation_messages_{column}"), "conversation_messages", [column]
        )
    op.add_column("users", sa.Column("system_prompt", sa.Text(), nullable=True))
    op.add_column("chats", sa.Column("system_prompt", sa.Text(), nullable=True))
    op.add_column(
        "chats",
        sa.Column("shared_conversation", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("shared_conversation")
        batch.drop_column("system_prompt")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("system_prompt")
    for column in ("created_at", "telegram_message_id", "author_id", "conversation_id"):
        op.drop_index(
            op.f(f"ix_conversation_messages_{column}"), table_name="conversation_messages"
        )
    op.drop_table("conversation_messages")
    op.drop_index(op.f("ix_conversations_user_id"), table_name="conversations")
    op.drop_index(op.f("ix_conversations_chat_id"), table_name="conversations")
    op.drop_table("conversations")
