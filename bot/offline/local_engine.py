"""A real `transformers serve` process on 127.0.0.1, serving a model from a local folder.

It is the engine an operator would point the bot at, with its own HTTP API,
streaming and failures: tests and benchmarks drive the bot against it exactly
as in production, with a tiny chat model built offline.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STARTUP_S = 120


@dataclass
class Serving:
    process: subprocess.Popen[str]
    url: str
    model: str

    def kill(self) -> None:
        """Gone at once, as a crashed engine is: no graceful close of open streams."""
        self.process.kill()
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def transformers_serve(model: Path) -> Iterator[Serving]:
    """Start the server, return once it says it is listening, stop it afterwards."""
    port = free_port()
    command = Path(sys.executable).parent / "transformers"
    process = subprocess.Popen(
        [
            str(command),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            str(model),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert process.stdout is not None
    said: list[str] = []
    timer = threading.Timer(STARTUP_S, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            said.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError("transformers serve did not start:\n" + "".join(said[-20:]))
    finally:
        timer.cancel()
    drain = threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True)
    drain.start()
    try:
        yield Serving(process, f"http://127.0.0.1:{port}", str(model))
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
