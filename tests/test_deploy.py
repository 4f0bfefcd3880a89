"""What an operator deploys: .env.example, the image's defaults, alembic.ini, the health check.

The image itself is built and run by deploy/smoke-image.sh (minutes, so not
here); these are the pieces of it that can be checked in a second.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from telegram.ext import ApplicationBuilder

from bot.app.build import build_application
from bot.app.serve import serve
from bot.config import Settings
from bot.offline.emulator import BotApiEmulator
from handlers.request.context import services_of
from models.opening import sqlite_path
from tests.app.test_first_run import environment, free_port
from tests.support.harness import bot_settings, break_database

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV sets: the image's own defaults."""
    block = DOCKERFILE.split("\nENV ", 1)[1].split("\n\n", 1)[0]
    pairs = re.findall(r"([A-Z_]+)=(\S+)", block.replace("\\\n", " "))
    return dict(pairs)


def set_lines(path: Path) -> dict[str, str]:
    """The variables a copy of this env file sets (its uncommented lines)."""
    lines = path.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_a_copy_of_env_example_sets_only_the_token() -> None:
    assert set_lines(ROOT / ".env.example") == {"TELEGRAM_BOT_TOKEN": ""}
    assert not set(set_lines(ROOT / ".env.example")) & set(image_environment()), (
        "docker run --env-file .env.example must not override the image's defaults"
    )


def test_a_copy_of_env_example_changes_no_default() -> None:
    copied = Settings(_env_file=ROOT / ".env.example")
    assert copied.model_dump() == Settings(_env_file=None).model_dump()


def test_the_image_keeps_sqlite_and_the_model_cache_in_its_volume_and_serves_healthz(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = image_environment()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    database = sqlite_path(settings.database_url)
    assert database is not None and database.parent == Path("/data")
    assert env["HF_HOME"].startswith("/data/")
    assert 'VOLUME ["/data"]' in DOCKERFILE and "chown -R hfbot /data" in DOCKERFILE
    assert settings.metrics_port == 8081, "the HEALTHCHECK has a /healthz to ask"


def test_every_cuda_index_named_carries_the_pinned_torch() -> None:
    """PyTorch publishes torch 2.13 for CUDA 12.6, 12.8 and 13.0 (not for cu124 and older)."""
    pinned = (ROOT / "constraints.txt").read_text()
    assert "torch==2.13.0" in pinned
    named: set[str] = set()
    for name in ("Dockerfile", "docker-compose.yml", "Makefile", "README.md"):
        named |= set(re.findall(r"download\.pytorch\.org/whl/(cu\d+)", (ROOT / name).read_text()))
    for doc in (ROOT / "docs").glob("*.md"):
        named |= set(re.findall(r"download\.pytorch\.org/whl/(cu\d+)", doc.read_text()))
    assert named and named <= {"cu126", "cu128", "cu130"}, named


def test_alembic_ini_works_on_the_database_the_settings_name(tmp_path: Path) -> None:
    alembic = str(Path(sys.executable).with_name("alembic"))
    env = environment(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}")
    for args in (["upgrade", "head"], ["check"]):
        done = subprocess.run(
            [alembic, "-c", str(ROOT / "alembic.ini"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert "No new upgrade operations detected" in done.stdout + done.stderr
    assert (tmp_path / "dev.db").exists()


async def hfbot(cwd: Path, *args: str, **settings: str) -> tuple[int, str]:
    """`hfbot …` as a process of its own (the bot under test runs in this event loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=cwd,
        env=environment(**settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode().strip()


async def test_hfbot_healthcheck_asks_the_running_bot_and_says_what_fails(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, tiny_models_dir, metrics_port=port)
    async with BotApiEmulator() as emu:
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()))
        stop = asyncio.Event()
        running = asyncio.create_task(serve(settings, app, stop))
        try:
            await emu.wait_for("getUpdates", since=0, timeout=60)
            healthy = await hfbot(tmp_path, "healthcheck", HFBOT_METRICS_PORT=str(port))
            services = services_of(app)
            assert services is not None
            break_database(services)
            unhealthy = await hfbot(tmp_path, "healthcheck", HFBOT_METRICS_PORT=str(port))
        finally:
            stop.set()
            await running
    gone = await hfbot(tmp_path, "healthcheck", HFBOT_METRICS_PORT=str(port))
    unset = await hfbot(tmp_path, "healthcheck", HFBOT_METRICS_PORT="")

    url = f"http://127.0.0.1:{port}/healthz"
    assert healthy == (0, f"healthy ({url})")
    assert unhealthy == (1, f"hfbot: unhealthy, {url} answered 503: database unreachable")
    assert gone[0] == 1 and gone[1].startswith(f"hfbot: no answer from {url} (")
    assert unset == (
        1,
        "hfbot: no /healthz to ask: polling serves it only with HFBOT_METRICS_PORT set",
    )


def test_the_smoke_script_and_the_systemd_unit_are_well_formed() -> None:
    smoke = ROOT / "deploy" / "smoke-image.sh"
    assert os.access(smoke, os.X_OK)
    assert subprocess.run(["bash", "-n", str(smoke)], capture_output=True).returncode == 0
    unit = (ROOT / "deploy" / "hfbot.service").read_text()
    sections = re.findall(r"^\[(\w+)\]$", unit, flags=re.M)
    assert sections == ["Unit", "Service", "Install"]
    assert re.search(r"^ExecStart=\S*\.venv/bin/hfbot run$", unit, flags=re.M)
    assert re.search(r"^KillSignal=SIGTERM$", unit, flags=re.M)
