"""A local Telegram Bot API server for tests and `hfbot console`.

The real PTB Application talks to it over HTTP through `base_url`, so everything the
bot does in production (polling or webhook, multipart uploads, error answers) runs
unchanged; fake people act through methods here and tests await the bot's calls.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import json
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.offline.emulator.faults import FaultPlan
from bot.offline.emulator.flood import FloodControl, FloodError, FloodLimits
from bot.offline.emulator.html import command_entities, parse_html
from bot.offline.emulator.methods import BotApiMethods, UploadedFile, inline_markup
from bot.offline.emulator.updates import Changes, UpdateDelivery
from bot.offline.emulator.world import (
    ANONYMOUS_ADMIN,
    CHANNEL_BOT,
    ApiCall,
    ApiError,
    FakeChat,
    FakeUser,
    JsonDict,
    World,
    bad_request,
)

if TYPE_CHECKING:
    from telegram.ext import ApplicationBuilder

DEFAULT_TOKEN = "7000000001:emulator-test-token"
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_query_id",
        "inline_message_id",
        "file_id",
        "url",
        "secret_token",
        "language_code",
        "next_offset",
        "action",
        "query",
        "ip_address",
        "photo",
        "document",
        "custom_title",
    }
)


if TYPE_CHECKING:
    # Whatever bot, context and data types the application it builds is for.
    AnyBuilder = ApplicationBuilder[Any, Any, Any, Any, Any, Any]


class BotApiEmulator:
    """Telegram, as far as one bot can tell: its API on 127.0.0.1 plus fake people.

    `group_privacy` mirrors BotFather's default: in groups the bot only receives
    commands, replies to its own messages and mentions of it.

    `round_trip_s` puts the bot as far from this Telegram as a real server is from the
    real one (50 to 300 ms): every Bot API call arrives half of it after it was sent
    and its answer comes back the other half later. The call is executed, counted by
    flood control and recorded (`ApiCall.at`) when it arrives, as Telegram counts it.
    It may be changed between calls.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = "hfbot_test_bot",
        first_name: str = "HF Bot",
        group_privacy: bool = True,
        flood_limits: FloodLimits | None = None,
        round_trip_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        refuse_drafts: bool = False,
    ) -> None:
        """`refuse_drafts`: answer sendMessageDraft as a Bot API server older than 9.3 does
        (404, no such method), as some self-hosted ones are."""
        self.token = token
        self.bot_user = FakeUser(
            id=int(token.split(":", 1)[0]),
            first_name=first_name,
            username=username,
            language_code=None,
            is_bot=True,
        )
        self.world = World(self.bot_user)
        # People and chats are the world's; the emulator hands out its constructors as its own.
        self.create_user = self.world.create_user
        self.private_chat = self.world.private_chat
        self.create_chat = self.world.create_chat
        self.create_topic = self.world.create_topic
        self.flood = FloodControl(limits=flood_limits or FloodLimits())
        self.faults = FaultPlan()
        self.round_trip_s = round_trip_s
        self.api = BotApiMethods(
            self.world, self.flood, group_privacy=group_privacy, refuse_drafts=refuse_drafts
        )
        self.group_privacy = group_privacy
        self.calls: list[ApiCall] = []
        self._host, self._port = host, port
        self._url: str | None = None
        self._changes = Changes()
        self.delivery = UpdateDelivery(self._changes)
        self._methods: dict[str, tuple[str, Callable[[JsonDict], Any]]] = {
            name.lower(): (name, method)
            for name, method in {**self.api.table(), **self.delivery.table()}.items()
        }
        self._query_ids = itertools.count(4_000_000_001)
        self._inline_ids = itertools.count(1)
        self._last_injection = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Serve on host:port (port 0 picks a free one; read it back from `url`)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        await self.delivery.start()

    async def stop(self) -> None:
        """Release long polls and the webhook sender, then close the server."""
        await self.delivery.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not started")
        return self._url

    @property
    def base_url(self) -> str:
        """What PTB's `base_url` must be; PTB appends the token."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    def wire(self, builder: AnyBuilder) -> AnyBuilder:
        """Point an ApplicationBuilder at this emulator (token, base_url, base_file_url)."""
        return builder.token(self.token).base_url(self.base_url).base_file_url(self.base_file_url)

    # People and chats ------------------------------------------------------------------

    def make_admin(self, chat: FakeChat, user: FakeUser) -> None:
        chat.admin_ids.add(user.id)

    def bot_is_member(self, chat: FakeChat) -> bool:
        """False once the bot has left the chat (leaveChat)."""
        return self.world.log(chat.id).bot_member

    def send_message(
        self,
        user: FakeUser,
        chat: FakeChat,
        text: str,
        reply_to: int | JsonDict | None = None,
        *,
        entities: list[JsonDict] | None = None,
        as_chat: FakeChat | None = None,
        topic: int | None = None,
    ) -> JsonDict:
        """`user` types `text` into `chat` (into a forum's `topic`, from `create_topic`); a
        leading /command gets its entity as in Telegram.

        `as_chat` sends it as Telegram shows a message of an anonymous admin (the
        group itself) or of someone posting as a channel: `from` is Telegram's
        stand-in account and `sender_chat` the chat spoken as.
        """
        content: JsonDict = {"text": text}
        found = command_entities(text) if entities is None else entities
        if found:
            content["entities"] = found
        if as_chat is not None:
            content["sender_chat"] = as_chat.to_dict()
            user = ANONYMOUS_ADMIN if as_chat is chat else CHANNEL_BOT
        return self._person_message(user, chat, content, reply_to, topic)

    def send_photo(
        self,
        user: FakeUser,
        chat: FakeChat,
        data: bytes,
        *,
        caption: str | None = None,
        width: int = 64,
        height: int = 64,
        reply_to: int | JsonDict | None = None,
    ) -> JsonDict:
        stored = self.world.store_file(data, "photos", ".jpg")
        size = {**_described(stored.to_dict()), "width": width, "height": height}
        return self._person_message(user, chat, _captioned({"photo": [size]}, caption), reply_to)

    def send_voice(
        self,
        user: FakeUser,
        chat: FakeChat,
        data: bytes,
        *,
        duration: int = 1,
        mime_type: str = "audio/ogg",
        reply_to: int | JsonDict | None = None,
    ) -> JsonDict:
        stored = self.world.store_file(data, "voice", ".oga")
        voice = {**_described(stored.to_dict()), "duration": duration, "mime_type": mime_type}
        return self._person_message(user, chat, {"voice": voice}, reply_to)

    def send_document(
        self,
        user: FakeUser,
        chat: FakeChat,
        data: bytes,
        *,
        file_name: str = "file.bin",
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
        reply_to: int | JsonDict | None = None,
    ) -> JsonDict:
        stored = self.world.store_file(data, "documents", "")
        document = {**_described(stored.to_dict()), "file_name": file_name, "mime_type": mime_type}
        return self._person_message(
            user, chat, _captioned({"document": document}, caption), reply_to
        )

    def channel_post(self, chat: FakeChat, text: str) -> JsonDict:
        """A post in a channel; channel posts have no sender, only the chat."""
        if chat.type != "channel":
            raise ValueError("channel posts happen in channels")
        content: JsonDict = {"text": text}
        if entities := command_entities(text):
            content["entities"] = entities
        message = self.world.add_message(chat, None, {"sender_chat": chat.to_dict(), **content})
        if self.bot_is_member(chat):
            self._queue_update("channel_post", message)
        return message

    def press_button(
        self, user: FakeUser, message: JsonDict, callback_data: str, *, forged: bool = False
    ) -> JsonDict:
        """`user` taps the inline button carrying `callback_data` on the message as it now reads.

        `forged` sends the callback query whatever buttons the message has, as a
        modified client can: bots must not trust callback data.
        """
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        current = self.world.message(chat_id, message_id)
        if current is None:
            raise ValueError(f"message {message_id} in chat {chat_id} is gone")
        rows = current.get("reply_markup", {}).get("inline_keyboard", [])
        pressable = forged or any(
            button.get("callback_data") == callback_data for row in rows for button in row
        )
        if not pressable:
            raise ValueError(f"no button with callback_data {callback_data!r} on that message")
        query: JsonDict = {
            "id": str(next(self._query_ids)),
            "from": user.to_dict(),
            "chat_instance": str(abs(chat_id)),
            "data": callback_data,
        }
        inline_id = next(
            (i for i, t in self.world.inline_messages.items() if t == _target(current)), None
        )
        if inline_id is not None:
            query["inline_message_id"] = inline_id
        else:
            query["message"] = current
        self.api.callback_queries[query["id"]] = query
        if self.world.log(chat_id).bot_member:
            self._queue_update("callback_query", query)
        return query

    def stop_generation(self, user: FakeUser, draft_id: int) -> JsonDict:
        """`user` presses Telegram's Stop on a draft the bot is writing in their private chat
        (Bot API 10.3): only on a draft sent with can_stop; the bot gets a
        `stopped_message_generation` update (if it asked for them in allowed_updates)."""
        log = self.world.log(user.id)
        if draft_id not in log.stoppable_drafts:
            raise ValueError(f"draft {draft_id} has no Stop button")
        log.stopped_drafts.add(draft_id)
        stopped: JsonDict = {"chat": log.chat.to_dict(), "draft_id": draft_id}
        self._queue_update("stopped_message_generation", stopped)
        return stopped

    def inline_query(
        self, user: FakeUser, query: str, *, offset: str = "", chat_type: str = "private"
    ) -> JsonDict:
        """`user` types `@bot query` in some chat's input field."""
        inline: JsonDict = {
            "id": str(next(self._query_ids)),
            "from": user.to_dict(),
            "query": query,
            "offset": offset,
            "chat_type": chat_type,
        }
        self.api.inline_queries[inline["id"]] = inline
        self._queue_update("inline_query", inline)
        return inline

    def choose_inline_result(
        self, user: FakeUser, inline_query: JsonDict, result_id: str, chat: FakeChat
    ) -> JsonDict:
        """`user` picks an article the bot offered; it is posted into `chat` via the bot."""
        answer = self.api.inline_answers.get(inline_query["id"])
        if answer is None:
            raise ValueError("the bot has not answered that inline query")
        result = next((r for r in answer["results"] if r.get("id") == result_id), None)
        if result is None or "message_text" not in result.get("input_message_content", {}):
            raise ValueError(f"no text result {result_id!r} in the bot's answer")
        content_params = result["input_message_content"]
        text, entities = content_params["message_text"], content_params.get("entities", [])
        if str(content_params.get("parse_mode", "")).lower() == "html":
            text, entities = parse_html(text)
        content: JsonDict = {"text": text, "via_bot": self.bot_user.to_dict()}
        if entities:
            content["entities"] = entities
        content.update(inline_markup(result))
        message = self.world.add_message(chat, user, content)
        chosen: JsonDict = {
            "result_id": result_id,
            "from": user.to_dict(),
            "query": inline_query["query"],
        }
        if "reply_markup" in content:
            inline_id = f"emu-inline-{next(self._inline_ids)}"
            self.world.inline_messages[inline_id] = _target(message)
            chosen["inline_message_id"] = inline_id
        self._queue_update("chosen_inline_result", chosen)
        return message

    # What the bot did ------------------------------------------------------------------

    def sent_messages(self, chat_id: int) -> list[JsonDict]:
        """The bot's messages in the chat as they now read (after edits, without deleted)."""
        log = self.world.chats.get(chat_id)
        if log is None:
            return []
        return [
            copy.deepcopy(message)
            for message_id, message in log.messages.items()
            if message_id in log.by_bot and message_id not in log.deleted
        ]

    def last_reply(self, chat_id: int) -> JsonDict | None:
        sent = self.sent_messages(chat_id)
        return sent[-1] if sent else None

    def edits(self, chat_id: int, message_id: int) -> list[str]:
        """Every text the bot's message has had, first the original."""
        log = self.world.chats.get(chat_id)
        return list(log.history.get(message_id, [])) if log else []

    def drafts(self, chat_id: int) -> dict[int, list[str]]:
        """Every message draft the bot streamed into a private chat: each text, by draft id."""
        log = self.world.chats.get(chat_id)
        return {draft: list(texts) for draft, texts in log.drafts.items()} if log else {}

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """The command list set for (scope, language), as getMyCommands would answer."""
        return self.api.get_my_commands({"scope": scope, "language_code": language_code})

    def inline_answer(self, inline_query: JsonDict) -> JsonDict | None:
        """The bot's answerInlineQuery parameters for that query, if it answered."""
        return self.api.inline_answers.get(inline_query["id"])

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by getUpdates or accepted by the webhook."""
        return len(self.delivery.pending)

    def hand_over(self) -> list[JsonDict]:
        """Take every pending update, as a load balancer in front of a bot's replicas would,
        to hand each to a replica of the caller's choosing (Telegram counts them accepted)."""
        return self.delivery.hand_over()

    @property
    def accepted_updates(self) -> list[JsonDict]:
        """Updates the bot acknowledged (webhook 2xx, getUpdates offset), in order: what Telegram
        forgot."""
        return list(self.delivery.accepted)

    @property
    def long_polls_waiting(self) -> int:
        """getUpdates requests now held open, waiting for an update."""
        return self.delivery.long_polls_waiting

    @property
    def webhook_error(self) -> str | None:
        """Why the last webhook delivery failed, as getWebhookInfo reports it."""
        return self.delivery.last_error[1] if self.delivery.last_error else None

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - the tests' own bound, part of the API
    ) -> None:
        """Return once `predicate()` holds; it is re-checked whenever the emulator changes.

        E.g. `await emu.wait_until(lambda: emu.long_polls_waiting > 0)` before queueing an
        update that must wake a long poll, or `lambda: emu.pending_updates == 0`.
        """
        async with asyncio.timeout(timeout):
            await self._changes.wait_until(predicate)

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - the tests' own bound, part of the API
        since: int | None = None,
    ) -> list[ApiCall]:
        """The first `count` calls of `method` matching `predicate`, once they have happened.

        Only calls recorded after the latest action of a fake person count, unless
        `since` (an index into `calls`, e.g. `len(emu.calls)` taken earlier) says otherwise.
        Failed calls are included; their `error` says what Telegram answered.
        """
        start = self._last_injection if since is None else since
        wanted = method.lower()

        def matching() -> list[ApiCall]:
            return [
                call
                for call in self.calls[start:]
                if call.method.lower() == wanted and (predicate is None or predicate(call))
            ]

        try:
            async with asyncio.timeout(timeout):
                await self._changes.wait_until(lambda: len(matching()) >= count)
        except TimeoutError:
            seen = ", ".join(call.method for call in self.calls[start:]) or "nothing"
            raise TimeoutError(
                f"waited {timeout}s for {count} matching {method} call(s); the bot called {seen}"
            ) from None
        return matching()[:count]

    # Update delivery -------------------------------------------------------------------

    def _person_message(
        self,
        user: FakeUser,
        chat: FakeChat,
        content: JsonDict,
        reply_to: int | JsonDict | None,
        topic: int | None = None,
    ) -> JsonDict:
        reply_id = reply_to["message_id"] if isinstance(reply_to, dict) else reply_to
        message = self.world.add_message(chat, user, content, reply_id, topic)
        if self._bot_sees(chat, message):
            self._queue_update("message", message)
        return message

    def _bot_sees(self, chat: FakeChat, message: JsonDict) -> bool:
        """Privacy mode: in groups only commands, replies to the bot and mentions arrive.

        As in Telegram, a bot that is a group admin sees everything regardless, and a
        bot that left a chat sees nothing of it.
        """
        if not self.world.log(chat.id).bot_member:
            return False
        if not self.group_privacy or not chat.is_group or self.bot_user.id in chat.admin_ids:
            return True
        text = message.get("text") or message.get("caption") or ""
        command = re.match(r"/\w+(?:@(\w+))?", text)
        if command and (command.group(1) is None or command.group(1) == self.bot_user.username):
            return True
        replied = message.get("reply_to_message", {}).get("from", {})
        return replied.get("id") == self.bot_user.id or f"@{self.bot_user.username}" in text

    def _queue_update(self, kind: str, payload: JsonDict) -> None:
        self._last_injection = len(self.calls)
        self.delivery.queue(kind, payload)

    # HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").to_response(), status=401)
        requested = request.match_info["method"]
        name, method = self._methods.get(requested.lower(), (requested, None))
        params = await _read_params(request)
        leg_s = self.round_trip_s / 2
        if leg_s > 0:
            await asyncio.sleep(leg_s)
        error: ApiError | None = None
        result: Any = None
        fault = self.faults.take(name)
        if fault is not None and fault.kind == "drop":
            self._record(ApiCall(name, params, time.monotonic(), "dropped", None))
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=499)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
        try:
            if fault is not None and fault.kind == "status":
                raise ApiError(fault.status, f"Internal Server Error ({fault.status})")
            if fault is not None and fault.kind == "retry_after":
                raise FloodError(fault.retry_after)
            if method is None:
                raise ApiError(404, "Not Found: method not found")
            result = method(params)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as exc:
            error = exc
        except FloodError as exc:
            error = ApiError(429, str(exc), {"retry_after": exc.retry_after})
        except (KeyError, TypeError, ValueError) as exc:
            error = bad_request(f"invalid parameters for {name}: {exc!r}")
        self._record(
            ApiCall(name, params, time.monotonic(), error.description if error else None, result)
        )
        if leg_s > 0:
            await asyncio.sleep(leg_s)
        if error is not None:
            return web.json_response(error.to_response(), status=error.code)
        return web.json_response({"ok": True, "result": result})

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._changes.notify()

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        stored = self.world.file_by_path(request.match_info["file_path"])
        if stored is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored.data, content_type="application/octet-stream")


async def _read_params(request: web.Request) -> JsonDict:
    """Parameters as Telegram reads them: query string, then a JSON, form or multipart body.

    PTB's HTTPXRequest sends form fields (multipart when there are files) whose values
    are strings, with objects and numbers JSON-encoded, so those are decoded back.
    """
    params: JsonDict = {key: _decode(key, value) for key, value in request.query.items()}
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    if request.can_read_body:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                params[key] = _decode(key, str(value))
    return params


def _decode(key: str, value: str) -> Any:
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _described(file: JsonDict) -> JsonDict:
    return {key: file[key] for key in ("file_id", "file_unique_id", "file_size")}


def _captioned(content: JsonDict, caption: str | None) -> JsonDict:
    if caption:
        content["caption"] = caption
        if entities := command_entities(caption):
            content["caption_entities"] = entities
    return content


def _target(message: JsonDict) -> JsonDict:
    return {"chat_id": message["chat"]["id"], "message_id": message["message_id"]}
