"""How updates reach the bot: a queue drained by long polling or pushed to a webhook.

Updates stay queued until getUpdates confirms them (a later offset) or the webhook
answers 2xx, so nothing a fake person does is lost while the bot is not consuming.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiohttp

from bot.offline.emulator.world import ApiError, JsonDict, bad_request

DEFAULT_ALLOWED_UPDATES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "my_chat_member",
    }
)
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_WEBHOOK_RETRY_S = 0.2


class Changes:
    """Wakes every waiter when the emulator's state changes; callable from sync code."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; bound it with `asyncio.timeout` where needed."""
        while not predicate():
            await self._event.wait()


class UpdateDelivery:
    """One bot's update queue, served by getUpdates or a webhook, never both at once."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self.pending: list[JsonDict] = []
        # Acknowledged: confirmed by a getUpdates offset, or answered 2xx by the webhook.
        self.accepted: list[JsonDict] = []
        self.long_polls_waiting = 0
        self.last_error: tuple[int, str] | None = None
        self._update_ids = itertools.count(1)
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._poll_generation = 0
        self._webhook: JsonDict | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    def table(self) -> dict[str, Callable[[JsonDict], Any]]:
        return {
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
        }

    async def start(self) -> None:
        self._closing = False
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Release waiting long polls and stop the webhook sender."""
        self._closing = True
        self.changes.notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            await asyncio.gather(self._webhook_task, return_exceptions=True)
            self._webhook_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def queue(self, kind: str, payload: JsonDict) -> None:
        """Queue an update unless allowed_updates excludes its kind (as Telegram drops it)."""
        if kind not in self._allowed_updates:
            return
        self.pending.append({"update_id": next(self._update_ids), kind: payload})
        self.changes.notify()

    def hand_over(self) -> list[JsonDict]:
        """Every pending update, accepted at once: what a load balancer in front of several
        replicas takes from Telegram, each then given to a replica of its own choosing."""
        taken, self.pending = self.pending, []
        self.accepted += taken
        self.changes.notify()
        return copy.deepcopy(taken)

    def resend(self, update: JsonDict) -> None:
        """Queue an update again under its own id, as Telegram does when it missed the 200."""
        self.pending.append(copy.deepcopy(update))
        self.changes.notify()

    async def get_updates(self, params: JsonDict) -> list[JsonDict]:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._set_allowed_updates(params.get("allowed_updates"))
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self.accepted += [u for u in self.pending if u["update_id"] < offset]
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        elif offset < 0:
            self.pending = self.pending[offset:]
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        self._poll_generation += 1
        generation = self._poll_generation
        self.long_polls_waiting += 1
        self.changes.notify()
        try:
            async with asyncio.timeout(timeout):
                await self.changes.wait_until(
                    lambda: (
                        bool(self.pending)
                        or self._closing
                        or self._webhook is not None
                        or self._poll_generation != generation
                    )
                )
        except TimeoutError:
            return []
        finally:
            self.long_polls_waiting -= 1
        if self._poll_generation != generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one "
                "bot instance is running",
            )
        return [] if self._webhook is not None else copy.deepcopy(self.pending[:limit])

    def _set_allowed_updates(self, allowed: object) -> None:
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_ALLOWED_UPDATES

    def _webhook_changed(self, webhook: JsonDict | None) -> bool:
        """A failed delivery is retried early when the bot sets or deletes its webhook."""
        return self._closing or self._webhook is not webhook

    async def set_webhook(self, params: JsonDict) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return await self.delete_webhook(params)
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        if not url.startswith(("http://", "https://")):
            raise bad_request(
                "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            )
        if params.get("drop_pending_updates"):
            self.pending.clear()
        self._set_allowed_updates(params.get("allowed_updates"))
        self._webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": int(params.get("max_connections") or 40),
        }
        self.last_error = None
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_to_webhook())
        self.changes.notify()
        return True

    async def delete_webhook(self, params: JsonDict) -> bool:
        if params.get("drop_pending_updates"):
            self.pending.clear()
        self._webhook = None
        self.changes.notify()
        return True

    def get_webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            info["allowed_updates"] = sorted(self._allowed_updates)
        if self.last_error:
            info["last_error_date"], info["last_error_message"] = self.last_error
        return info

    async def _deliver_to_webhook(self) -> None:
        """POST pending updates to the webhook one at a time, in order, retrying on failure."""
        assert self._session is not None
        while True:
            await self.changes.wait_until(
                lambda: self._closing or (self._webhook is not None and bool(self.pending))
            )
            if self._closing or self._webhook is None:
                return
            webhook, update = self._webhook, self.pending[0]
            headers = {"Content-Type": "application/json"}
            if webhook["secret_token"]:
                headers["X-Telegram-Bot-Api-Secret-Token"] = webhook["secret_token"]
            error: str | None = None
            try:
                async with self._session.post(
                    webhook["url"], data=json.dumps(update), headers=headers
                ) as response:
                    if not 200 <= response.status < 300:
                        error = (
                            f"Wrong response from the webhook: {response.status} {response.reason}"
                        )
            except aiohttp.ClientError as exc:
                error = f"Connection failed: {exc}"
            if error is None:
                self.accepted.append(update)
                if self.pending and self.pending[0] is update:
                    self.pending.pop(0)
                self.changes.notify()
                continue
            self.last_error = (int(time.time()), error)
            self.changes.notify()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_WEBHOOK_RETRY_S):
                    await self.changes.wait_until(partial(self._webhook_changed, webhook))
