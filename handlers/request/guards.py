"""The admission guards every model call passes before it reaches the pool.

Who may use the bot at all is decided earlier, for every update, by the access
gate (`handlers.request.access_gate`). A model call then passes, in order: the
person's rate limit, their daily quotas, and their cap on requests in flight
(held until the answer is out, so /cancel can stop it). The order is the cheap
refusals first: a rate-limited flood costs no database read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from handlers.request.quota import check_quota
from handlers.request.turn import Turn


@asynccontextmanager
async def admitted(turn: Turn) -> AsyncIterator[None]:
    """Inside: this person's request counts against every limit they have."""
    services = turn.services
    services.limiter.check(turn.owner_id)
    await check_quota(turn)
    with services.running.admitted(turn.owner_id, services.settings.max_in_flight_per_user):
        yield
