"""A group's settings, for its admins: /groupmodel, /groupset, /groupreset, /groupquota.

Members inherit them unless they set their own (`/set`); the group's quota holds
them to the smaller of it and the bot-wide one.
"""

from __future__ import annotations

from bot.errors import GroupOnly, UnknownTask, UsageHint
from bot.numbers import parse_int
from bot.tasks import TASKS, get_task
from handlers.request.permissions import require_group_admin
from handlers.request.quota import RESET_NOTE
from handlers.request.setting_words import (
    command_words,
    shown_value,
    task_and_model,
    task_param_value,
)
from handlers.request.turn import Turn, handle_errors


@handle_errors
async def group_model_command(turn: Turn) -> None:
    """/groupmodel <task> <model id>: this group's default model (admins only)."""
    await turn.services.limiter.check(turn.owner_id)
    await require_group_admin(turn)
    spec, model_id = task_and_model(turn, "groupmodel")
    if model_id is not None:
        await turn.services.vetter.vet(spec.name, model_id)
    await turn.services.store.preferences.set_chat_model(turn.chat.id, spec.name, model_id, by=turn.owner_id)
    await turn.reply(
        turn.t("settings.group_model_set", task=spec.name, model=model_id or "default")
    )


@handle_errors
async def group_set_command(turn: Turn) -> None:
    """/groupset [task] <param> <value>: a default every member inherits unless they set their own."""
    await require_group_admin(turn)
    spec, param, value = task_param_value(turn, "groupset")
    if spec is None:
        raise UnknownTask(task=param, known=", ".join(TASKS))
    stored = await turn.services.store.preferences.set_chat_params(
        turn.chat.id, spec.name, {param: value}, by=turn.owner_id
    )
    await turn.reply(
        turn.t("settings.group_param_set", param=param, task=spec.name, value=shown_value(stored[param]))
    )


@handle_errors
async def group_reset_command(turn: Turn) -> None:
    """/groupreset [task]: drop this group's defaults (admins only)."""
    await require_group_admin(turn)
    words = command_words(turn)
    spec = get_task(words[0]) if words else None
    await turn.services.store.preferences.reset_chat(turn.chat.id, spec.name if spec else None)
    await turn.reply(
        turn.t("settings.reset", what=spec.name if spec else turn.t("settings.reset_all"))
    )


# The largest daily quota a group may set: far above any real use, small enough to store.
MAX_GROUP_QUOTA = 1_000_000


def _group_quota_choice(turn: Turn) -> int | None:
    """`/groupquota <n>` (1 to MAX_GROUP_QUOTA) or `/groupquota off` (None)."""
    words = command_words(turn)
    if len(words) == 1 and words[0].lower() == "off":
        return None
    quota = parse_int(words[0], 1, MAX_GROUP_QUOTA) if len(words) == 1 else None
    if quota is not None:
        return quota
    raise UsageHint("error.usage_groupquota", most=MAX_GROUP_QUOTA)


@handle_errors
async def group_quota_command(turn: Turn) -> None:
    """/groupquota [n | off]: requests each member may have answered here per day.

    Alone it shows the group's quota to anyone in the group; changing it is for the
    group's admins. Members are held to the smaller of this and the bot-wide quota.
    """
    if not turn.in_group:
        raise GroupOnly()
    store = turn.services.store
    if not command_words(turn):
        quota = await store.preferences.group_quota(turn.chat.id)
        shown = (
            turn.t("quota.group_is", limit=quota, reset=RESET_NOTE)
            if quota
            else turn.t("quota.group_none")
        )
        await turn.reply(shown)
        return
    await require_group_admin(turn)
    quota = _group_quota_choice(turn)
    await store.preferences.set_group_quota(turn.chat.id, quota)
    await turn.reply(turn.t("quota.group_set", limit=quota) if quota else turn.t("quota.group_off"))
