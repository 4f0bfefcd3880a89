"""The Grafana dashboard, Prometheus and the compose `monitoring` profile fit the bot's /metrics.

Every PromQL expression may only name metrics the bot exports: the names are
read from the bot's own registry (BotMetrics with a pool watched), never from
a list kept here. There is no Docker engine on the development machines, so
the compose wiring is checked by parsing the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.engine.metrics import PoolMetrics
from bot.monitoring.bot_metrics import BotMetrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hfbot.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


def exported() -> dict[str, set[str]]:
    """Every sample name the bot's /metrics can carry, with the label names it has."""
    metrics = BotMetrics()
    pool = PoolMetrics(
        queue_depths=lambda: {"sentiment:m": 0}, engines_up=lambda: {"sentiment:m": True}
    )
    pool.record_batch(1)
    pool.record_load("sentiment:m", 0.1)
    metrics.watch_pool(pool.snapshot)
    # One sample of each labelled counter, so its label names show.
    metrics.updates.labels("message").inc()
    metrics.command("sentiment", "m", "ok", 0.1)
    metrics.telegram_errors.labels("sendMessage", "429").inc()
    metrics.access_refusals.labels("user").inc()
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
        if not family.samples:  # a family with nothing to report yet still has its names
            for suffix in SUFFIXES[family.type]:
                names[family.name + suffix] = {"le"} if suffix == "_bucket" else set()
    return names


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    found += [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """The metric names an expression selects, each with the label names it uses.

    Strings, range durations and label lists are taken out first; what is left
    that is neither a function (followed by `(`) nor a PromQL keyword is a metric.
    """
    # Grafana's label_values(metric, label) selects `metric` and reads `label`.
    text = re.sub(r"label_values\((\w+),\s*(\w+)\)", r'\1{\2=~""}', expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    grouping = re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text
    )
    grouped = {label.strip() for labels in grouping for label in labels.split(",") if label.strip()}
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, matchers, call = match.groups()
        if call or name in PROMQL_WORDS or name.startswith("__"):
            continue
        used = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, used | grouped))
    return found


def test_the_dashboard_is_grafana_json_with_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "hfbot" and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert len(expressions()) >= 20


@pytest.mark.parametrize("expr", expressions())
def test_every_query_names_only_metrics_and_labels_the_bot_exports(expr: str) -> None:
    names = exported()
    used = selectors(expr)
    assert used, f"no metric in {expr!r}"
    for metric, _ in used:
        assert metric in names, f"{metric} is not exported by the bot"
    label_names = set().union(*(names[metric] for metric, _ in used))
    for _, labels in used:
        assert labels <= label_names, f"{expr!r} uses labels {labels - label_names}"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    metrics = {name for expr in expressions() for name, _ in selectors(expr)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in metrics}
    assert {
        "hfbot_commands",
        "hfbot_command_seconds",
        "hfbot_pool_queue_depth",
        "hfbot_pool_queue_wait_seconds",
        "hfbot_pool_batches",
        "hfbot_pool_model_loads",
        "hfbot_pool_evictions",
        "hfbot_telegram_api_errors",
        "hfbot_pool_up",
        "hfbot_pool_engine_up",
    } <= families


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path (or volume) to container path."""
    return {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}


def test_monitoring_is_an_optional_profile_of_prometheus_and_grafana() -> None:
    services = compose()["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert "profiles" not in services["bot"] and "profiles" not in services["db"]
    for name in ("prometheus", "grafana"):
        for host, _ in mounts(services[name]).items():
            if host.startswith("./"):
                assert (ROOT / host).exists(), host


def test_prometheus_scrapes_the_bots_metrics_port_with_its_token() -> None:
    spec = compose()
    bot, prometheus = spec["services"]["bot"], spec["services"]["prometheus"]
    config_path = {v: h for h, v in mounts(prometheus).items()}["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load((ROOT / config_path).read_text())
    [job] = config["scrape_configs"]
    [target] = job["static_configs"][0]["targets"]
    assert target == f"bot:{bot['environment']['HFBOT_METRICS_PORT']}"
    assert bot["environment"]["HFBOT_METRICS_LISTEN"] == "0.0.0.0", "reachable from Prometheus"
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    [secret] = prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert spec["secrets"][secret] == {"environment": "HFBOT_METRICS_TOKEN"}


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    inside = {container: host for host, container in mounts(grafana).items()}
    provisioning = ROOT / inside["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "hfbot.yml").read_text())[
        "providers"
    ]
    assert (ROOT / inside[provider["options"]["path"]] / DASHBOARD.name) == DASHBOARD
    dashboard = json.loads(DASHBOARD.read_text())
    [chooser] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert chooser["current"]["value"] == datasource["uid"]
