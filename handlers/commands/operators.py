"""Commands for the bot's own admins (/stats, /allow, /deny), and /stats for group admins."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.delivery.replies import reply_photo
from bot.errors import NotGroupAdminStats, UsageHint
from bot.hub import rule_id
from bot.monitoring.usage_charts import render_usage_chart
from handlers.request.parsing import command_text
from handlers.request.permissions import require_bot_admin, require_group_admin
from handlers.request.turn import Turn, handle_errors
from models.base import utcnow
from models.rule import RuleKind
from models.usage import WINDOWS, UsageSummary, step_for

DEFAULT_WINDOW = "24h"


def _window(turn: Turn) -> tuple[str, timedelta]:
    words = command_text(turn.message).lower().split()
    name = words[0] if words else DEFAULT_WINDOW
    if len(words) > 1 or name not in WINDOWS:
        raise UsageHint("admin.usage_stats", windows="|".join(WINDOWS))
    return name, WINDOWS[name]


@handle_errors
async def stats_command(turn: Turn) -> None:
    """/stats [24h|7d|30d]: a chart of requests, errors, latency and active users, and one line.

    In a private chat, for the bot's admins: every chat. In a group, for its
    admins (checked live) and the bot's: that group's requests only, so no
    group sees another's.
    """
    if turn.in_group:
        if turn.owner_id not in turn.services.settings.admin_ids:
            await require_group_admin(turn, refusal=NotGroupAdminStats)
        chat_id: int | None = turn.chat.id
    else:
        require_bot_admin(turn)
        chat_id = None
    name, span = _window(turn)
    until = utcnow()
    series = await turn.services.store.usage.series(
        until - span, until, step_for(span), chat_id=chat_id
    )
    # The chart is labelled in English (see bot.monitoring.usage_charts); the caption is localized.
    where = "This group" if chat_id is not None else "All chats"
    png = await asyncio.to_thread(render_usage_chart, series, f"{where} · last {name}")
    await reply_photo(turn.message, png, _summary_line(turn, name, series.summary))


def _summary_line(turn: Turn, window: str, summary: UsageSummary) -> str:
    """One line a phone shows whole under the picture: totals, error rate, latency, users."""
    if summary.p50_ms is None or summary.p95_ms is None:
        return turn.t("admin.stats_empty", window=window)
    return turn.t(
        "admin.stats_summary",
        window=window,
        requests=summary.requests,
        errors=summary.errors,
        rate=f"{summary.errors / summary.requests:.0%}",
        users=summary.active_users,
        p50=round(summary.p50_ms),
        p95=round(summary.p95_ms),
    )


async def _set_rule(turn: Turn, rule: RuleKind) -> None:
    require_bot_admin(turn)
    words = command_text(turn.message).split()
    if len(words) != 1:
        raise UsageHint("admin.usage_rule", command=rule)
    model_id = await asyncio.to_thread(rule_id, words[0])
    await turn.services.store.rules.set(model_id, rule, turn.owner_id)
    turn.services.vetter.rules_changed()
    await turn.reply(turn.t("admin.allowed" if rule == "allow" else "admin.denied", model=model_id))


@handle_errors
async def allow_command(turn: Turn) -> None:
    """/allow <model id>: let users pick this model."""
    await _set_rule(turn, "allow")


@handle_errors
async def deny_command(turn: Turn) -> None:
    """/deny <model id>: refuse this model everywhere, even where it was allowed."""
    await _set_rule(turn, "deny")
