"""Wiring only: the python-telegram-bot application, serving it (polling or webhook, with
the durable update inbox in front of the handlers),
the web routes and the Bot API request class. Only the CLI and the offline tools import it."""
