"""What a user, or a group's admins, chose for a task: a model and generation parameters.

Both tables have the same shape; a `Scope` says which one a query works on, so the
queries below serve a user's own choices and a group's defaults alike.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, Protocol, cast

from sqlalchemy import BigInteger, ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.errors import UserFacingError
from models import user
from models.base import Base, JsonDict, UTCDateTime, upsert, utcnow
from models.database import Database
from models.user import Chat, GroupSetup, User, ensure_owner


class UserPreference(Base):
    """One row per (user, task). A NULL model or a missing parameter means "inherit"."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChatDefault(Base):
    """A group's defaults for a task, set by its admins; members inherit what they did not set."""

    __tablename__ = "chat_defaults"

    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    updated_by: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


ChoiceRow = UserPreference | ChatDefault


@dataclass(frozen=True)
class Scope:
    """Whose choices a table holds: users' own, or groups' defaults."""

    kind: str
    table: type[UserPreference] | type[ChatDefault]
    owner_column: str
    owner_table: type[User] | type[Chat]
    owner_defaults: dict[str, Any] = field(default_factory=dict)

    def owned_by(self, owner: int) -> Any:
        """The WHERE clause picking this owner's rows."""
        return getattr(self.table, self.owner_column) == owner


USER_SCOPE = Scope("user", UserPreference, "user_id", User)
# A group first met through an admin's command; touch_chat fills in its real type and title.
CHAT_SCOPE = Scope("chat", ChatDefault, "chat_id", Chat, {"type": "group"})


@dataclass(frozen=True)
class Choice:
    """A stored model/params choice for one task, as cached in memory."""

    model_id: str | None
    params: dict[str, Any]


async def read_choice(session: AsyncSession, scope: Scope, owner: int, task: str) -> Choice | None:
    table = scope.table
    row = (
        await session.execute(
            select(table.model_id, table.params).where(scope.owned_by(owner), table.task == task)
        )
    ).first()
    return Choice(row.model_id, dict(row.params or {})) if row else None


async def locked_choice(session: AsyncSession, scope: Scope, owner: int, task: str) -> ChoiceRow:
    """The owner's row for a task (owner and row created if missing), locked for this transaction."""
    await ensure_owner(session, scope.owner_table, owner, **scope.owner_defaults)
    key = {scope.owner_column: owner, "task": task}
    await upsert(session, scope.table, {**key, "params": {}}, list(key), [])
    stmt = select(scope.table).filter_by(**key).with_for_update()
    return cast(ChoiceRow, (await session.execute(stmt)).scalar_one())


async def delete_choices(session: AsyncSession, scope: Scope, owner: int, task: str | None) -> int:
    """Forget the owner's choices for one task, or all of them; how many rows went."""
    stmt = delete(scope.table).where(scope.owned_by(owner))
    if task is not None:
        stmt = stmt.where(scope.table.task == task)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


class Rules(Protocol):
    """What the store needs of the parameter registry: validation, nothing else."""

    def validate(self, task: str, params: Mapping[str, object]) -> dict[str, Any]: ...

    def validate_options(self, options: Mapping[str, object]) -> dict[str, Any]: ...


Source = Literal["user", "chat", "bot"]


@dataclass(frozen=True)
class ResolvedSettings:
    """What one request runs with, and where each choice came from (shown by /settings)."""

    model_id: str
    model_source: Source
    params: dict[str, Any]
    param_sources: dict[str, Source] = field(default_factory=dict)


class Preferences:
    """What people and groups chose: language, options, models and parameters per task,
    system prompts, a group's conversation mode and quota; and who was seen.

    Parameter validation is handed in (the task registry's rules), so values are
    checked on every write and nothing invalid is ever stored.
    """

    def __init__(self, database: Database, rules: Rules, *, touch_interval_s: float = 60.0) -> None:
        self._db = database
        self._rules = rules
        self._touch_interval = touch_interval_s
        self._touched: OrderedDict[tuple[str, int], float] = OrderedDict()

    # -- users and chats -----------------------------------------------------

    def _due(self, kind: str, ident: int) -> bool:
        """Whether a user or chat was last written long enough ago to write it again."""
        now = self._db.clock()
        last = self._touched.get((kind, ident))
        if last is not None and now - last < self._touch_interval:
            return False
        self._touched[(kind, ident)] = now
        self._touched.move_to_end((kind, ident))
        while len(self._touched) > self._db.max_owners:
            self._touched.popitem(last=False)
        return True

    async def touch_user(self, user_id: int, telegram_language: str | None = None) -> None:
        """Record that a user was seen; written at most once per interval per user."""
        if not self._due("user", user_id):
            return
        async with self._db.session() as session:
            await user.touch_user(session, user_id, telegram_language)
        self._db.forget("lang", user_id)

    async def touch_chat(self, chat_id: int, chat_type: str, title: str | None = None) -> None:
        """Record that a chat was seen; written at most once per interval per chat."""
        if not self._due("chat", chat_id):
            return
        async with self._db.session() as session:
            await user.touch_chat(session, chat_id, chat_type, title)

    async def get_language(self, user_id: int) -> str | None:
        """The user's /lang choice, else the language Telegram reported, else None."""
        return await self._db.read_through(
            "lang", user_id, "", partial(user.read_language, user_id=user_id)
        )

    async def set_language(self, user_id: int, language: str | None) -> None:
        """Set (or with None, clear) the user's preferred reply language."""
        async with self._db.session() as session:
            await user.write_language(session, user_id, language)
        self._db.forget("lang", user_id)

    async def get_options(self, user_id: int) -> dict[str, Any]:
        """The user's stored options (only what they set; defaults live in the registry)."""
        return await self._db.read_through(
            "opts", user_id, "", partial(user.read_options, user_id=user_id)
        )

    async def set_options(self, user_id: int, options: Mapping[str, object]) -> dict[str, Any]:
        """Merge validated options; a None value removes that option. Returns what is stored."""
        clean = self._rules.validate_options({k: v for k, v in options.items() if v is not None})
        removed = [k for k, v in options.items() if v is None]
        async with self._db.session() as session:
            stored = await user.merge_options(session, user_id, clean, removed)
        self._db.forget("opts", user_id)
        return stored

    # -- per-task choices ----------------------------------------------------

    async def set_user_model(self, user_id: int, task: str, model_id: str | None) -> None:
        """Choose (or with None, forget) this user's model for a task."""
        await self._set_model(USER_SCOPE, user_id, task, model_id)

    async def set_user_params(
        self, user_id: int, task: str, params: Mapping[str, object]
    ) -> dict[str, Any]:
        """Merge validated parameters into this user's choice; a None value removes that key.

        Returns the parameters now stored. The row is locked for the merge so
        concurrent /set commands from one user never lose each other's values.
        """
        return await self._set_params(USER_SCOPE, user_id, task, params)

    async def reset_user(self, user_id: int, task: str | None = None) -> int:
        """Forget this user's choices for one task or all tasks; returns how many were removed."""
        return await self._reset(USER_SCOPE, user_id, task)

    async def set_chat_model(
        self, chat_id: int, task: str, model_id: str | None, *, by: int | None
    ) -> None:
        """Set a group's default model for a task (the caller checked the admin right)."""
        await self._set_model(CHAT_SCOPE, chat_id, task, model_id, updated_by=by)

    async def set_chat_params(
        self, chat_id: int, task: str, params: Mapping[str, object], *, by: int | None
    ) -> dict[str, Any]:
        """Merge validated parameters into a group's defaults; a None value removes that key."""
        return await self._set_params(CHAT_SCOPE, chat_id, task, params, updated_by=by)

    async def reset_chat(self, chat_id: int, task: str | None = None) -> int:
        """Forget a group's defaults for one task or all tasks."""
        return await self._reset(CHAT_SCOPE, chat_id, task)

    async def _set_model(
        self, scope: Scope, owner: int, task: str, model_id: str | None, **extra: Any
    ) -> None:
        self._rules.validate(task, {})
        async with self._db.session() as session:
            row = await locked_choice(session, scope, owner, task)
            row.model_id = model_id
            for name, value in extra.items():
                setattr(row, name, value)
        self._db.forget(scope.kind, owner, task)

    async def _set_params(
        self, scope: Scope, owner: int, task: str, params: Mapping[str, object], **extra: Any
    ) -> dict[str, Any]:
        clean = self._rules.validate(task, {k: v for k, v in params.items() if v is not None})
        removed = [k for k, v in params.items() if v is None]
        async with self._db.session() as session:
            row = await locked_choice(session, scope, owner, task)
            row.params = user.merged(row.params, clean, removed)
            for name, value in extra.items():
                setattr(row, name, value)
            stored = dict(row.params)
        self._db.forget(scope.kind, owner, task)
        return stored

    async def _reset(self, scope: Scope, owner: int, task: str | None) -> int:
        if task is not None:
            self._rules.validate(task, {})
        async with self._db.session() as session:
            removed = await delete_choices(session, scope, owner, task)
        self._db.forget(scope.kind, owner, task)
        return removed

    async def user_choice(self, user_id: int, task: str) -> Choice | None:
        return await self._choice(USER_SCOPE, user_id, task)

    async def chat_choice(self, chat_id: int, task: str) -> Choice | None:
        return await self._choice(CHAT_SCOPE, chat_id, task)

    async def _choice(self, scope: Scope, owner: int, task: str) -> Choice | None:
        read = partial(read_choice, scope=scope, owner=owner, task=task)
        return await self._db.read_through(scope.kind, owner, task, read)

    async def resolve(
        self,
        user_id: int,
        chat_id: int | None,
        task: str,
        *,
        default_model: str,
        default_params: Mapping[str, Any],
    ) -> ResolvedSettings:
        """What a request runs with: the user's choice > the chat's default > the bot's default.

        Parameters resolve key by key, so a user who only set `temperature`
        still inherits the group's `max_new_tokens`. Stored values are
        re-validated, so a cap an operator lowered later applies to old rows.
        """
        layers: list[tuple[Source, Choice | None]] = []
        if chat_id is not None and chat_id != user_id:
            layers.append(("chat", await self.chat_choice(chat_id, task)))
        layers.append(("user", await self.user_choice(user_id, task)))
        model_id: str = default_model
        model_source: Source = "bot"
        params = dict(default_params)
        sources: dict[str, Source] = dict.fromkeys(params, "bot")
        for source, choice in layers:
            if choice is None:
                continue
            if choice.model_id:
                model_id, model_source = choice.model_id, source
            for name, value in choice.params.items():
                if _still_valid(self._rules.validate, task, name, value):
                    params[name], sources[name] = value, source
        return ResolvedSettings(model_id, model_source, params, sources)

    # -- conversations' setup and groups' quotas ----------------------------------

    async def system_prompt(self, user_id: int) -> str | None:
        """This person's own system prompt (`/system`), if they set one."""
        read = partial(user.read_system_prompt, user_id=user_id)
        return await self._db.read_through("system", user_id, "", read)

    async def set_system_prompt(self, user_id: int, prompt: str | None) -> None:
        async with self._db.session() as session:
            await user.write_system_prompt(session, User, user_id, prompt)
        self._db.forget("system", user_id)

    async def group_setup(self, chat_id: int) -> GroupSetup:
        """A group's system prompt and whether it shares one conversation."""
        read = partial(user.read_group_setup, chat_id=chat_id)
        return await self._db.read_through("group", chat_id, "", read)

    async def set_chat_system_prompt(self, chat_id: int, prompt: str | None) -> None:
        async with self._db.session() as session:
            await user.write_system_prompt(session, Chat, chat_id, prompt)
        self._db.forget("group", chat_id)

    async def set_shared_conversation(self, chat_id: int, shared: bool) -> None:
        async with self._db.session() as session:
            await user.write_shared_conversation(session, chat_id, shared)
        self._db.forget("group", chat_id)

    async def group_quota(self, chat_id: int) -> int | None:
        """The daily quota per member a group's admins set (`/groupquota`); None: none."""
        read = partial(user.read_group_quota, chat_id=chat_id)
        return await self._db.read_through("quota", chat_id, "", read)

    async def set_group_quota(self, chat_id: int, quota: int | None) -> None:
        async with self._db.session() as session:
            await user.write_group_quota(session, chat_id, quota)
        self._db.forget("quota", chat_id)


def _still_valid(
    validate: Callable[[str, Mapping[str, object]], Any], task: str, name: str, value: Any
) -> bool:
    try:
        validate(task, {name: value})
    except UserFacingError:
        return False
    return True
