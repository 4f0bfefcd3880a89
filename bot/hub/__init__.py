"""Which models may run, and getting them onto this machine: vetting, model facts, downloads.

Knows nothing of Telegram: a chat command and `hfbot models fetch` use it alike.
"""
