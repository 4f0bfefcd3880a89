"""`hfbot models check` and `hfbot models fetch --defaults` against a Hub stand-in holding every
model the bot offers: one row each, the totals, the exit codes an operator's script reads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants

from bot.config import Settings
from bot.hub.check import check_command, fetch_defaults_command, offered_models
from bot.hub.hub_access import HubAccess
from bot.offline import demo_models
from bot.tasks import TASKS, TRANSLATION_TARGETS, VISION_CHAT_MODEL
from tests.support.hub_standin import (
    HubStandIn,
    config_bytes,
    safetensors_bytes,
    serve_in_thread,
)

WEIGHTS = safetensors_bytes({"w": (4, 4)})
BUDGET = 8 * 2**30
ARCHITECTURES = {
    "sentiment": "DistilBertForSequenceClassification",
    "generate": "GPT2LMHeadModel",
    "chat": "LlamaForCausalLM",
    "summarize": "BartForConditionalGeneration",
    "translate": "MarianMTModel",
    "ner": "BertForTokenClassification",
    "fill": "RobertaForMaskedLM",
    "classify": "BartForSequenceClassification",
    "ask": "DistilBertForQuestionAnswering",
    "whatis": "ViTForImageClassification",
    "caption": "VisionEncoderDecoderModel",
    "labels": "CLIPModel",
    "transcribe": "WhisperForConditionalGeneration",
    "say": "VitsModel",
}


@pytest.fixture(scope="module")
def pipeline_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """/imagine's default is a diffusers pipeline: a folder per component, as diffusers saves it."""
    folder = demo_models.tiny_picture_maker(tmp_path_factory.mktemp("pipeline"))
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def add_offered(hub: HubStandIn, settings: Settings, pipeline: dict[str, bytes]) -> None:
    """Every model the bot offers, with safetensors on main."""
    for offered in offered_models(settings):
        spec = TASKS[offered.task]
        if spec.name == "imagine":
            hub.add(offered.model_id, pipeline, pipeline_tag="text-to-image")
            continue
        seeing = offered.model_id == VISION_CHAT_MODEL
        files = {
            "config.json": config_bytes(
                "Idefics3ForConditionalGeneration" if seeing else ARCHITECTURES[spec.name]
            ),
            "model.safetensors": WEIGHTS,
            "tokenizer.json": b"{}",
            "chat_template.jinja": b"{{ messages }}",
        }
        tag = "image-text-to-text" if seeing else spec.model_kind.tags[0]
        hub.add(offered.model_id, files, pipeline_tag=tag, num_parameters=16)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStandIn]:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with serve_in_thread(HubStandIn()) as standin:
        yield standin


def access_for(url: str, tmp_path: Path) -> HubAccess:
    return HubAccess(endpoint=url, cache_dir=tmp_path / "cache")


def rows(out: str) -> list[list[str]]:
    return [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["default"], ["override"], ["target"])
    ]


def test_every_offered_model_gets_a_row_with_its_commit_and_size_and_the_totals(
    hub: HubStandIn,
    pipeline_files: dict[str, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(_env_file=None, default_models={"sentiment": "acme/my-sentiment"})
    add_offered(hub, settings, pipeline_files)

    code = check_command(settings, BUDGET, access_for(hub.url, tmp_path))

    out = capsys.readouterr().out
    table = rows(out)
    assert code == 0
    assert len(table) == len(offered_models(settings))
    assert {row[0] for row in table} == {"default", "override", "target"}
    assert all("accepted" in row for row in table)
    assert all(any(cell.startswith("main@0123456789ab") for cell in row) for row in table)
    assert f"{len(table) - 0} models to download" in out
    assert "Memory, estimated" in out and "Memory budget:" in out


def test_a_refused_default_fails_the_check_and_a_conversion_pr_is_shown_as_the_commit(
    hub: HubStandIn,
    pipeline_files: dict[str, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(_env_file=None)
    add_offered(hub, settings, pipeline_files)
    caption = hub.repos[TASKS["caption"].default_model]
    caption.files["pytorch_model.bin"] = caption.files.pop("model.safetensors")
    pr = caption.open_pull_request({"model.safetensors": WEIGHTS})
    labels = hub.repos[TASKS["labels"].default_model]
    labels.files["pytorch_model.bin"] = labels.files.pop("model.safetensors")

    code = check_command(settings, BUDGET, access_for(hub.url, tmp_path))

    out = capsys.readouterr().out
    by_label = {row[1]: row for row in rows(out)}
    assert code == 1
    assert f"PR#{pr.num}@{pr.commit[:12]}" in by_label["caption"]
    assert "refused" in by_label["labels"]
    assert "has no safetensors weights" in out
    assert "1 refused" in out


def test_a_refused_translation_target_is_reported_without_failing_the_check(
    hub: HubStandIn,
    pipeline_files: dict[str, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(_env_file=None)
    add_offered(hub, settings, pipeline_files)
    french = hub.repos[TRANSLATION_TARGETS["fr"]]
    french.files["pytorch_model.bin"] = french.files.pop("model.safetensors")

    assert check_command(settings, BUDGET, access_for(hub.url, tmp_path)) == 0
    assert "refused" in {row[2]: row for row in rows(capsys.readouterr().out)}["fr:"]


def test_without_a_network_check_and_fetch_say_so_in_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    nowhere = access_for("http://127.0.0.1:9", tmp_path)
    settings = Settings(_env_file=None)

    assert check_command(settings, BUDGET, nowhere) == 2
    assert fetch_defaults_command(settings, nowhere) == 2
    from bot.hub.prefetch import fetch_command

    assert fetch_command(["acme/one"], settings, nowhere) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("hfbot: cannot reach http://127.0.0.1:9") for line in lines)
    assert all("HF_ENDPOINT" in line for line in lines)


def test_fetch_defaults_downloads_every_model_once_under_one_bar_and_a_rerun_fetches_nothing(
    hub: HubStandIn,
    pipeline_files: dict[str, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(_env_file=None)
    add_offered(hub, settings, pipeline_files)
    access = access_for(hub.url, tmp_path)

    assert fetch_defaults_command(settings, access) == 0
    out, err = capsys.readouterr()
    fetched = [line.split("\t") for line in out.splitlines()]
    downloads = hub.count("/model.safetensors", "GET")

    assert len(fetched) == len({o.model_id for o in offered_models(settings)})
    assert all(
        (Path(folder) / "model.safetensors").is_file()
        or (Path(folder) / "model_index.json").is_file()
        for _, folder in fetched
    )
    assert downloads == sum(
        name.endswith("model.safetensors") and not name.endswith("pytorch_model.safetensors")
        for repo in hub.repos.values()
        for name in repo.files
    )
    assert err.count("models:") >= 1

    assert fetch_defaults_command(settings, access) == 0
    assert hub.count("/model.safetensors", "GET") == downloads


def test_hfbot_models_check_on_the_command_line_reads_hf_endpoint(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HFBOT_", "HF_", "TELEGRAM_", "TRANSFORMERS_OFFLINE"))
    }
    env.update({"PYTHONPATH": str(root), "HF_ENDPOINT": "http://127.0.0.1:9"})

    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "models", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith("hfbot: cannot reach http://127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1
