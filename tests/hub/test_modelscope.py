"""HFBOT_MODEL_SOURCE=modelscope: models vetted from ModelScope's listing, fetched with the
`modelscope` package at the vetted revision, and vetted again on disk before any load.

ModelScope is `tests.support.modelscope_standin` on 127.0.0.1, reached by the real
`modelscope` client through `HFBOT_MODELSCOPE_ENDPOINT`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.errors import (
    HubUnavailable,
    ModelChanged,
    RemoteCodeRequired,
    UnknownModel,
    UnsafeWeights,
)
from bot.hub.downloads import downloaded_folder, fetch_model
from bot.hub.hub_access import HubAccess
from bot.hub.vetting import ModelVetter
from bot.tasks import MODELSCOPE_IDS, get_task
from tests.support.hub_standin import config_bytes, safetensors_bytes
from tests.support.modelscope_standin import ModelScopeStandIn, serve_modelscope

WEIGHTS = safetensors_bytes({"classifier.weight": (2, 8)})
WHISPER = get_task("transcribe").default_model


class NoRules:
    async def all(self) -> list[Any]:
        return []


def model_files(architecture: str = "BertForSequenceClassification", **config: Any) -> dict:
    return {
        "config.json": config_bytes(architecture, **config),
        "model.safetensors": WEIGHTS,
        "pytorch_model.bin": b"pickled weights",
        "tokenizer.json": b"{}",
        "configuration.json": b'{"framework": "pytorch"}',
    }


@pytest.fixture
async def modelscope() -> AsyncIterator[ModelScopeStandIn]:
    async with serve_modelscope(ModelScopeStandIn()) as standin:
        yield standin


def vetter_for(modelscope: ModelScopeStandIn, tmp_path: Path) -> ModelVetter:
    settings = Settings(
        _env_file=None,
        model_source="modelscope",
        modelscope_endpoint=modelscope.url,
        allow_any_hub_model=True,
    )
    access = HubAccess.from_settings(settings)
    access = HubAccess(
        cache_dir=tmp_path / "hub",
        source=access.source,
        modelscope_endpoint=access.modelscope_endpoint,
    )
    return ModelVetter(settings, NoRules(), access=access)


async def test_a_default_is_taken_from_its_modelscope_id_vetted_and_fetched_without_pickle(
    modelscope: ModelScopeStandIn, tmp_path: Path
) -> None:
    whisper_on_modelscope = MODELSCOPE_IDS[WHISPER]
    modelscope.add(
        whisper_on_modelscope,
        model_files("WhisperForConditionalGeneration", model_type="whisper"),
    )
    vetter = vetter_for(modelscope, tmp_path)

    vetted = await vetter.vet("transcribe", WHISPER)

    assert vetted.plan is not None and vetted.plan.source == "modelscope"
    assert vetted.plan.revision == "master"
    assert "pytorch_model.bin" not in vetted.plan.files
    assert vetted.weights_bytes == len(WEIGHTS)
    assert downloaded_folder(vetted.plan, vetter.access) is None

    folder = await fetch_model(vetted.plan, access=vetter.access)

    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not (folder / "pytorch_model.bin").exists()
    assert downloaded_folder(vetted.plan, vetter.access) == folder
    assert modelscope.count(f"/models/{whisper_on_modelscope}/repo/files") >= 1
    assert modelscope.count("FilePath=pytorch_model.bin") == 0


async def test_a_modelscope_model_with_pickle_weights_only_is_refused_before_its_weights_move(
    modelscope: ModelScopeStandIn, tmp_path: Path
) -> None:
    files = model_files()
    del files["model.safetensors"]
    modelscope.add("acme/pickled", files)

    with pytest.raises(UnsafeWeights):
        await vetter_for(modelscope, tmp_path).vet("sentiment", "acme/pickled")
    assert modelscope.count("FilePath=pytorch_model.bin") == 0


async def test_a_modelscope_model_that_needs_its_own_code_is_refused(
    modelscope: ModelScopeStandIn, tmp_path: Path
) -> None:
    modelscope.add("acme/custom", model_files(auto_map={"AutoModel": "modeling.Custom"}))

    with pytest.raises(RemoteCodeRequired):
        await vetter_for(modelscope, tmp_path).vet("sentiment", "acme/custom")


async def test_a_model_that_changed_at_the_source_after_vetting_is_not_loaded(
    modelscope: ModelScopeStandIn, tmp_path: Path
) -> None:
    modelscope.add("acme/sentiment", model_files())
    vetter = vetter_for(modelscope, tmp_path)
    vetted = await vetter.vet("sentiment", "acme/sentiment")
    assert vetted.plan is not None
    modelscope.add("acme/sentiment", {**model_files(), "model.safetensors": WEIGHTS + b"\0" * 64})

    with pytest.raises(ModelChanged) as refused:
        await fetch_model(vetted.plan, access=vetter.access)
    assert refused.value.values == {"model": "acme/sentiment", "file": "model.safetensors"}


async def test_a_model_modelscope_does_not_have_is_unknown_and_an_outage_is_unavailable(
    modelscope: ModelScopeStandIn, tmp_path: Path
) -> None:
    vetter = vetter_for(modelscope, tmp_path)
    with pytest.raises(UnknownModel):
        await vetter.vet("sentiment", "acme/nothing-here")

    modelscope.down = True
    modelscope.add("acme/sentiment", model_files())
    with pytest.raises(HubUnavailable):
        await vetter.vet("sentiment", "acme/sentiment")


async def test_models_check_reads_modelscope_and_says_in_one_line_when_it_is_unreachable(
    modelscope: ModelScopeStandIn, tmp_path: Path
) -> None:
    from bot.hub.check import check_models, offered_models, unreachable

    settings = Settings(_env_file=None, model_source="modelscope")
    access = vetter_for(modelscope, tmp_path).access
    modelscope.add(
        MODELSCOPE_IDS[WHISPER],
        model_files("WhisperForConditionalGeneration", model_type="whisper"),
    )
    transcribe = [o for o in offered_models(settings) if o.task == "transcribe"]

    rows = await check_models(vetter_for(modelscope, tmp_path), transcribe)
    assert await asyncio.to_thread(unreachable, access, WHISPER) is None

    assert rows[0].accepted and rows[0].commit == "modelscope@master"
    modelscope.down = True
    why = await asyncio.to_thread(unreachable, access, WHISPER)
    assert why is not None and why.startswith(f"cannot reach ModelScope ({modelscope.url})")
