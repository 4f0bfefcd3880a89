"""Faults on demand: the next calls of a method answer 5xx or 429, are slow, or are dropped.

Telegram is not always well. A test (or the soak) states a plan, `emu.faults.add(
Fault("sendMessage", "status", count=2, status=502))`, and the next two sendMessage
calls answer Bad Gateway without being executed; each rule is used up call by call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "retry_after", "delay", "drop"]


@dataclass
class Fault:
    """`count` calls of `method` ("*": any) meet this fault, then it is spent.

    status: answered `status` (5xx) and not executed; retry_after: 429 with
    `retry_after` seconds, not executed; delay: executed after `delay_s`;
    drop: the connection is closed without an answer, the call not executed.
    """

    method: str
    kind: FaultKind
    count: int = 1
    status: int = 502
    retry_after: int = 1
    delay_s: float = 0.0


@dataclass
class FaultPlan:
    """The faults still to serve, in the order they were added, and how many were served."""

    pending: list[Fault] = field(default_factory=list)
    served: int = 0

    def add(self, *faults: Fault) -> None:
        self.pending.extend(faults)

    def take(self, method: str) -> Fault | None:
        """The fault this call of `method` meets, if any (one use of it is spent)."""
        for fault in self.pending:
            if fault.method in ("*", method) or fault.method.lower() == method.lower():
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                self.served += 1
                return fault
        return None
