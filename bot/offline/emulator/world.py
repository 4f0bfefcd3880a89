"""What the emulator knows: people, chats, the messages in them, files, and call records.

Kept apart from the HTTP layer so the Bot API methods and the fake people's actions
read and write the same state, and tests can inspect it directly.
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Literal

ChatType = Literal["private", "group", "supergroup", "channel"]
MemberStatus = Literal["creator", "administrator", "member"]

JsonDict = dict[str, Any]


class ApiError(Exception):
    """A Telegram error answer: HTTP status, description, and optional `parameters`."""

    def __init__(self, code: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_response(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


@dataclass(frozen=True)
class ApiCall:
    """One Bot API request the bot made, recorded when it arrived and was executed."""

    method: str
    params: JsonDict
    at: float
    error: str | None = None
    result: Any = None


@dataclass(frozen=True)
class FakeUser:
    """A Telegram account that is not the bot."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = "en"
    is_bot: bool = False

    def to_dict(self) -> JsonDict:
        user: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key) is not None:
                user[key] = getattr(self, key)
        return user


# Who Telegram names as the sender when someone speaks as a chat: an anonymous group
# admin (the message's sender_chat is the group), or a person posting as a channel.
ANONYMOUS_ADMIN = FakeUser(1087968824, "Group", username="GroupAnonymousBot", is_bot=True)
CHANNEL_BOT = FakeUser(136817688, "Channel", username="Channel_Bot", is_bot=True)


@dataclass(eq=False)
class FakeChat:
    """A chat; `creator_id` and `admin_ids` decide what getChatMember answers."""

    id: int
    type: ChatType
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    creator_id: int | None = None
    admin_ids: set[int] = field(default_factory=set)
    # A forum supergroup: its messages are in topics (`World.create_topic`) or in General.
    is_forum: bool = False

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")

    def status_of(self, user_id: int) -> MemberStatus:
        if user_id == self.creator_id:
            return "creator"
        if user_id in self.admin_ids:
            return "administrator"
        return "member"

    def to_dict(self) -> JsonDict:
        chat: JsonDict = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name"):
            if getattr(self, key) is not None:
                chat[key] = getattr(self, key)
        if self.is_forum:
            chat["is_forum"] = True
        return chat


@dataclass
class StoredFile:
    """A file that a person sent or the bot uploaded, served by getFile and the file URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes

    def to_dict(self) -> JsonDict:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass
class ChatLog:
    """Every message in one chat by id, each bot message's text after every edit, and
    whether the bot is still in the chat."""

    chat: FakeChat
    messages: dict[int, JsonDict] = field(default_factory=dict)
    history: dict[int, list[str]] = field(default_factory=dict)
    # The bot's own messages: in a channel they name no sender, only the channel.
    by_bot: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    next_id: int = 1
    bot_member: bool = True  # False once the bot left (leaveChat): it neither sees nor speaks
    # Message drafts the bot streamed (sendMessageDraft), by draft id: every text, in order.
    drafts: dict[int, list[str]] = field(default_factory=dict)
    # Drafts sent with can_stop (Bot API 10.3): whether each keeps its text on stop; and
    # the drafts the person stopped.
    stoppable_drafts: dict[int, bool] = field(default_factory=dict)
    stopped_drafts: set[int] = field(default_factory=set)
    # A forum's topics: the id of each one's creation message, its message_thread_id.
    topics: set[int] = field(default_factory=set)


class World:
    """People, chats, messages and files; every mutation goes through here."""

    def __init__(self, bot_user: FakeUser) -> None:
        self.bot_user = bot_user
        self.users: dict[int, FakeUser] = {bot_user.id: bot_user}
        self.chats: dict[int, ChatLog] = {}
        self.files: dict[str, StoredFile] = {}
        self.inline_messages: dict[str, JsonDict] = {}
        self._user_ids = itertools.count(1_000_001)
        self._group_ids = itertools.count(1)
        self._file_ids = itertools.count(1)

    def create_user(
        self,
        first_name: str,
        username: str | None = None,
        language_code: str | None = "en",
        *,
        last_name: str | None = None,
        user_id: int | None = None,
    ) -> FakeUser:
        user = FakeUser(
            id=user_id if user_id is not None else next(self._user_ids),
            first_name=first_name,
            username=username,
            last_name=last_name,
            language_code=language_code,
        )
        self.users[user.id] = user
        return user

    def private_chat(self, user: FakeUser) -> FakeChat:
        """The one private chat between `user` and the bot; its id is the user's id."""
        log = self.chats.get(user.id)
        if log is None:
            chat = FakeChat(
                id=user.id, type="private", username=user.username, first_name=user.first_name
            )
            log = self.chats[user.id] = ChatLog(chat)
        return log.chat

    def create_chat(
        self,
        chat_type: ChatType,
        title: str,
        *,
        creator: FakeUser | None = None,
        admins: tuple[FakeUser, ...] = (),
        username: str | None = None,
        forum: bool = False,
    ) -> FakeChat:
        """A group, supergroup or channel; ids follow Telegram's negative numbering. A `forum`
        is a supergroup with topics."""
        if chat_type == "private":
            raise ValueError("use private_chat(user) for private chats")
        if forum and chat_type != "supergroup":
            raise ValueError("only supergroups can be forums")
        number = next(self._group_ids)
        chat_id = -number if chat_type == "group" else -1_000_000_000_000 - number
        chat = FakeChat(
            id=chat_id,
            type=chat_type,
            title=title,
            username=username,
            creator_id=creator.id if creator else None,
            admin_ids={admin.id for admin in admins},
            is_forum=forum,
        )
        self.chats[chat_id] = ChatLog(chat)
        return chat

    def create_topic(self, chat: FakeChat, name: str, creator: FakeUser) -> int:
        """A new topic of a forum, as Telegram makes one: a `forum_topic_created` service
        message whose id is the topic's message_thread_id."""
        if not chat.is_forum:
            raise ValueError("only forums have topics")
        created = self.add_message(
            chat, creator, {"forum_topic_created": {"name": name, "icon_color": 7322096}}
        )
        thread_id = int(created["message_id"])
        stored = self.log(chat.id).messages[thread_id]
        stored.update(message_thread_id=thread_id, is_topic_message=True)
        self.log(chat.id).topics.add(thread_id)
        return thread_id

    def log(self, chat_id: int) -> ChatLog:
        log = self.chats.get(chat_id)
        if log is None:
            raise bad_request("chat not found")
        return log

    def add_message(
        self,
        chat: FakeChat,
        sender: FakeUser | None,
        content: JsonDict,
        reply_to: int | None = None,
        topic: int | None = None,
    ) -> JsonDict:
        """Store a new message in `chat` and return it as Telegram would render it.

        A message in a forum `topic` carries its message_thread_id and, replying to nothing
        else, replies to the topic's creation message, as Telegram renders it.
        """
        log = self.log(chat.id)
        if topic is not None and topic not in log.topics:
            raise bad_request("message thread not found")
        message: JsonDict = {"message_id": log.next_id, "date": int(time.time())}
        log.next_id += 1
        if sender is self.bot_user:
            log.by_bot.add(message["message_id"])
        if sender is self.bot_user and chat.type == "channel":
            # As Telegram: `from` is empty for messages sent to channels, which the channel signs.
            message["sender_chat"] = chat.to_dict()
        elif sender is not None:
            message["from"] = sender.to_dict()
        message["chat"] = chat.to_dict()
        if topic is not None:
            message.update(message_thread_id=topic, is_topic_message=True)
            reply_to = topic if reply_to is None else reply_to
        if reply_to is not None:
            message["reply_to_message"] = self.replied_message(log, reply_to)
        message.update(content)
        log.messages[message["message_id"]] = message
        if sender is self.bot_user and "text" in message:
            log.history[message["message_id"]] = [message["text"]]
        return copy.deepcopy(message)

    def replied_message(self, log: ChatLog, message_id: int) -> JsonDict:
        original = log.messages.get(message_id)
        if original is None or message_id in log.deleted:
            raise bad_request("message to be replied not found")
        replied = copy.deepcopy(original)
        replied.pop("reply_to_message", None)
        return replied

    def message(self, chat_id: int, message_id: int) -> JsonDict | None:
        """The message as it now reads, or None if it never existed or was deleted."""
        log = self.chats.get(chat_id)
        if log is None or message_id in log.deleted:
            return None
        found = log.messages.get(message_id)
        return copy.deepcopy(found) if found is not None else None

    def store_file(self, data: bytes, folder: str, suffix: str) -> StoredFile:
        number = next(self._file_ids)
        stored = StoredFile(
            file_id=f"emu-file-{number}",
            file_unique_id=f"emu-unique-{number}",
            file_path=f"{folder}/file_{number}{suffix}",
            data=data,
        )
        self.files[stored.file_id] = stored
        return stored

    def file_by_path(self, file_path: str) -> StoredFile | None:
        return next((f for f in self.files.values() if f.file_path == file_path), None)
