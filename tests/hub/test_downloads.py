"""Pre-downloading models: safe files only, progress in bytes, one throttled status message."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from huggingface_hub import constants

from bot.config import Settings
from bot.errors import GatedModel, ModelTooLarge, UnknownModel, UnsafeWeights
from bot.hub.downloads import (
    DownloadPlan,
    ModelDownloads,
    ThrottledStatus,
    describe_progress,
    downloaded_folder,
    fetch_model,
    keep_within_budget,
    plan_download,
)
from bot.hub.hub_access import HubAccess
from bot.hub.prefetch import fetch_command
from bot.hub.vetting import ModelVetter
from tests.support.hub_standin import (
    COMMIT,
    HubStandIn,
    config_bytes,
    safetensors_bytes,
    serve_in_thread,
)

BIG_WEIGHTS = safetensors_bytes({"w": (4,)}, padding=25 * 2**20)


def repo_files(weights: bytes = BIG_WEIGHTS) -> dict[str, bytes]:
    return {
        "config.json": config_bytes("BertForSequenceClassification"),
        "model.safetensors": weights,
        "tokenizer.json": b"{}",
        "vocab.txt": b"[PAD]\n[UNK]\n",
        "pytorch_model.bin": b"pickle" * 100,
        "tf_model.h5": b"h5",
        "flax_model.msgpack": b"msgpack",
        "modeling_extra.py": b"import os",
    }


@pytest.fixture
def access(hub: HubStandIn, tmp_path: Path) -> HubAccess:
    return HubAccess(endpoint=hub.url, cache_dir=tmp_path / "hf-cache")


class NoRules:
    async def all(self) -> list:
        return []


async def plan_for(model_id: str, access: HubAccess, max_mb: int | None = None) -> DownloadPlan:
    """What vetting plans for a model: its facts from the Hub, then the files loading needs."""
    settings = Settings(_env_file=None, hf_token=None)
    facts = await ModelVetter(settings, NoRules(), access=access).describe(model_id)
    return plan_download(facts, max_mb * 2**20 if max_mb else None)


async def test_fetch_reports_growing_bytes_and_never_downloads_pickle_or_code(hub, access):
    hub.add("acme/sentiment", repo_files())
    seen: list[tuple[int, int]] = []

    folder = await fetch_model(
        await plan_for("acme/sentiment", access),
        lambda done, total: seen.append((done, total)),
        access=access,
    )

    assert sorted(item.name for item in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
    ]
    done = [step[0] for step in seen]
    totals = [step[1] for step in seen]
    assert len(seen) > 3
    assert done == sorted(done) and totals == sorted(totals)
    assert all(step_done <= total for step_done, total in seen)
    assert (
        seen[-1][0]
        == seen[-1][1]
        == sum(
            len(hub.repos["acme/sentiment"].files[name])
            for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")
        )
    )
    for never in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "modeling_extra.py"):
        assert hub.count(f"/resolve/{never}") == 0
        assert hub.count(never, method="HEAD") == 0


async def test_fetch_into_model_dir_makes_the_model_usable_without_the_hub(
    hub, tmp_path, monkeypatch
):
    hub.add("acme/sentiment", repo_files(safetensors_bytes({"w": (2, 8)})))
    model_dir = tmp_path / "models"
    access = HubAccess(endpoint=hub.url, cache_dir=tmp_path / "cache", model_dir=model_dir)

    plan = await plan_for("acme/sentiment", access)
    folder = await fetch_model(plan, access=access, into_model_dir=True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    settings = Settings(_env_file=None, hf_token=None, allow_any_hub_model=False)
    vetted = await ModelVetter(settings, NoRules(), access=access).vet(
        "sentiment", "acme/sentiment"
    )
    assert folder == model_dir / "acme" / "sentiment"
    assert vetted.origin == "model-dir"
    assert downloaded_folder(plan, access) == folder


async def test_a_model_counts_as_downloaded_only_once_every_planned_file_is_there(hub, access):
    hub.add("acme/sentiment", repo_files(safetensors_bytes({"w": (2,)})))
    plan = await plan_for("acme/sentiment", access)

    before = downloaded_folder(plan, access)
    folder = await fetch_model(plan, access=access)

    assert (before, downloaded_folder(plan, access)) == (None, folder)


async def test_a_download_fetches_the_vetted_commit_and_only_the_files_loading_reads(hub, access):
    """A push after vetting changes nothing, and decoys, variants and subfolders stay on the Hub."""
    files = {
        **repo_files(safetensors_bytes({"w": (2,)})),
        "model.fp16.safetensors": safetensors_bytes({"w": (2,)}),
        "decoy.safetensors": safetensors_bytes({"w": (2,)}),
        "onnx/model.onnx": b"onnx",
        "onnx/config.json": b"{}",
        "pytorch_model.bin.index.json": b"{}",
    }
    hub.add("acme/sentiment", files)

    plan = await plan_for("acme/sentiment", access)
    folder = await fetch_model(plan, access=access)

    assert plan.revision == COMMIT
    assert sorted(plan.files) == ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt"]
    assert sorted(item.name for item in folder.iterdir()) == sorted(plan.files)
    fetched = [path for method, path in hub.requests if "/resolve/" in path and method == "GET"]
    assert fetched and all(f"/resolve/{COMMIT}/" in path for path in fetched)


async def test_every_planned_file_is_capped_before_anything_is_fetched(hub, access):
    hub.add("acme/heavy", repo_files())
    hub.add(
        "acme/odd",
        {**repo_files(safetensors_bytes({"w": (2,)})), "tokenizer.json": b"x" * (65 * 2**20)},
    )

    with pytest.raises(ModelTooLarge) as heavy:
        await plan_for("acme/heavy", access, max_mb=10)
    with pytest.raises(ModelTooLarge) as odd:
        await plan_for("acme/odd", access)

    assert heavy.value.values["model"] == "acme/heavy/model.safetensors"
    assert odd.value.values["model"] == "acme/odd/tokenizer.json"
    assert not [path for _, path in hub.requests if "/resolve/" in path]


async def test_a_missing_repo_is_an_unknown_model(hub, access):
    with pytest.raises(UnknownModel):
        await plan_for("acme/missing", access)


async def test_a_gated_repo_without_access_is_refused(hub, access):
    hub.add("acme/gated", repo_files(safetensors_bytes({"w": (2,)})), gated=True)
    with pytest.raises(GatedModel):
        await plan_for("acme/gated", access)


async def test_a_repo_with_only_pickle_weights_plans_no_download(hub, access):
    files = repo_files()
    del files["model.safetensors"]
    hub.add("acme/pickled", files)

    with pytest.raises(UnsafeWeights):
        await plan_for("acme/pickled", access)

    assert hub.count("pytorch_model.bin") == 0


async def test_downloads_run_in_threads_of_their_own(hub, access):
    hub.add("acme/sentiment", repo_files(safetensors_bytes({"w": (2,)})))
    threads: list[str] = []

    async def fetch(plan: DownloadPlan, progress: object, *, access: HubAccess, executor) -> Path:
        loop = asyncio.get_running_loop()
        threads.append(
            await loop.run_in_executor(executor, lambda: threading.current_thread().name)
        )
        return Path("/nowhere")

    downloads = ModelDownloads(access, workers=1, fetch=fetch)
    await downloads.fetch(await plan_for("acme/sentiment", access))
    downloads.close()

    assert threads and threads[0].startswith("hfbot-download")


async def test_the_disk_budget_deletes_the_least_recently_used_models_never_one_in_use(hub, access):
    weights = safetensors_bytes({"w": (2,)}, padding=2**20)
    for name in ("old", "older", "busy"):
        hub.add(f"acme/{name}", repo_files(weights))
    for name in ("older", "busy", "old"):
        await fetch_model(await plan_for(f"acme/{name}", access), access=access)
    busy_plan = await plan_for("acme/busy", access)

    deleted = keep_within_budget(access, budget_bytes=int(2.5 * 2**20), keep={"acme/busy"})

    assert deleted == ["acme/older"]
    assert downloaded_folder(busy_plan, access) is not None
    assert downloaded_folder(await plan_for("acme/older", access), access) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_download_status_edits_one_message_at_most_once_per_interval_and_shows_the_end():
    edits: list[str] = []

    async def edit(text: str) -> None:
        edits.append(text)

    clock = FakeClock()
    status = ThrottledStatus("acme/m", edit, min_interval_s=3.0, clock=clock)
    mib = 2**20
    for second, done in enumerate((1, 2, 3, 4, 5, 6, 7, 8)):
        clock.now = float(second)
        status(done * mib, 8 * mib)
        await asyncio.sleep(0)
    await status.finish()

    assert edits == [
        describe_progress("acme/m", 1 * mib, 8 * mib),
        describe_progress("acme/m", 4 * mib, 8 * mib),
        describe_progress("acme/m", 7 * mib, 8 * mib),
        "Downloading acme/m: 8.0 MiB / 8.0 MiB (100%)",
    ]


def test_fetch_command_draws_a_bar_per_model_and_fails_when_one_cannot_be_fetched(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with serve_in_thread(HubStandIn()) as standin:
        standin.add("acme/one", repo_files(safetensors_bytes({"w": (2,)})))
        access = HubAccess(
            endpoint=standin.url, cache_dir=tmp_path / "cache", model_dir=tmp_path / "models"
        )

        settings = Settings(_env_file=None, hf_token=None)
        ok = fetch_command(["acme/one"], settings, access)
        failed = fetch_command(["acme/one", "acme/missing"], settings, access)

    out, err = capsys.readouterr()
    assert (ok, failed) == (0, 1)
    assert out.splitlines()[0] == f"acme/one\t{tmp_path / 'models' / 'acme' / 'one'}"
    assert "acme/one" in err
    assert "acme/missing: not fetched: I can't find the model “acme/missing”." in err
