"""Settings, the documents generated from them, the CLI's first lines, and the compose file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.config import MissingTokenError, Settings
from bot.settings_doc import env_example, markdown_table, setting_docs

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_nothing_but_give_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./hfbot.db"
    assert settings.auto_migrate is True


def test_admin_ids_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFBOT_ADMIN_IDS", "12, 34,56")
    assert Settings(_env_file=None).admin_ids == [12, 34, 56]


def test_empty_values_in_env_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFBOT_POOL_MEMORY_BUDGET_MB", "")
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "")
    settings = Settings(_env_file=None)
    assert settings.pool_memory_budget_mb == "auto"
    assert settings.telegram_api_base_url is None


def test_a_missing_token_is_one_clear_sentence() -> None:
    with pytest.raises(MissingTokenError, match="TELEGRAM_BOT_TOKEN is not set"):
        Settings(_env_file=None).require_token()


def _hfbot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hfbot_run_without_a_token_prints_one_line_and_fails(tmp_path: Path) -> None:
    result = _hfbot("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hfbot: TELEGRAM_BOT_TOKEN is not set: put it in .env or the environment "
        "(ask @BotFather for one; see .env.example)."
    ]


def test_hfbot_db_upgrade_current_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert _hfbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=url).returncode == 0
    current = _hfbot("db", "current", cwd=tmp_path, DATABASE_URL=url)
    head = current.stdout.split()[0]
    assert current.stdout.strip() == f"{head} (head: {head})"
    assert _hfbot("db", "downgrade", "base", cwd=tmp_path, DATABASE_URL=url).returncode == 0
    assert _hfbot("db", "current", cwd=tmp_path, DATABASE_URL=url).stdout.startswith("empty")


def test_an_unreachable_database_is_one_line_with_the_password_hidden(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:secret@127.0.0.1:1/none")
    assert main(["db", "upgrade"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("hfbot: cannot reach the database at postgresql+asyncpg://bot:***@")
    assert "secret" not in err
    assert len(err.splitlines()) == 1


def test_a_bad_setting_names_the_variable(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFBOT_POOL_MAX_BATCH_SIZE", "lots")
    assert main(["db", "current"]) == 2
    assert "pool_max_batch_size" in capsys.readouterr().err


def test_env_example_documents_every_setting() -> None:
    assert (ROOT / ".env.example").read_text() == env_example() + "\n"


def test_the_configuration_reference_matches_the_settings() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    table = reference.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert table.strip() == markdown_table()
    assert {doc.env for doc in setting_docs()} >= {"TELEGRAM_BOT_TOKEN", "DATABASE_URL"}


def test_compose_runs_the_bot_on_a_healthy_postgres_with_volumes() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    db, bot = compose["services"]["db"], compose["services"]["bot"]
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert bot["env_file"] == ".env"
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@db:5432/" in bot["environment"]["DATABASE_URL"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in bot["volumes"]}
    assert mounts["hf-cache"] == bot["environment"]["HF_HOME"]
    assert any(volume.startswith("db-data:") for volume in db["volumes"])
    assert set(compose["volumes"]) == {"db-data", "hf-cache", "prometheus-data", "grafana-data"}
    assert (ROOT / bot["build"] / "Dockerfile").exists()
    assert bot["healthcheck"]["test"] == ["CMD", "hfbot", "healthcheck"]
    assert bot["environment"]["HFBOT_METRICS_PORT"] == "8081"


def test_dockerfile_is_slim_non_root_cpu_by_default_and_checks_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    assert 'pip install --index-url "${TORCH_INDEX}" -c constraints.txt torch' in dockerfile
    assert "\nUSER hfbot\n" in dockerfile.replace("\r", "")
    assert dockerfile.index("USER hfbot") > dockerfile.index("RUN pip install -c constraints.txt .")
    assert "HF_HOME=/data/hf-cache" in dockerfile and 'VOLUME ["/data"]' in dockerfile
    assert dockerfile.split("HEALTHCHECK", 1)[1].split("\n")[0].endswith('CMD ["hfbot", "healthcheck"]')
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY")}
    assert {"bot", "handlers", "models", "migrations"} <= copied


def test_the_replicas_example_scales_the_bot_behind_haproxy_with_redis() -> None:
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    extra = yaml.safe_load((ROOT / "docker-compose.replicas.yml").read_text())
    bot = extra["services"]["bot"]
    assert bot["deploy"]["replicas"] == 3
    assert bot["environment"]["HFBOT_REDIS_URL"] == "redis://redis:6379/0"
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert set(extra["services"]) == {"redis", "haproxy", "bot"} and "db" in base["services"]
    [config] = extra["services"]["haproxy"]["volumes"]
    haproxy_cfg = (ROOT / config.split(":")[0]).read_text()
    port = bot["environment"]["HFBOT_WEBHOOK_PORT"]
    assert f"bot:{port}" in haproxy_cfg and "httpchk GET /telegram" in haproxy_cfg
