"""Vetting a diffusers pipeline, a voice and a model that sees, by the rules every model meets.

A pipeline is a folder per component (unet, vae, text encoder, tokenizer, scheduler)
named by model_index.json. The Hub is `tests.support.hub_standin` on 127.0.0.1,
reached by the real huggingface_hub client, serving the tiny pipeline that
`bot.offline.demo_models` builds, with what real repos carry beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from bot.config import Settings
from bot.engine.runners import load_runner
from bot.errors import ModelNotAllowed, RemoteCodeRequired, UnsafeWeights, WrongTaskModel
from bot.hub.downloads import fetch_model
from bot.hub.hub_access import HubAccess
from bot.hub.vetting import ModelVetter
from bot.offline import demo_models
from bot.tasks import SPEECH_VOICES, VISION_CHAT_MODEL, Picture
from tests.hub.test_vetting import FakeClock, FakeRules
from tests.support.hub_standin import HubStandIn, config_bytes, safetensors_bytes

CARD = b"---\npipeline_tag: text-to-image\nlibrary_name: diffusers\n---\n# pictures\n"


@pytest.fixture
def make_vetter(hub: HubStandIn, tmp_path: Path):
    def make(model_dir: Path | None = None, **settings: Any) -> ModelVetter:
        values: dict[str, Any] = {"allow_any_hub_model": True, "vet_cache_ttl_s": 60.0}
        values.update(settings)
        config = Settings(_env_file=None, model_dir=model_dir, **values)
        access = HubAccess(
            endpoint=hub.url, token=None, cache_dir=tmp_path / "hf-cache", model_dir=model_dir
        )
        return ModelVetter(config, FakeRules(), access=access, clock=FakeClock())

    return make


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def pipeline_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The tiny pipeline's files, as diffusers saved them."""
    return folder_files(demo_models.tiny_picture_maker(tmp_path_factory.mktemp("pipeline")))


def with_index(files: dict[str, bytes], **changes: Any) -> dict[str, bytes]:
    index = json.loads(files["model_index.json"])
    index.update(changes)
    return {**files, "model_index.json": json.dumps(index).encode()}


async def test_a_pipeline_is_vetted_by_its_components_and_fetched_without_what_it_never_loads(
    hub, make_vetter, pipeline_files
):
    """Real repos carry more than the pipeline loads: a second autoencoder no component
    names, fp16 variants, pickle copies. None of it counts or reaches the disk."""
    extras = {
        "README.md": CARD,
        "vae_large/config.json": config_bytes("AutoencoderKL"),
        "vae_large/diffusion_pytorch_model.safetensors": safetensors_bytes({"w": (64, 64)}),
        "unet/diffusion_pytorch_model.fp16.safetensors": safetensors_bytes({"w": (8, 8)}),
        "text_encoder/pytorch_model.bin": b"pickle",
        "output.png": b"\x89PNG",
    }
    hub.add("acme/pictures", {**pipeline_files, **extras}, pipeline_tag="text-to-image")

    vetted = await make_vetter().vet("imagine", "acme/pictures")

    loaded = (
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    )
    assert vetted.architectures == ("StableDiffusionPipeline",)
    assert vetted.weights_bytes == sum(len(pipeline_files[name]) for name in loaded)
    assert vetted.plan is not None
    planned = set(vetted.plan.files)
    assert set(loaded) | {"model_index.json", "unet/config.json"} <= planned
    assert {"scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json"} <= planned
    assert not {name for name in planned if name.startswith("vae_large/")}
    assert not {name for name in planned if ".fp16." in name or name.endswith((".bin", ".png"))}

    folder = await fetch_model(vetted.plan, access=make_vetter().access)
    runner = load_runner("text-to-image", str(folder), device="cpu", dtype="float32")
    with torch.inference_mode():
        [picture] = runner(["a red kite"], batch_size=1, steps=1, size="256x256", seed=3)
    assert isinstance(picture, Picture) and picture.png.startswith(b"\x89PNG")
    assert not (folder / "vae_large").exists()


async def test_a_component_with_only_pickle_weights_is_refused(hub, make_vetter, pipeline_files):
    files = dict(pipeline_files)
    files["vae/diffusion_pytorch_model.bin"] = files.pop("vae/diffusion_pytorch_model.safetensors")
    hub.add("acme/pickled", files, pipeline_tag="text-to-image")

    with pytest.raises(UnsafeWeights):
        await make_vetter().vet("imagine", "acme/pickled")


@pytest.mark.parametrize(
    ("changes", "extra"),
    [
        ({"_class_name": ["pipeline", "MyPipeline"]}, {"pipeline.py": b"import os"}),
        ({"unet": ["my_unet", "MyUNet"]}, {"unet/my_unet.py": b"import os"}),
        ({"scheduler": ["diffusers", "NoSuchScheduler"]}, {}),
        ({"_class_name": "NoSuchPipeline"}, {}),
    ],
    ids=["custom pipeline", "custom component", "unknown class", "unknown pipeline"],
)
async def test_a_pipeline_that_needs_code_of_its_own_is_refused(
    hub, make_vetter, pipeline_files, changes, extra
):
    hub.add(
        "acme/custom",
        {**with_index(pipeline_files, **changes), **extra},
        pipeline_tag="text-to-image",
    )

    with pytest.raises(RemoteCodeRequired):
        await make_vetter().vet("imagine", "acme/custom")


async def test_a_pipeline_is_no_model_for_text_commands_nor_an_image_to_image_one_for_imagine(
    make_vetter, pipeline_files, tmp_path
):
    model_dir = tmp_path / "models"
    for name, data in with_index(pipeline_files).items():
        (model_dir / "acme" / "pictures" / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / "acme" / "pictures" / name).write_bytes(data)
    for name, data in with_index(
        pipeline_files, _class_name="StableDiffusionImg2ImgPipeline"
    ).items():
        (model_dir / "acme" / "edits" / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / "acme" / "edits" / name).write_bytes(data)
    vetter = make_vetter(model_dir=model_dir, allow_any_hub_model=False)

    vetted = await vetter.vet("imagine", "acme/pictures")
    assert vetted.origin == "model-dir"
    assert vetted.num_parameters and vetted.num_parameters > 10_000
    with pytest.raises(WrongTaskModel):
        await vetter.vet("sentiment", "acme/pictures")
    with pytest.raises(WrongTaskModel):
        await vetter.vet("imagine", "acme/edits")
    listed = [item.model_id for item in await vetter.search_models("imagine")]
    assert "acme/pictures" in listed and "acme/edits" not in listed
    assert not [model for model in listed if model.endswith(("/unet", "/vae", "/text_encoder"))]


async def test_the_voices_and_the_seeing_model_the_bot_offers_pass_the_policy(hub, make_vetter):
    voice = {"config.json": config_bytes("VitsModel", "vits"), "vocab.json": b"{}"}
    for model in SPEECH_VOICES.values():
        hub.add(
            model,
            {**voice, "model.safetensors": safetensors_bytes({"w": (4,)})},
            pipeline_tag="text-to-speech",
        )
    hub.add(
        VISION_CHAT_MODEL,
        {
            "config.json": config_bytes("Idefics3ForConditionalGeneration", "idefics3"),
            "model.safetensors": safetensors_bytes({"w": (4,)}),
            "chat_template.json": b'{"chat_template": "x"}',
        },
        pipeline_tag="image-text-to-text",
    )
    hub.add(
        "someone/other-voice", {**voice, "model.safetensors": b""}, pipeline_tag="text-to-speech"
    )
    vetter = make_vetter(allow_any_hub_model=False)

    for model in SPEECH_VOICES.values():
        assert (await vetter.vet("say", model)).task == "text-to-speech"
    assert (await vetter.vet("chat", VISION_CHAT_MODEL)).task == "chat"
    with pytest.raises(ModelNotAllowed):
        await vetter.vet("say", "someone/other-voice")
