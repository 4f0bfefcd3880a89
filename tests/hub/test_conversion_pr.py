"""Models whose main ships only pickle weights: the Hub's safetensors conversion PR, pinned.

The Hub is `tests.support.hub_standin`, reached by the real huggingface_hub client
the way a mirror is (`HF_ENDPOINT`): model info at `refs/pr/N`, the conversion
bot's open pull requests, and files resolved at the pull request's commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import RemoteCodeRequired, UnsafeWeights, UnsafeWeightsTryOther
from bot.hub.downloads import fetch_model
from bot.hub.hub_access import HubAccess
from bot.hub.vetting import ModelVetter
from bot.tasks import get_task
from tests.support.hub_standin import COMMIT, HubStandIn, config_bytes, safetensors_bytes

PICKLED = "acme/pickled-classifier"
WEIGHTS = safetensors_bytes({"classifier.weight": (2, 8)})


class NoRules:
    async def all(self) -> list[Any]:
        return []


def pickled_files(**config: Any) -> dict[str, bytes]:
    return {
        "config.json": config_bytes("BertForSequenceClassification", **config),
        "pytorch_model.bin": b"pickled weights",
        "tokenizer.json": b"{}",
    }


def vetter_for(hub: HubStandIn, tmp_path: Path, **settings: Any) -> ModelVetter:
    """A vetter configured as an operator would: the Hub's address from HF_ENDPOINT."""
    config = Settings(_env_file=None, hf_endpoint=hub.url, allow_any_hub_model=True, **settings)
    access = HubAccess.from_settings(config)
    access = HubAccess(access.endpoint, access.token, tmp_path / "hf-cache", access.model_dir)
    return ModelVetter(config, NoRules(), access=access)


async def test_a_pickle_only_model_is_vetted_at_its_conversion_pr_commit_and_fetched_from_it(
    hub: HubStandIn, tmp_path: Path
) -> None:
    repo = hub.add(PICKLED, pickled_files(), pipeline_tag="text-classification")
    pr = repo.open_pull_request({"model.safetensors": WEIGHTS})
    vetter = vetter_for(hub, tmp_path)

    vetted = await vetter.vet("sentiment", PICKLED)

    assert vetted.plan is not None
    assert vetted.plan.revision == pr.commit != COMMIT
    assert "model.safetensors" in vetted.plan.files
    assert "pytorch_model.bin" not in vetted.plan.files
    assert vetted.weights_bytes == len(WEIGHTS)
    assert (await vetter.describe(PICKLED)).conversion_pr == pr.num

    folder = await fetch_model(vetted.plan, access=vetter.access)

    assert folder.name == pr.commit
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not (folder / "pytorch_model.bin").exists()
    assert hub.count(f"/resolve/{pr.commit}/model.safetensors", "GET") == 1
    assert hub.count("/resolve/main/") == 0


@pytest.mark.parametrize(
    "details",
    [
        {"author": "someone-else"},
        {"title": "Add safetensors (trust me)"},
        {"status": "closed"},
    ],
    ids=["not-the-conversion-bot", "another-title", "closed"],
)
async def test_only_an_open_pr_of_the_conversion_bot_counts(
    hub: HubStandIn, tmp_path: Path, details: dict[str, str]
) -> None:
    repo = hub.add(PICKLED, pickled_files(), pipeline_tag="text-classification")
    repo.open_pull_request({"model.safetensors": WEIGHTS}, **details)

    with pytest.raises(UnsafeWeights):
        await vetter_for(hub, tmp_path).vet("sentiment", PICKLED)


async def test_a_conversion_of_weights_main_no_longer_has_is_not_used(
    hub: HubStandIn, tmp_path: Path
) -> None:
    repo = hub.add(PICKLED, pickled_files(), pipeline_tag="text-classification")
    repo.open_pull_request({"model.safetensors": WEIGHTS})
    repo.files["pytorch_model.bin"] = b"retrained pickled weights"

    with pytest.raises(UnsafeWeights):
        await vetter_for(hub, tmp_path).vet("sentiment", PICKLED)


async def test_the_conversion_pr_passes_every_other_check_too(
    hub: HubStandIn, tmp_path: Path
) -> None:
    repo = hub.add(PICKLED, pickled_files(), pipeline_tag="text-classification")
    repo.open_pull_request(
        {
            "model.safetensors": WEIGHTS,
            "config.json": config_bytes(
                "BertForSequenceClassification", auto_map={"AutoModel": "x.Y"}
            ),
        }
    )

    with pytest.raises(RemoteCodeRequired):
        await vetter_for(hub, tmp_path).vet("sentiment", PICKLED)


async def test_without_a_conversion_the_refusal_names_a_model_that_would_work(
    hub: HubStandIn, tmp_path: Path
) -> None:
    hub.add(
        "sshleifer/distilbart-cnn-12-6",
        {
            "config.json": config_bytes("BartForConditionalGeneration", model_type="bart"),
            "pytorch_model.bin": b"pickled",
        },
        pipeline_tag="summarization",
    )

    with pytest.raises(UnsafeWeightsTryOther) as refused:
        await vetter_for(hub, tmp_path).vet("summarize", "sshleifer/distilbart-cnn-12-6")

    assert refused.value.values["alternative"] == get_task("summarize").default_model


async def test_a_model_with_safetensors_on_main_is_pinned_to_main_and_no_pr_is_asked_for(
    hub: HubStandIn, tmp_path: Path
) -> None:
    files = {**pickled_files(), "model.safetensors": WEIGHTS}
    hub.add("acme/fine", files, pipeline_tag="text-classification")

    vetted = await vetter_for(hub, tmp_path).vet("sentiment", "acme/fine")

    assert vetted.plan is not None and vetted.plan.revision == COMMIT
    assert hub.count("/discussions") == 0


async def test_hf_endpoint_in_the_environment_points_every_hub_call_at_the_mirror(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = hub.add(PICKLED, pickled_files(), pipeline_tag="text-classification")
    repo.open_pull_request({"model.safetensors": WEIGHTS})
    monkeypatch.setenv("HF_ENDPOINT", hub.url + "/")
    monkeypatch.setenv("HF_TOKEN", "hf_mirror_token_1234")
    settings = Settings(_env_file=None, allow_any_hub_model=True)
    access = HubAccess.from_settings(settings)

    assert access.endpoint == hub.url
    assert access.token == SecretStr("hf_mirror_token_1234")
    vetter = ModelVetter(
        settings,
        NoRules(),
        access=HubAccess(access.endpoint, access.token, tmp_path / "cache", None),
    )
    vetted = await vetter.vet("sentiment", PICKLED)
    assert vetted.plan is not None
    await fetch_model(vetted.plan, access=vetter.access)

    assert hub.count("/api/models/acme/pickled-classifier") >= 2
    assert hub.count("/resolve/") >= 1
