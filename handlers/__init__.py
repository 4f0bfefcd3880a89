"""Telegram handlers: thin layers that parse, call the pool or the store, and format.

`handlers.commands` holds the commands as people see them, grouped by what they are
for, and none imports another; `handlers.request` is the machinery they share (the
turn, the admission guards, the readers, the lifecycle, streaming and queue status),
which imports no command. This module is the one place that knows them all."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.tasks import TASKS
from handlers.commands import (
    access_commands,
    basics,
    conversations,
    group_settings,
    inline_queries,
    model_commands,
    operators,
    user_settings,
)
from handlers.request import access_gate, chat_images, media_input
from handlers.request.context import BotApplication

# What the handlers below need from Telegram; polling and the webhook ask for exactly these.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY, Update.INLINE_QUERY]


def register_handlers(application: BotApplication) -> None:
    """Every command the bot answers, in one place, so its surface reads at a glance."""
    # Before anything else sees an update: who may use the bot (refused updates stop here).
    application.add_handler(TypeHandler(Update, access_gate.access_gate), group=-2)
    application.add_handler(TypeHandler(Update, basics.track_update, block=False), group=-1)
    commands = {
        "start": basics.start_command,
        "help": basics.help_command,
        "cancel": basics.cancel_command,
        **{name: model_commands.task_handler(spec) for name, spec in TASKS.items()},
        "settings": user_settings.settings_command,
        "model": user_settings.model_command,
        "set": user_settings.set_command,
        "reset": user_settings.reset_command,
        "models": user_settings.models_command,
        "lang": user_settings.lang_command,
        "groupmodel": group_settings.group_model_command,
        "groupset": group_settings.group_set_command,
        "groupreset": group_settings.group_reset_command,
        "groupquota": group_settings.group_quota_command,
        "new": conversations.new_command,
        "forget": conversations.forget_command,
        "system": conversations.system_command,
        "groupsystem": conversations.group_system_command,
        "groupconversation": conversations.group_conversation_command,
        "stats": operators.stats_command,
        "allow": operators.allow_command,
        "deny": operators.deny_command,
        "grant": access_commands.grant_command,
        "revoke": access_commands.revoke_command,
        "invite": access_commands.invite_command,
    }
    new_posts = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
    for name, callback in commands.items():
        application.add_handler(CommandHandler(name, callback, filters=new_posts))
    captioned, voice = (
        media_input.CAPTION_COMMAND & new_posts,
        media_input.PRIVATE_VOICE & new_posts,
    )
    application.add_handler(MessageHandler(captioned, model_commands.caption_command))
    application.add_handler(MessageHandler(voice, model_commands.voice_note))
    talk = filters.TEXT & ~filters.COMMAND & (filters.ChatType.PRIVATE | filters.REPLY)
    application.add_handler(MessageHandler(talk & new_posts, conversations.conversation_message))
    photo_talk = chat_images.PRIVATE_PHOTO_TALK & new_posts
    application.add_handler(MessageHandler(photo_talk, conversations.conversation_message))
    # After every CommandHandler: a command none of them took.
    application.add_handler(MessageHandler(filters.COMMAND & new_posts, basics.unknown_command))
    application.add_handler(CallbackQueryHandler(user_settings.settings_button, pattern=r"^cfg:"))
    application.add_handler(CallbackQueryHandler(basics.stop_button, pattern=r"^stop:"))
    application.add_handler(CallbackQueryHandler(basics.stale_button))
    application.add_handler(InlineQueryHandler(inline_queries.inline_query))
    application.add_error_handler(basics.on_error)
