"""Commands for the bot's own admins: /stats, /allow, /deny."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.errors import BotAdminOnly, UsageHint
from bot.hub.access import rule_id
from handlers.parsing import command_text
from handlers.turn import Turn, handle_errors
from models.base import utcnow
from models.rule import RuleKind

STATS_WINDOW = timedelta(hours=24)


def require_bot_admin(turn: Turn) -> None:
    if turn.owner_id not in turn.services.settings.admin_ids:
        raise BotAdminOnly()


@handle_errors
async def stats_command(turn: Turn) -> None:
    """/stats: requests, errors and latency per task over the last day."""
    require_bot_admin(turn)
    summary = await turn.services.store.usage_summary(utcnow() - STATS_WINDOW)
    hours = int(STATS_WINDOW.total_seconds() // 3600)
    lines = [turn.t("admin.stats_title", hours=hours, users=summary.active_users)]
    lines += [
        turn.t(
            "admin.stats_row",
            task=row.task,
            requests=row.requests,
            errors=row.errors,
            p50=round(row.p50_ms),
            p95=round(row.p95_ms),
        )
        for row in summary.tasks
    ] or [turn.t("admin.stats_empty")]
    await turn.reply("\n".join(lines))


async def _set_rule(turn: Turn, rule: RuleKind) -> None:
    require_bot_admin(turn)
    words = command_text(turn.message).split()
    if len(words) != 1:
        raise UsageHint("admin.usage_rule", command=rule)
    model_id = await asyncio.to_thread(rule_id, words[0])
    await turn.services.store.set_model_rule(model_id, rule, turn.owner_id)
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
