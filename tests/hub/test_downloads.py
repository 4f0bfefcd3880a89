"""Pre-downloading models: safe files only, progress in bytes, one throttled status message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from huggingface_hub import constants

from bot.config import Settings
from bot.errors import GatedModel, UnknownModel, UnsafeWeights
from bot.hub.access import HubAccess
from bot.hub.downloads import (
    ThrottledStatus,
    describe_progress,
    fetch_command,
    fetch_model,
    is_downloaded,
)
from bot.hub.vetting import ModelVetter
from tests.support.hub_standin import (
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


async def test_fetch_reports_growing_bytes_and_never_downloads_pickle_or_code(hub, access):
    hub.add("acme/sentiment", repo_files())
    seen: list[tuple[int, int]] = []

    folder = await fetch_model(
        "acme/sentiment", lambda done, total: seen.append((done, total)), access=access
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

    folder = await fetch_model("acme/sentiment", access=access)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    class NoRules:
        async def list_model_rules(self) -> list:
            return []

    settings = Settings(_env_file=None, hf_token=None, allow_any_hub_model=False)
    vetted = await ModelVetter(settings, NoRules(), access=access).vet(
        "sentiment", "acme/sentiment"
    )
    assert folder == model_dir / "acme" / "sentiment"
    assert vetted.origin == "model-dir"
    assert await is_downloaded("acme/sentiment", access)


async def test_is_downloaded_is_false_until_the_model_is_fetched(hub, access):
    hub.add("acme/sentiment", repo_files(safetensors_bytes({"w": (2,)})))

    before = await is_downloaded("acme/sentiment", access)
    await fetch_model("acme/sentiment", access=access)

    assert (before, await is_downloaded("acme/sentiment", access)) == (False, True)


async def test_fetch_of_a_missing_repo_is_an_unknown_model(hub, access):
    with pytest.raises(UnknownModel):
        await fetch_model("acme/missing", access=access)


async def test_fetch_of_a_gated_repo_without_access_is_refused(hub, access):
    hub.add("acme/gated", repo_files(safetensors_bytes({"w": (2,)})), gated=True)
    with pytest.raises(GatedModel):
        await fetch_model("acme/gated", access=access)


async def test_fetch_of_a_repo_with_only_pickle_weights_is_refused(hub, access):
    files = repo_files()
    del files["model.safetensors"]
    hub.add("acme/pickled", files)

    with pytest.raises(UnsafeWeights):
        await fetch_model("acme/pickled", access=access)

    assert hub.count("pytorch_model.bin") == 0


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

        ok = fetch_command(["acme/one"], access)
        failed = fetch_command(["acme/one", "acme/missing"], access)

    out, err = capsys.readouterr()
    assert (ok, failed) == (0, 1)
    assert out.splitlines()[0] == f"acme/one\t{tmp_path / 'models' / 'acme' / 'one'}"
    assert "acme/one" in err
    assert "acme/missing: not fetched: I can't find the model “acme/missing”." in err
