"""What a runner may do for one request of its batch while the batch runs.

Most runners answer a whole batch at once. A runner that works in steps
(a picture drawn step by step, a reply generated token by token) can do more
for each request: tell its progress or its text so far, and stop it between
steps when the person who asked has gone (Stop, /cancel, a timeout). Such a
runner says so with `takes_controls = True`; the micro-batcher then hands it
one `RequestControl` per input, in the batch's order, as `controls=`.

Runners call these from the executor's thread: the callbacks given here are
already safe to call from there (they hop to the event loop), and `stopped`
is a `threading.Event` the event loop sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

TextCallback = Callable[[str], None]
# (step done, steps in all): 1-based, so (n, n) means the last step is done.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RequestControl:
    """One request's side channel into a running batch."""

    on_text: TextCallback | None = None
    on_progress: ProgressCallback | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def text(self, text: str) -> None:
        if self.on_text is not None:
            self.on_text(text)

    def progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)


class Stopped(Exception):
    """Raised inside a runner's step callback to abandon a request nobody waits for."""
