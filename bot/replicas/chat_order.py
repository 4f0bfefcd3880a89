"""A chat's replies in order across replicas: the first reply to an update waits for every
earlier update of that chat, wherever it is being handled.

Each replica puts each update it accepts in its chat's line in Redis
(`bot.replicas.shared_lines`, in Telegram's numbering) as the update is written to
the inbox; the first reply to an update waits until no live earlier update of its
chat remains in the line, and the update leaves the line once that reply is sent
(or its handling ends without one). An update taken over from a replica that died
joins again under its own number, so it is still answered before the chat's later
ones.

The line also says which updates have settled (`bot.delivery.order.Ticket.settle`):
a conversation turn joins its conversation's line only once every earlier update of
its chat, on any replica, has.

Each replica still orders the updates it holds itself (`bot.delivery.order`); this is
the part between replicas. While Redis cannot be reached, each replica orders its own.
"""

from __future__ import annotations

from bot.replicas.redis_link import RedisLink
from bot.replicas.shared_lines import SharedLines


class SharedChatOrder:
    """Where each chat's updates stand, for every replica."""

    def __init__(
        self,
        link: RedisLink,
        *,
        namespace: str = "hfbot",
        lease_s: float = 30.0,
        longest_wait_s: float = 300.0,
    ) -> None:
        self._lines = SharedLines(
            link, f"{namespace}:order", lease_s=lease_s, longest_wait_s=longest_wait_s
        )

    async def arrived(self, chat_id: int, update_id: int) -> None:
        await self._lines.join(str(chat_id), update_id)

    async def wait_turn(self, chat_id: int, update_id: int) -> bool:
        """Until no live earlier update of this chat is being handled on any replica; False
        when Redis cannot be reached (each replica then orders its own)."""
        return await self._lines.wait_first(str(chat_id), update_id) is not None

    async def settle(self, chat_id: int, update_id: int) -> None:
        await self._lines.settle(str(chat_id), update_id)

    async def wait_settled(self, chat_id: int, update_id: int) -> bool:
        """Until every live earlier update of this chat on any replica has settled; False
        when Redis cannot be reached."""
        waited = await self._lines.wait_first(str(chat_id), update_id, settled_only=True)
        return waited is not None

    async def done(self, chat_id: int, update_id: int) -> None:
        await self._lines.leave(str(chat_id), update_id)

    async def renew(self) -> None:
        """Extend the lease of every update this replica is still handling."""
        await self._lines.renew()
