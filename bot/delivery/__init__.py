"""What handlers use to talk back to Telegram without wasting its budget.

Per-chat reply order, Telegram HTML split at the message limit, edit pacing,
the "typing…" indicator, per-user rate limits, the requests in flight (for
/cancel) and the counters /metrics exports.
"""
