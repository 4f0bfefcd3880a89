"""The Bot API methods the bot calls, answered with Telegram's results and errors.

Each method takes the decoded parameters and the uploaded files and returns the
`result` Telegram would return, or raises ApiError with Telegram's wording, so the
bot's error handling is exercised against the messages it will really see.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from bot.offline.emulator.flood import FloodControl
from bot.offline.emulator.html import EntityParseError, parse_html
from bot.offline.emulator.world import ApiError, ChatLog, FakeChat, JsonDict, World, bad_request

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
# What sendPhoto takes (the Bot API's documentation of sendPhoto): at most 10 MB, width
# and height at most 10,000 together, neither side more than 20 times the other. Other
# uploads (sendVoice, sendDocument) may be 50 MB; past that the server answers 413.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_RATIO = 20
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_COMMAND_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, as recorded in ApiCall.params."""

    filename: str
    content_type: str
    data: bytes


Method = Callable[[JsonDict], Any]


class BotApiMethods:
    """Answers every Bot API method except update delivery, against a World."""

    def __init__(self, world: World, flood: FloodControl, *, group_privacy: bool) -> None:
        self.world = world
        self.flood = flood
        self.group_privacy = group_privacy
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.callback_queries: dict[str, JsonDict] = {}
        self.answered_callbacks: dict[str, JsonDict] = {}
        self.inline_queries: dict[str, JsonDict] = {}
        self.inline_answers: dict[str, JsonDict] = {}

    def table(self) -> dict[str, Method]:
        """Method name (as Telegram spells it) to implementation."""
        return {
            "getMe": self.get_me,
            "sendMessage": self.send_message,
            "editMessageText": self.edit_message_text,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "sendChatAction": self.send_chat_action,
            "sendMessageDraft": self.send_message_draft,
            "answerCallbackQuery": self.answer_callback_query,
            "answerInlineQuery": self.answer_inline_query,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getChatMember": self.get_chat_member,
            "getChatAdministrators": self.get_chat_administrators,
            "getChat": self.get_chat,
            "leaveChat": self.leave_chat,
            "sendPhoto": self.send_photo,
            "sendVoice": self.send_voice,
            "sendDocument": self.send_document,
            "getFile": self.get_file,
            "close": _true,
            "logOut": _true,
        }

    def get_me(self, params: JsonDict) -> JsonDict:
        return {
            **self.world.bot_user.to_dict(),
            "can_join_groups": True,
            "can_read_all_group_messages": not self.group_privacy,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def send_message(self, params: JsonDict) -> JsonDict:
        log = self._chat_log(params)
        text, entities = prepare_text(params.get("text"), params, MAX_TEXT_LENGTH, "message")
        reply_to = self._reply_target(log, params)
        content: JsonDict = {"text": text}
        if entities:
            content["entities"] = entities
        if "link_preview_options" in params:
            content["link_preview_options"] = params["link_preview_options"]
        content.update(inline_markup(params))
        self.flood.check(log.chat.id, log.chat.is_group)
        return self.world.add_message(log.chat, self.world.bot_user, content, reply_to)

    def edit_message_text(self, params: JsonDict) -> JsonDict | bool:
        log, message = self._editable(params)
        text, entities = prepare_text(params.get("text"), params, MAX_TEXT_LENGTH, "message")
        markup = inline_markup(params)
        unchanged = (
            message.get("text") == text
            and message.get("entities", []) == entities
            and message.get("reply_markup") == markup.get("reply_markup")
        )
        if unchanged:
            raise bad_request(NOT_MODIFIED)
        self.flood.check(log.chat.id, log.chat.is_group)
        message["text"] = text
        _set_or_drop(message, "entities", entities or None)
        _set_or_drop(message, "reply_markup", markup.get("reply_markup"))
        message["edit_date"] = max(message["date"], int(time.time()))
        log.history.setdefault(message["message_id"], []).append(text)
        return self._edit_result(params, log, message)

    def edit_message_reply_markup(self, params: JsonDict) -> JsonDict | bool:
        log, message = self._editable(params)
        markup = inline_markup(params).get("reply_markup")
        if message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        self.flood.check(log.chat.id, log.chat.is_group)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = max(message["date"], int(time.time()))
        return self._edit_result(params, log, message)

    def delete_message(self, params: JsonDict) -> bool:
        log = self._chat_log(params)
        message_id = params.get("message_id")
        if message_id not in log.messages or message_id in log.deleted:
            raise bad_request("message to delete not found")
        log.deleted.add(message_id)
        return True

    def send_chat_action(self, params: JsonDict) -> bool:
        self._chat_log(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.flood.check_overall()
        return True

    def send_message_draft(self, params: JsonDict) -> bool:
        """Bot API 9.3: a message being written, shown in a private chat as it grows.

        Drafts exist in private chats only, need a non-zero draft_id, and obey the
        message length limit; they are counted against the overall budget only
        (they replace, not add, a chat's messages). Sending the real message ends them.
        """
        log = self._chat_log(params)
        if log.chat.type != "private":
            raise bad_request("message drafts can be sent to private chats only")
        draft_id = int(params.get("draft_id") or 0)
        if draft_id == 0:
            raise bad_request("draft_id must be non-zero")
        text, _ = prepare_text(params.get("text"), params, MAX_TEXT_LENGTH, "message")
        self.flood.check_overall()
        log.drafts.setdefault(draft_id, []).append(text)
        return True

    def answer_callback_query(self, params: JsonDict) -> bool:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self.callback_queries or query_id in self.answered_callbacks:
            raise bad_request(QUERY_TOO_OLD)
        if len(str(params.get("text", ""))) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.answered_callbacks[query_id] = params
        return True

    def answer_inline_query(self, params: JsonDict) -> bool:
        query_id = str(params.get("inline_query_id"))
        if query_id not in self.inline_queries or query_id in self.inline_answers:
            raise bad_request(QUERY_TOO_OLD)
        results = params.get("results")
        if not isinstance(results, list):
            raise bad_request('field "results" must be an Array')
        if len(results) > 50:
            raise bad_request("RESULTS_TOO_MUCH")
        ids = [result.get("id") for result in results]
        if len(set(ids)) != len(ids):
            raise bad_request("RESULT_ID_DUPLICATE")
        self.inline_answers[query_id] = params
        return True

    def set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            name = command.get("command", "")
            if not 1 <= len(name) <= 32 or not set(name) <= _COMMAND_NAME:
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_commands_key(params)] = commands
        return True

    def get_my_commands(self, params: JsonDict) -> list[JsonDict]:
        return self.commands.get(_commands_key(params), [])

    def delete_my_commands(self, params: JsonDict) -> bool:
        self.commands.pop(_commands_key(params), None)
        return True

    def get_chat_member(self, params: JsonDict) -> JsonDict:
        log = self._chat_log(params)
        user = self.world.users.get(params.get("user_id"))  # type: ignore[arg-type]
        if user is None:
            raise bad_request("user not found")
        return chat_member(log.chat, user.to_dict())

    def get_chat_administrators(self, params: JsonDict) -> list[JsonDict]:
        chat = self._chat_log(params).chat
        if chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        ids = ([chat.creator_id] if chat.creator_id is not None else []) + sorted(chat.admin_ids)
        return [chat_member(chat, self.world.users[i].to_dict()) for i in ids]

    def get_chat(self, params: JsonDict) -> JsonDict:
        chat = self._chat_log(params).chat
        return {
            **chat.to_dict(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def leave_chat(self, params: JsonDict) -> bool:
        """The bot leaves a group, supergroup or channel; it then neither sees nor speaks there."""
        log = self._chat_log(params)
        if log.chat.type == "private":
            raise bad_request("chat member status can't be changed in private chats")
        log.bot_member = False
        return True

    def send_photo(self, params: JsonDict) -> JsonDict:
        return self._send_media(params, "photo", ".jpg")

    def send_voice(self, params: JsonDict) -> JsonDict:
        return self._send_media(params, "voice", ".oga")

    def send_document(self, params: JsonDict) -> JsonDict:
        return self._send_media(params, "document", "")

    def get_file(self, params: JsonDict) -> JsonDict:
        stored = self.world.files.get(str(params.get("file_id")))
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.to_dict()

    def _send_media(self, params: JsonDict, kind: str, suffix: str) -> JsonDict:
        log = self._chat_log(params)
        media = params.get(kind)
        if isinstance(media, UploadedFile):
            check_upload(kind, media.data)
            stored = self.world.store_file(media.data, f"{kind}s", suffix)
            file_name, mime_type = media.filename, media.content_type
        elif isinstance(media, str) and media in self.world.files:
            stored = self.world.files[media]
            file_name, mime_type = stored.file_path.rsplit("/", 1)[-1], "application/octet-stream"
        elif isinstance(media, str) and media.startswith(("http://", "https://")):
            stored = self.world.store_file(b"", f"{kind}s", suffix)
            file_name, mime_type = media.rsplit("/", 1)[-1], "application/octet-stream"
        else:
            raise bad_request(f"there is no {kind} in the request")
        caption, entities = prepare_text(
            params.get("caption"), params, MAX_CAPTION_LENGTH, "caption", allow_empty=True
        )
        reply_to = self._reply_target(log, params)
        described = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        content: JsonDict
        if kind == "photo":
            width, height = picture_sides(stored.data) or (1, 1)
            content = {"photo": [{**described, "width": width, "height": height}]}
        elif kind == "voice":
            duration = int(params.get("duration") or 0)
            content = {"voice": {**described, "duration": duration, "mime_type": "audio/ogg"}}
        else:
            content = {"document": {**described, "file_name": file_name, "mime_type": mime_type}}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        content.update(inline_markup(params))
        self.flood.check(log.chat.id, log.chat.is_group)
        return self.world.add_message(log.chat, self.world.bot_user, content, reply_to)

    def _chat_log(self, params: JsonDict) -> ChatLog:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for log in self.world.chats.values():
                if log.chat.username == chat_id[1:]:
                    return _member(log)
            raise bad_request("chat not found")
        if not isinstance(chat_id, int):
            raise bad_request("chat_id is empty" if chat_id is None else "chat not found")
        return _member(self.world.log(chat_id))

    def _reply_target(self, log: ChatLog, params: JsonDict) -> int | None:
        reply = params.get("reply_parameters") or {}
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        allow_missing = reply.get(
            "allow_sending_without_reply", params.get("allow_sending_without_reply", False)
        )
        if message_id not in log.messages or message_id in log.deleted:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return int(message_id)

    def _editable(self, params: JsonDict) -> tuple[ChatLog, JsonDict]:
        """The stored message an edit targets, by chat+message id or by inline_message_id."""
        inline_id = params.get("inline_message_id")
        if inline_id is not None:
            target = self.world.inline_messages.get(str(inline_id))
            if target is None:
                raise bad_request("MESSAGE_ID_INVALID")
            log, message_id = self.world.log(target["chat_id"]), target["message_id"]
        else:
            log, message_id = self._chat_log(params), params.get("message_id")
        message = log.messages.get(message_id)
        if message is None or message_id in log.deleted:
            raise bad_request("message to edit not found")
        via_bot = message.get("via_bot", {}).get("id")
        ours = message["message_id"] in log.by_bot or via_bot == self.world.bot_user.id
        if not ours and message["chat"]["type"] != "channel":
            raise bad_request("message can't be edited")
        return log, message

    def _edit_result(self, params: JsonDict, log: ChatLog, message: JsonDict) -> JsonDict | bool:
        if params.get("inline_message_id") is not None:
            return True
        edited = self.world.message(log.chat.id, message["message_id"])
        assert edited is not None
        return edited


def check_upload(kind: str, data: bytes) -> None:
    """Refuse an upload as Telegram does: past 50 MB at all, or a photo it will not show."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    if kind != "photo":
        return
    if len(data) > MAX_PHOTO_BYTES:
        raise bad_request("PHOTO_SAVE_FILE_INVALID")
    sides = picture_sides(data)
    if sides is None:
        raise bad_request("IMAGE_PROCESS_FAILED")
    width, height = sides
    if width + height > MAX_PHOTO_SIDES or max(width, height) > MAX_PHOTO_RATIO * min(width, height):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")


def picture_sides(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header (nothing decoded); None if it is no image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def prepare_text(
    text: object,
    params: JsonDict,
    max_length: int,
    what: str,
    *,
    allow_empty: bool = False,
) -> tuple[str, list[JsonDict]]:
    """Apply parse_mode and Telegram's checks; return the text users see and its entities."""
    if text is None and allow_empty:
        return "", []
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    entity_key = "caption_entities" if what == "caption" else "entities"
    entities: list[JsonDict] = list(params.get(entity_key) or [])
    parse_mode = str(params.get("parse_mode") or "").lower()
    if parse_mode == "html":
        try:
            text, entities = parse_html(text)
        except EntityParseError as error:
            raise bad_request(f"can't parse entities: {error}") from None
    elif parse_mode not in ("", "markdown", "markdownv2"):
        raise bad_request("unsupported parse_mode")
    if not text.strip() and not allow_empty:
        raise bad_request(f"{what} text is empty")
    if len(text) > max_length:
        raise bad_request(
            f"{what} is too long" if what == "message" else "message caption is too long"
        )
    return text, entities


def inline_markup(params: JsonDict) -> JsonDict:
    """The reply_markup a Message carries: only inline keyboards are echoed back, checked."""
    markup = params.get("reply_markup")
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise bad_request("can't parse reply keyboard markup JSON object") from None
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return {}
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise bad_request("BUTTON_TEXT_INVALID")
            if len(BUTTON_ACTIONS.intersection(button)) != 1:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
    return {"reply_markup": {"inline_keyboard": rows}}


def chat_member(chat: FakeChat, user: JsonDict) -> JsonDict:
    """A ChatMember of the status the test configured on the chat."""
    status = chat.status_of(user["id"])
    if status == "creator":
        return {"status": "creator", "user": user, "is_anonymous": False}
    if status == "member":
        return {"status": "member", "user": user}
    rights = (
        "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members "
        "can_change_info can_invite_users can_post_stories can_edit_stories can_delete_stories "
        "can_pin_messages"
    ).split()
    return {
        "status": "administrator",
        "user": user,
        "can_be_edited": False,
        "is_anonymous": False,
        "can_promote_members": False,
        **dict.fromkeys(rights, True),
    }


def _member(log: ChatLog) -> ChatLog:
    """The chat, unless the bot left it: then Telegram answers 403 to anything about it."""
    if not log.bot_member:
        raise ApiError(403, f"Forbidden: bot is not a member of the {log.chat.type} chat")
    return log


def _commands_key(params: JsonDict) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


def _set_or_drop(message: JsonDict, key: str, value: object) -> None:
    if value is None:
        message.pop(key, None)
    else:
        message[key] = value


def _true(params: JsonDict) -> bool:
    return True
