"""A person's own settings: /settings and its buttons, /model, /set, /reset, /models, /lang."""

from __future__ import annotations

import hashlib
import html
import re

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ChatType

from bot.delivery.replies import edit_html
from bot.engine import public_model_id
from bot.errors import (
    SettingsNotYours,
    StaleButton,
    UnknownLanguage,
    UsageHint,
    UserFacingError,
)
from bot.i18n import CATALOGS, pick_language
from bot.tasks import OPTIONS, TASKS, TaskSpec, get_task
from handlers.request.context import BotContext
from handlers.request.model_call import resolve_settings
from handlers.request.parsing import parse_id
from handlers.request.quota import quota_line
from handlers.request.setting_words import (
    command_words,
    param_words,
    shown_value,
    task_and_model,
    tasks_reading,
)
from handlers.request.turn import Turn, handle_errors

# Quick choices offered as buttons under /settings; anything else goes through /set.
PRESETS: dict[str, tuple[int | float | bool, ...]] = {
    "temperature": (0.3, 0.7, 1.0, 1.3),
    "max_new_tokens": (20, 40, 80, 160),
    "top_p": (0.5, 0.9, 1.0),
    "do_sample": (True, False),
}


def model_token(model_id: str) -> str:
    """A short stable id for a model, so callback data stays under Telegram's 64 bytes."""
    return hashlib.sha1(model_id.encode()).hexdigest()[:10]


# -- /settings ---------------------------------------------------------------


async def settings_view(turn: Turn, spec: TaskSpec, owner: int) -> tuple[str, InlineKeyboardMarkup]:
    resolved, fallback = await resolve_settings(turn, spec)
    lines = [
        turn.t("settings.title", task=spec.name),
        turn.t(
            "settings.model",
            model=resolved.model_id,
            source=turn.t(f"settings.source.{resolved.model_source}"),
        ),
    ]
    for name in spec.params:
        source = turn.t(f"settings.source.{resolved.param_sources.get(name, 'bot')}")
        lines.append(
            turn.t("settings.param", param=name, value=shown_value(resolved.params[name]), source=source)
        )
    quota = await quota_line(turn)
    if quota is not None:
        lines.append(quota)
    lines.append("")
    lines.append(turn.t("settings.hint"))
    if fallback:
        lines.append(turn.t("notice.store_fallback"))
    return "\n".join(lines), _settings_keyboard(spec, resolved.params, owner)


def _settings_keyboard(
    spec: TaskSpec, params: dict[str, object], owner: int
) -> InlineKeyboardMarkup:
    names = list(TASKS)
    rows = [
        [
            InlineKeyboardButton(
                f"• {name}" if name == spec.name else name, callback_data=f"cfg:{owner}:view:{name}"
            )
            for name in names[start : start + 4]
        ]
        for start in range(0, len(names), 4)
    ]
    for param in (p for p in PRESETS if p in spec.params):
        rows.append(
            [
                InlineKeyboardButton(
                    f"{'✓ ' if params.get(param) == value else ''}{param} {shown_value(value)}",
                    callback_data=f"cfg:{owner}:set:{spec.name}:{param}:{shown_value(value)}",
                )
                for value in PRESETS[param]
            ]
        )
    rows.append(
        [
            InlineKeyboardButton("Models…", callback_data=f"cfg:{owner}:models:{spec.name}"),
            InlineKeyboardButton("Reset", callback_data=f"cfg:{owner}:reset:{spec.name}"),
        ]
    )
    return InlineKeyboardMarkup(rows)


@handle_errors
async def settings_command(turn: Turn) -> None:
    """/settings [task]: this user's effective configuration, with buttons to change it."""
    words = command_words(turn)
    spec = get_task(words[0]) if words else TASKS["generate"]
    text, keyboard = await settings_view(turn, spec, turn.owner_id)
    await turn.reply(text, keyboard)


# Each button action and the words its callback data carries after `cfg:<owner>:<action>`.
_BUTTON_WORDS = {"view": 1, "set": 3, "reset": 1, "models": 1, "model": 2}


def parse_settings_button(data: str) -> tuple[int, str, list[str]]:
    """`cfg:<owner>:<action>:<words…>`; anything else was not made by this bot."""
    parts = data.split(":")
    owner = parse_id(parts[1]) if len(parts) >= 3 else None
    if owner is None:
        raise StaleButton()
    action, rest = parts[2], parts[3:]
    if len(rest) != _BUTTON_WORDS.get(action, -1):
        raise StaleButton()
    return owner, action, rest


async def settings_button(update: Update, context: BotContext) -> None:
    """A /settings button: only the person whose settings they show may press them."""
    query = update.callback_query
    assert query is not None and query.data is not None
    turn = await Turn.open(update, context)
    try:
        owner, action, rest = parse_settings_button(query.data)
        if owner != turn.owner_id:
            raise SettingsNotYours()
        await turn.services.limiter.check(turn.owner_id)
        notice = await _apply_button(turn, query, action, rest)
    except UserFacingError as error:
        await query.answer(_plain(turn.t(error.key, **error.values)), show_alert=True)
        return
    await query.answer(_plain(notice) if notice else None)


async def _apply_button(
    turn: Turn, query: CallbackQuery, action: str, rest: list[str]
) -> str | None:
    store = turn.services.store
    spec = get_task(rest[0])
    notice = None
    if action == "set":
        param, value = rest[1], rest[2]
        stored = await store.preferences.set_user_params(turn.owner_id, spec.name, {param: value})
        notice = turn.t(
            "settings.param_set", param=param, task=spec.name, value=shown_value(stored[param])
        )
    elif action == "reset":
        await store.preferences.reset_user(turn.owner_id, spec.name)
        notice = turn.t("settings.reset", what=spec.name)
    elif action == "models":
        await _show_model_picker(turn, query, spec)
        return None
    elif action == "model":
        model_id = await _model_for_token(turn, spec, rest[1])
        await turn.services.vetter.vet(spec.name, model_id)
        await store.preferences.set_user_model(turn.owner_id, spec.name, model_id)
        notice = turn.t("settings.model_set", task=spec.name, model=model_id)
    text, keyboard = await settings_view(turn, spec, turn.owner_id)
    assert query.message is not None
    await edit_html(query.message, text, keyboard)  # type: ignore[arg-type]
    return notice


async def _show_model_picker(turn: Turn, query: CallbackQuery, spec: TaskSpec) -> None:
    models = await turn.services.vetter.search_models(spec.name, limit=8)
    rows = [
        [
            InlineKeyboardButton(
                public_model_id(item.model_id)[-60:],
                callback_data=f"cfg:{turn.owner_id}:model:{spec.name}:{model_token(item.model_id)}",
            )
        ]
        for item in models
    ]
    rows.append([InlineKeyboardButton("«", callback_data=f"cfg:{turn.owner_id}:view:{spec.name}")])
    assert query.message is not None
    await edit_html(
        query.message,  # type: ignore[arg-type]
        turn.t("settings.models_title", task=spec.name),
        InlineKeyboardMarkup(rows),
    )


async def _model_for_token(turn: Turn, spec: TaskSpec, token: str) -> str:
    for item in await turn.services.vetter.search_models(spec.name, limit=50):
        if model_token(item.model_id) == token:
            return item.model_id
    raise UsageHint("error.usage_model", command="model")


def _plain(markup: str) -> str:
    """Callback answers are plain text (max 200 characters): strip the HTML."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))[:200]


# -- /model, /set, /reset, /models, /lang ---------------------------------------


@handle_errors
async def model_command(turn: Turn) -> None:
    """/model <task> <model id>: vetted before it is saved; `default` forgets the choice.

    Rate limited like a model command: vetting asks the Hub.
    """
    await turn.services.limiter.check(turn.owner_id)
    spec, model_id = task_and_model(turn, "model")
    if model_id is not None:
        await turn.services.vetter.vet(spec.name, model_id)
    await turn.services.store.preferences.set_user_model(turn.owner_id, spec.name, model_id)
    await turn.reply(turn.t("settings.model_set", task=spec.name, model=model_id or "default"))


async def _task_in_use(turn: Turn, param: str) -> TaskSpec:
    """What `/set <param> <value>` without a task means: the task of this person's latest
    request in this chat that reads the parameter; with none, the conversation in a private
    chat (plain text talks to it), else the first task that reads it. A parameter no task
    reads falls to generate, whose validation names it."""
    readers = tasks_reading(param)
    if not readers:
        return TASKS["generate"]
    latest = await turn.services.store.usage.latest_task(turn.owner_id, turn.chat.id, readers)
    if latest is not None:
        return TASKS[latest]
    if turn.chat.type == ChatType.PRIVATE and TASKS["chat"].name in readers:
        return TASKS["chat"]
    return TASKS[readers[0]]


@handle_errors
async def set_command(turn: Turn) -> None:
    """/set [task] <param> <value>: the range is checked and shown on error; the reply names
    the task changed, which matters most when the person left it out."""
    task, param, value = param_words(turn, "set")
    store = turn.services.store
    if task is None and param in OPTIONS:
        stored = await store.preferences.set_options(turn.owner_id, {param: value})
        await turn.reply(
            turn.t("settings.param_set", param=param, task="—", value=shown_value(stored[param]))
        )
        return
    spec = get_task(task) if task is not None else await _task_in_use(turn, param)
    stored = await store.preferences.set_user_params(turn.owner_id, spec.name, {param: value})
    await turn.reply(
        turn.t("settings.param_set", param=param, task=spec.name, value=shown_value(stored[param]))
    )


@handle_errors
async def reset_command(turn: Turn) -> None:
    """/reset [task]: back to the group's or the bot's defaults."""
    words = command_words(turn)
    spec = get_task(words[0]) if words else None
    store = turn.services.store
    await store.preferences.reset_user(turn.owner_id, spec.name if spec else None)
    if spec is None:
        await store.preferences.set_options(
            turn.owner_id, dict.fromkeys(await store.preferences.get_options(turn.owner_id))
        )
    await turn.reply(
        turn.t("settings.reset", what=spec.name if spec else turn.t("settings.reset_all"))
    )


@handle_errors
async def models_command(turn: Turn) -> None:
    """/models [task] [query]: models this user may pick, from the Hub or the allowed list."""
    await turn.services.limiter.check(turn.owner_id)
    words = command_words(turn)
    spec = get_task(words[0]) if words else TASKS["sentiment"]
    query = " ".join(words[1:]) or None
    found = await turn.services.vetter.search_models(spec.name, query, limit=10)
    lines = [turn.t("settings.models_title", task=spec.name)]
    lines += [
        f"• <code>{html.escape(public_model_id(item.model_id))}</code>"
        + (f" · {item.downloads:,} ↓" if item.downloads else "")
        + (f" · {item.origin}" if item.origin != "hub" else "")
        for item in found
    ] or [turn.t("settings.models_empty")]
    await turn.reply("\n".join(lines))


@handle_errors
async def lang_command(turn: Turn) -> None:
    """/lang en|zh: the language of replies; `/lang auto` follows Telegram again."""
    words = command_words(turn)
    if len(words) != 1:
        raise UsageHint("error.usage_lang")
    choice = words[0].lower()
    if choice == "auto":
        await turn.services.store.preferences.set_language(turn.owner_id, None)
        turn.language = pick_language(turn.user.language_code if turn.user else None)
    elif choice in CATALOGS:
        await turn.services.store.preferences.set_language(turn.owner_id, choice)
        turn.language = choice
    else:
        raise UnknownLanguage(known=", ".join([*CATALOGS, "auto"]))
    await turn.reply(turn.t("settings.lang_set"))
