"""Initial schema: users, chats, per-task choices, group defaults, usage log, model rules.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Migrations spell out their own column types instead of importing the ORM's,
so this file keeps describing the same schema however the models evolve.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DICT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("telegram_language", sa.String(16), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        _timestamp("first_seen"),
        _timestamp("last_seen"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index(op.f("ix_users_last_seen"), "users", ["last_seen"])
    op.create_table(
        "chats",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("title", sa.String(255), nullable=True),
        _timestamp("first_seen"),
        _timestamp("last_seen"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
    )
    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=True),
        sa.Column("params", JSON_DICT, nullable=False),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "task", name=op.f("pk_user_preferences")),
    )
    op.create_table(
        "chat_defaults",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=True),
        sa.Column("params", JSON_DICT, nullable=False),
        sa.Column("updated_by", sa.BigInteger(), nullable=True),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_defaults_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", "task", name=op.f("pk_chat_defaults")),
    )
    op.create_table(
        "usage_log",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        _timestamp("created_at"),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("input_size", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_log")),
    )
    op.create_index(op.f("ix_usage_log_created_at"), "usage_log", ["created_at"])
    op.create_index(op.f("ix_usage_log_user_id"), "usage_log", ["user_id"])
    op.create_table(
        "model_rules",
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("rule", sa.String(8), nullable=False),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        _timestamp("added_at"),
        sa.CheckConstraint("rule IN ('allow', 'deny')", name=op.f("ck_model_rules_rule_kind")),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_model_rules")),
    )


def downgrade() -> None:
    op.drop_table("model_rules")
    op.drop_index(op.f("ix_usage_log_user_id"), table_name="usage_log")
    op.drop_index(op.f("ix_usage_log_created_at"), table_name="usage_log")
    op.drop_table("usage_log")
    op.drop_table("chat_defaults")
    op.drop_table("user_preferences")
    op.drop_table("chats")
    op.drop_index(op.f("ix_users_last_seen"), table_name="users")
    op.drop_table("users")
