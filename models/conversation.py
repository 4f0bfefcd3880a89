"""Conversations with a chat model: who talks where, what was said, and the queries on them.

A conversation belongs to a chat and to one person in it, or to nobody in
particular when a group shares one. Each message keeps who it belongs to
(`author_id`: the person who spoke, or whose question an answer answers), so
`/forget` can delete a person's turns even from a shared conversation, and the
Telegram message that showed it, so replying to an answer continues it. A
person's message may carry a photo, kept as Telegram's `file_id` (a reference
the bot can download again, never the bytes), deleted with its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    String,
    Text,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, RowId, UTCDateTime, utcnow
from models.database import Database


class Conversation(Base):
    """One conversation; the newest of a (chat, person) is the one going on."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    # None: the conversation a group shares among all its members.
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Whether the person was told that old turns no longer fit the model's context.
    trim_noticed: Mapped[bool] = mapped_column(Boolean, default=False)


class ConversationMessage(Base):
    """One turn of a conversation, as it was shown (a stopped answer keeps what was shown)."""

    __tablename__ = "conversation_messages"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(
        RowId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The photo a person's message carried, as Telegram's file_id (this bot's to download).
    image_file_id: Mapped[str | None] = mapped_column(String(255), default=None)


@dataclass(frozen=True)
class Turn:
    role: str
    content: str
    image_file_id: str | None = None


@dataclass(frozen=True)
class OngoingConversation:
    """What the next turn of a conversation needs: which one, and what was said in it."""

    id: int
    trim_noticed: bool
    turns: tuple[Turn, ...]
    # The message replied to answered a conversation that is not this one (another member's).
    replied_elsewhere: bool = False


async def ongoing(
    session: AsyncSession,
    chat_id: int,
    user_id: int | None,
    *,
    replied_message_id: int | None = None,
    max_turns: int = 200,
) -> OngoingConversation:
    """The conversation a message continues: the one whose answer it replies to, else this
    person's (or the group's shared) newest one, started if there is none yet.

    A reply continues the conversation it replies to only when that conversation is
    this person's (or the shared one): replying to another member's answer in a group
    with separate conversations must neither read nor write their history, so it goes
    on with the replier's own (`replied_elsewhere` says so). Only the latest
    `max_turns` messages are read: no model context holds more.
    """
    found = None
    replied_elsewhere = False
    if replied_message_id is not None:
        found = await answered_in(session, chat_id, replied_message_id)
        if found is not None and found.user_id != user_id:
            found, replied_elsewhere = None, True
    if found is None:
        found = await session.scalar(
            select(Conversation)
            .where(Conversation.chat_id == chat_id, _of(user_id))
            .order_by(Conversation.id.desc())
            .limit(1)
        )
    if found is None:
        found = await start(session, chat_id, user_id)
    rows = (
        await session.execute(
            select(
                ConversationMessage.role,
                ConversationMessage.content,
                ConversationMessage.image_file_id,
            )
            .where(ConversationMessage.conversation_id == found.id)
            .order_by(ConversationMessage.id.desc())
            .limit(max_turns)
        )
    ).all()
    turns = tuple(Turn(row.role, row.content, row.image_file_id) for row in reversed(rows))
    return OngoingConversation(found.id, found.trim_noticed, turns, replied_elsewhere)


def _of(user_id: int | None) -> ColumnElement[bool]:
    return Conversation.user_id.is_(None) if user_id is None else Conversation.user_id == user_id


async def start(session: AsyncSession, chat_id: int, user_id: int | None) -> Conversation:
    """A fresh conversation: `/new`, or the first message of someone new."""
    conversation = Conversation(chat_id=chat_id, user_id=user_id, started_at=utcnow())
    session.add(conversation)
    await session.flush()
    return conversation


async def answered_in(
    session: AsyncSession, chat_id: int, telegram_message_id: int
) -> Conversation | None:
    """The conversation one of the bot's answers belongs to; None if it answered no conversation."""
    found: Conversation | None = await session.scalar(
        select(Conversation)
        .join(ConversationMessage, ConversationMessage.conversation_id == Conversation.id)
        .where(
            Conversation.chat_id == chat_id,
            ConversationMessage.telegram_message_id == telegram_message_id,
            ConversationMessage.role == "assistant",
        )
        .limit(1)
    )
    return found


@dataclass(frozen=True)
class NewTurn:
    """A person's message and the answer they were shown, with where each is in the chat."""

    question: str
    question_message_id: int | None
    answer: str
    answer_message_id: int | None
    author_id: int
    stopped: bool = False
    trim_noticed: bool = False
    # The photo the question came with (Telegram's file_id).
    question_image_file_id: str | None = None


async def add_turn(session: AsyncSession, conversation_id: int, turn: NewTurn) -> None:
    """A person's message and the answer they were shown, stored together or not at all."""
    now = utcnow()
    session.add_all(
        [
            ConversationMessage(
                conversation_id=conversation_id,
                role="user",
                content=turn.question,
                author_id=turn.author_id,
                telegram_message_id=turn.question_message_id,
                image_file_id=turn.question_image_file_id,
                created_at=now,
            ),
            ConversationMessage(
                conversation_id=conversation_id,
                role="assistant",
                content=turn.answer,
                author_id=turn.author_id,
                telegram_message_id=turn.answer_message_id,
                stopped=turn.stopped,
                created_at=now,
            ),
        ]
    )
    if turn.trim_noticed:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is not None:
            conversation.trim_noticed = True


async def forget(session: AsyncSession, user_id: int) -> int:
    """Delete everything of this person's: their own conversations, and their turns in shared
    ones. Returns how many messages went."""
    own = select(Conversation.id).where(Conversation.user_id == user_id)
    mine = or_(
        ConversationMessage.author_id == user_id, ConversationMessage.conversation_id.in_(own)
    )
    count = await session.scalar(select(func.count()).select_from(ConversationMessage).where(mine))
    await session.execute(delete(ConversationMessage).where(mine))
    await session.execute(delete(Conversation).where(Conversation.user_id == user_id))
    return int(count or 0)


async def prune(session: AsyncSession, before: datetime) -> int:
    """Delete messages older than `before` (the retention setting); how many went."""
    old = ConversationMessage.created_at < before
    count = await session.scalar(select(func.count()).select_from(ConversationMessage).where(old))
    await session.execute(delete(ConversationMessage).where(old))
    return int(count or 0)


class Conversations:
    """Who talks with the chat model where, and what was said: each turn as the person saw it."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def ongoing(
        self,
        chat_id: int,
        user_id: int | None,
        *,
        replied_message_id: int | None = None,
        max_turns: int = 200,
    ) -> OngoingConversation:
        """The conversation a message continues (started if there is none), with its turns."""
        async with self._db.session() as session:
            return await ongoing(
                session,
                chat_id,
                user_id,
                replied_message_id=replied_message_id,
                max_turns=max_turns,
            )

    async def is_answer(self, chat_id: int, telegram_message_id: int) -> bool:
        """Whether a message of the bot's answered a conversation, so a reply to it continues one."""
        async with self._db.session(read_only=True) as session:
            found = await answered_in(session, chat_id, telegram_message_id)
        return found is not None

    async def add_turn(self, conversation_id: int, turn: NewTurn) -> None:
        """A person's message and the answer they saw, committed together."""
        async with self._db.session() as session:
            await add_turn(session, conversation_id, turn)

    async def start_new(self, chat_id: int, user_id: int | None) -> None:
        async with self._db.session() as session:
            await start(session, chat_id, user_id)

    async def forget(self, user_id: int) -> int:
        """Delete this person's stored history; returns how many messages went."""
        async with self._db.session() as session:
            return await forget(session, user_id)

    async def prune(self, before: datetime) -> int:
        async with self._db.session() as session:
            return await prune(session, before)
