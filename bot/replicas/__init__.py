"""What several `hfbot run` processes of one bot share, through the Redis they are given.

With `HFBOT_REDIS_URL` unset there is one process and nothing here runs. Set, each
process keeps its models, its pool and its Telegram connection, and shares through
Redis what makes them one bot to the people using it: each person's rate limit,
in-flight cap and daily quota holds (`shared_limits`, `shared_quota`), Telegram's budget
(`shared_budget`), each chat's reply order (`chat_order`) and each conversation's turns
(`shared_lines`, waited in by `bot.admission.conversation_turns`), what one replica
tells the others at once (`broadcast`: a setting written, which clears every cache; a
/cancel or ■ Stop, which stops the person's requests on every replica) and, polling,
which one of them polls Telegram (`poll_leader`). While Redis cannot be reached a
replica falls back on its own limits and says so once (`redis_link`), and shares again
as soon as Redis answers; nothing a person saved lives in Redis, so nothing is lost.
"""
