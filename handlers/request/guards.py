"""The guards every model call passes, as one list: access, rate limit, daily quota, in-flight cap.

Each way into the pool (a command, a photo or file with a command as its
caption, a voice note, a conversation message, an inline query) runs its
model calls inside `admitted(turn)`, which passes `GUARDS` in order: the first
that refuses raises the UserFacingError that says why, and the request goes
no further. What a request nests inside itself (the transcription of a voice
note a command replies to) runs inside the same admission: it was counted,
held and capped with the request. `run_call` asks `require_admitted()` before
it submits, so a new way in that forgets the guards fails its first test
instead of reaching the pool.

Access is judged first by the gate (`handlers.request.access_gate.access_gate`) for every
update; the guard asks the same cached verdict again, so the pool stays
guarded whatever reaches a handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar

from bot.admission.access_policy import Verdict
from bot.errors import AccessUnknown, NotAllowed
from handlers.request.quota import check_quota
from handlers.request.turn import Turn, subject_of

Guard = Callable[[Turn, AsyncExitStack], Awaitable[None]]

# Set while a request is admitted: what runs inside it (its tasks too) may call the pool.
_ADMITTED: ContextVar[bool] = ContextVar("hfbot_admitted", default=False)


async def access(turn: Turn, held: AsyncExitStack) -> None:
    """Only someone the access rule allows (a newcomer's `/start <code>` runs no model)."""
    subject = subject_of(turn.update)
    verdict = await turn.services.access.verdict(subject) if subject is not None else None
    if verdict is Verdict.REFUSED:
        raise NotAllowed()
    if verdict is Verdict.UNKNOWN:
        raise AccessUnknown()


async def rate_limit(turn: Turn, held: AsyncExitStack) -> None:
    """At most HFBOT_RATE_LIMIT_PER_MINUTE requests a minute per person."""
    await turn.services.limiter.check(turn.owner_id)


async def daily_quota(turn: Turn, held: AsyncExitStack) -> None:
    """The daily quotas that apply here (`handlers.request.quota`); the request holds one unit."""
    await check_quota(turn)


async def in_flight(turn: Turn, held: AsyncExitStack) -> None:
    """At most HFBOT_MAX_IN_FLIGHT_PER_USER requests running per person, for the whole request."""
    limit = turn.services.settings.max_in_flight_per_user
    await held.enter_async_context(turn.services.running.admitted(turn.owner_id, limit))


# The quota comes last: the unit it holds is given back by the request's usage row, which
# every way in writes however the request ends, so no later guard may refuse without one.
GUARDS: tuple[Guard, ...] = (access, rate_limit, in_flight, daily_quota)


@asynccontextmanager
async def admitted(turn: Turn) -> AsyncIterator[None]:
    """Pass every guard, then hold what they hold (an in-flight place) until the block ends."""
    async with AsyncExitStack() as held:
        for guard in GUARDS:
            await guard(turn, held)
        token = _ADMITTED.set(True)
        try:
            yield
        finally:
            _ADMITTED.reset(token)


def require_admitted() -> None:
    """Raise unless the caller runs inside `admitted`: the pool's one door checks its guards."""
    if not _ADMITTED.get():
        raise RuntimeError("a model call outside handlers.request.guards.admitted: it skipped the guards")
