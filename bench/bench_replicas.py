"""What sharing through Redis costs one request: the admission and one Telegram call.

Side by side in one run, in interleaved rounds (medians of the rounds' medians): a bot
alone (its own rate limit, in-flight cap and outbound windows) and a replica sharing
them through the Redis on 127.0.0.1:6379 (`bot.replicas`): per request, the rate-limit
check, taking and giving back an in-flight place and a daily-quota hold, and one Bot API
call's slot in the
shared windows taken and scored (the call itself is not made: what is measured is what
the replica adds before and after it).

    .venv/bin/python -m bench.bench_replicas [--rounds 7] [--requests 400] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

from bench.results import write_section
from bot.admission.in_flight import RunningRequests
from bot.admission.rate_limit import UserRateLimiter
from bot.delivery.outbound import Priority
from bot.replicas.redis_link import RedisLink
from bot.replicas.shared_budget import SharedTelegramBudget
from bot.replicas.shared_limits import SharedRateLimiter, SharedRunningRequests
from bot.replicas.shared_quota import SharedQuotaHolds
from models.usage import LocalHolds, QuotaHold, QuotaRoom

REDIS = "redis://127.0.0.1:6379/0"
HEADING = "## Replicas: what Redis adds to a request"


ROOMS = [QuotaRoom(limit=10**6, chat_id=None, answered=0)]


async def alone(requests: int) -> list[float]:
    limiter, running = UserRateLimiter(10**6), RunningRequests()
    holds = LocalHolds(time.monotonic)
    took = []
    for n in range(requests):
        started = time.perf_counter()
        await limiter.check(n % 50)
        async with running.admitted(n % 50, 3):
            hold = QuotaHold(n % 50, -5, 60)
            assert await holds.take(hold, ROOMS) is None
            await holds.release(hold)
        took.append(time.perf_counter() - started)
    return took


async def shared(requests: int, link: RedisLink, namespace: str) -> list[float]:
    limiter = SharedRateLimiter(link, 10**6, UserRateLimiter(10**6), namespace=namespace)
    running = SharedRunningRequests(link, namespace=namespace)
    budget = SharedTelegramBudget(link, namespace=namespace)
    holds = SharedQuotaHolds(link, LocalHolds(time.monotonic), namespace=namespace)
    took = []
    for _ in range(requests):
        person = random.randrange(10**12)
        started = time.perf_counter()
        await limiter.check(person)
        async with running.admitted(person, 3):
            hold = QuotaHold(person, -5, 60)
            assert await holds.take(hold, ROOMS) is None
            await holds.release(hold)
            call = await budget.take(Priority.ANSWER, None)
            assert call, "Redis answered"
            await budget.returned(call, None, counted=True, lead_s=0.0)
        took.append(time.perf_counter() - started)
    return took


async def main(rounds: int, requests: int) -> str:
    link = RedisLink(REDIS)
    namespace = f"bench:{uuid.uuid4().hex}"
    load_before = os.getloadavg()[0]
    medians: dict[str, list[float]] = {"alone": [], "shared": []}
    try:
        for index in range(rounds):
            order = ["alone", "shared"][:: 1 if index % 2 == 0 else -1]
            for name in order:
                took = (
                    await alone(requests)
                    if name == "alone"
                    else await shared(requests, link, namespace)
                )
                medians[name].append(statistics.median(took) * 1000)
    finally:
        await link.close()
    load = (load_before, os.getloadavg()[0])
    one, many = statistics.median(medians["alone"]), statistics.median(medians["shared"])
    return f"""{HEADING}

`python -m bench.bench_replicas --rounds {rounds} --requests {requests}`: per request, a
bot alone (its own rate limit, in-flight cap and quota holds) against a replica sharing
them and one Bot API call's slot through Redis on the same machine; medians of {rounds} interleaved
rounds of {requests} requests each, load average {load[0]:.1f} → {load[1]:.1f}.

| | per request (median) |
|---|---|
| alone | {one:.3f} ms |
| replica (Redis) | {many:.3f} ms |
| added by Redis | {many - one:.3f} ms |

The added time is seven Redis calls (the `limits` moving-window hit, an in-flight place
and a quota hold each taken and given back, a Telegram slot taken and scored), each a
script run over a local socket, plus the task that renews the in-flight lease (a
conversation's turn and a chat's order add a few more where they apply): milliseconds,
beside a model call (tens to hundreds of ms) and a Bot API round trip (100–250 ms). Each further Telegram
call of a request adds two Redis calls.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main(args.rounds, args.requests))
    print(report)
    if args.write:
        write_section(HEADING, report)
