"""What handlers use to talk back to Telegram without wasting its budget.

Per-chat reply order, the outbound scheduler under Telegram's limits, Telegram
HTML split at the message limit, edit pacing, the "typing…" indicator and
answers shared by a busy group. Nothing here decides who may ask (that is
`bot.admission`) or counts what happened (`bot.monitoring`).
"""
