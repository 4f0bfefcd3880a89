"""The bot's HTTP side: the webhook endpoint, /healthz and /metrics.

Follows python-telegram-bot's custom-webhook example: an ASGI app (Starlette)
served by uvicorn puts each update on `application.update_queue`, so webhook
and polling share every handler. In polling mode the same app runs without
the webhook route, on `metrics_port`, when that is set.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Update

from bot.config import Settings
from bot.errors import StoreUnavailable
from bot.log_setup import keep_secret
from bot.monitoring.bot_metrics import CONTENT_TYPE
from handlers.request.context import BotApplication, services_of

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def health(application: BotApplication) -> tuple[bool, dict[str, str]]:
    """Whether the bot, the database and the pool are usable, part by part.

    Each remote engine is reported; one that is down fails the check only if
    the operator marked it required. Redis, where replicas share it, is reported and
    never fails it (a replica answers on its own limits without it), and so is which
    replica polls Telegram (a standby is as healthy as the poller).
    """
    parts: dict[str, str] = {"bot": "ok" if application.running else "stopped"}
    found = services_of(application)
    if found is None:
        parts["services"] = "starting"
        return False, parts
    try:
        await found.store.database.ping()
        parts["database"] = "ok"
    except StoreUnavailable:
        parts["database"] = "unreachable"
    parts["pool"] = "closed" if found.pool.closed else "ok"
    healthy = all(value == "ok" for value in parts.values())
    if found.replicas is not None:  # reported, never failing: the replica answers without it
        parts["redis"] = found.replicas.health
        if found.replicas.poller.role is not None:
            parts["poller"] = found.replicas.poller.role
    remote = found.pool.remote
    for name, state in (await remote.health()).items():
        parts[f"engine:{name}"] = state
        healthy = healthy and (state == "ok" or not remote.settings(name).required)
    return healthy, parts


def build_web_app(
    application: BotApplication, settings: Settings, secret: str | None, *, metrics: bool = True
) -> Starlette:
    """Routes: the webhook (when `secret` is given), /healthz, and /metrics unless left out.

    With HFBOT_METRICS_TOKEN set, /metrics answers 401 to a scrape without it.
    On the public webhook port /healthz says only ok or not ok (its status
    code): which engines the bot uses and what state its database is in are
    for the operator, on the metrics port or to a request carrying the token.
    """
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    def bearer_of_token(request: Request) -> bool:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return token is not None and hmac.compare_digest(given.encode(), token.encode())

    async def telegram(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if secret is None or not hmac.compare_digest(given.encode(), secret.encode()):
            return Response(status_code=403)
        await application.update_queue.put(Update.de_json(await request.json(), application.bot))
        return Response()

    async def healthz(request: Request) -> Response:
        ok, parts = await health(application)
        shown = parts if secret is None or bearer_of_token(request) else {}
        return JSONResponse({"ok": ok, **shown}, status_code=200 if ok else 503)

    async def metrics_route(request: Request) -> Response:
        if token is not None and not bearer_of_token(request):
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        found = services_of(application)
        body = found.metrics.render() if found else b""
        return Response(body, media_type=CONTENT_TYPE)

    routes = [Route("/healthz", healthz)]
    if metrics:
        routes.append(Route("/metrics", metrics_route))
    if secret is not None:
        routes.append(Route(settings.webhook_path, telegram, methods=["POST"]))
    return Starlette(routes=routes)


def webhook_secret(settings: Settings) -> str:
    """The configured secret, or a random one for this start, blanked in logs like it."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    made = secrets.token_urlsafe(32)
    keep_secret(made)
    return made


def uvicorn_server(app: Starlette, host: str, port: int, **options: Any) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", **options)
    )
