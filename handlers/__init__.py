"""Telegram handlers: thin layers that parse, call the pool or the store, and format."""

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
from handlers import access, admin, common, conversation, inference, inline, media, settings
from handlers.context import BotApplication

# What the handlers below need from Telegram; polling and the webhook ask for exactly these.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY, Update.INLINE_QUERY]


def register_handlers(application: BotApplication) -> None:
    """Every command the bot answers, in one place, so its surface reads at a glance."""
    # Before anything else sees an update: who may use the bot (refused updates stop here).
    application.add_handler(TypeHandler(Update, access.access_gate), group=-2)
    application.add_handler(TypeHandler(Update, common.track_update, block=False), group=-1)
    commands = {
        "start": common.start_command,
        "help": common.help_command,
        "cancel": common.cancel_command,
        # Rows answering with a picture or a voice note wait for their sendPhoto/sendVoice
        # answers (issue 29, part 2); until then their commands are not offered.
        **{
            name: inference.task_handler(spec)
            for name, spec in TASKS.items()
            if spec.output_kind == "text"
        },
        "settings": settings.settings_command,
        "model": settings.model_command,
        "set": settings.set_command,
        "reset": settings.reset_command,
        "models": settings.models_command,
        "lang": settings.lang_command,
        "groupmodel": settings.group_model_command,
        "groupset": settings.group_set_command,
        "groupreset": settings.group_reset_command,
        "groupquota": settings.group_quota_command,
        "new": conversation.new_command,
        "forget": conversation.forget_command,
        "system": conversation.system_command,
        "groupsystem": conversation.group_system_command,
        "groupconversation": conversation.group_conversation_command,
        "stats": admin.stats_command,
        "allow": admin.allow_command,
        "deny": admin.deny_command,
        "grant": access.grant_command,
        "revoke": access.revoke_command,
        "invite": access.invite_command,
    }
    new_posts = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
    for name, callback in commands.items():
        application.add_handler(CommandHandler(name, callback, filters=new_posts))
    captioned, voice = media.CAPTION_COMMAND & new_posts, media.PRIVATE_VOICE & new_posts
    application.add_handler(MessageHandler(captioned, inference.caption_command))
    application.add_handler(MessageHandler(voice, inference.voice_note))
    talk = filters.TEXT & ~filters.COMMAND & (filters.ChatType.PRIVATE | filters.REPLY)
    application.add_handler(MessageHandler(talk & new_posts, conversation.conversation_message))
    # After every CommandHandler: a command none of them took.
    application.add_handler(MessageHandler(filters.COMMAND & new_posts, common.unknown_command))
    application.add_handler(CallbackQueryHandler(settings.settings_button, pattern=r"^cfg:"))
    application.add_handler(CallbackQueryHandler(common.stop_button, pattern=r"^stop:"))
    application.add_handler(CallbackQueryHandler(common.stale_button))
    application.add_handler(InlineQueryHandler(inline.inline_query))
    application.add_error_handler(common.on_error)
