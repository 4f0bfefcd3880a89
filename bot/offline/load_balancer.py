"""A real load balancer in front of several `hfbot run` processes: HAProxy from the system's
packages, for the replica tests and the replica bench (nothing here is needed to run a bot).

It hands each webhook delivery to the next live replica, round-robin, and stops sending
to one within half a second of its death (a health check on the webhook route, which
answers GET with 405), as an operator's HAProxy in front of replicas would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

HAPROXY = shutil.which("haproxy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def haproxy_config(port: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"    server replica{n} 127.0.0.1:{backend} check inter 500ms fall 1 rise 1"
        for n, backend in enumerate(backends)
    )
    return f"""global
    maxconn 512
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend webhook
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /telegram
    http-check expect status 405
{servers}
"""


@contextlib.asynccontextmanager
async def haproxy(workdir: Path, backends: list[int]) -> AsyncIterator[int]:
    """HAProxy running in front of `backends` (ports on 127.0.0.1); yields its own port."""
    if HAPROXY is None:
        raise RuntimeError("HAProxy is not installed (apt-get install haproxy)")
    port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends))
    process = await asyncio.create_subprocess_exec(
        HAPROXY, "-f", str(config), "-db", stdout=asyncio.subprocess.DEVNULL
    )
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
