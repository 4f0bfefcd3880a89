"""Trying the bot without Telegram or the Hub: the Bot API emulator, tiny demo models,
sample media and the terminal console."""
