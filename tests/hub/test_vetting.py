"""Vetting models before they load: every refusal, the admins' rules, the cache, search.

The Hub is `tests.support.hub_standin` on 127.0.0.1, reached by the real huggingface_hub
client; nothing here touches the internet.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Any

import pytest
from huggingface_hub import constants
from pydantic import SecretStr

from bot.config import Settings
from bot.errors import (
    GatedModel,
    HubUnavailable,
    ModelDenied,
    ModelNotAllowed,
    ModelTooLarge,
    RemoteCodeRequired,
    UnknownModel,
    UnsafeWeights,
    UserFacingError,
    WrongTaskModel,
)
from bot.hub.downloads import fetch_model
from bot.hub.hub_access import HubAccess
from bot.hub.vetting import MAX_CACHED_MODELS, ModelVetter
from bot.i18n import CATALOGS
from bot.offline import demo_models as tiny_models
from bot.tasks import get_task
from tests.support.hub_standin import HubStandIn, config_bytes, safetensors_bytes

SENTIMENT_DEFAULT = get_task("sentiment").default_model
TOKEN = "hf_standin_secret_token_123"


@dataclass
class Rule:
    model_id: str
    rule: str
    added_by: int | None = None


@dataclass
class FakeRules:
    """The slice of Store the vetter reads, counting reads."""

    rules: list[Rule] = field(default_factory=list)
    reads: int = 0

    async def all(self) -> list[Rule]:
        self.reads += 1
        return list(self.rules)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def model_files(
    architecture: str = "BertForSequenceClassification",
    *,
    weights: str = "model.safetensors",
    weight_bytes: bytes | None = None,
    **config: Any,
) -> dict[str, bytes]:
    return {
        "config.json": config_bytes(architecture, **config),
        weights: weight_bytes or safetensors_bytes({"classifier.weight": (2, 8)}),
        "tokenizer.json": b"{}",
    }


def write_model(directory: Path, files: Mapping[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rules() -> FakeRules:
    return FakeRules()


@pytest.fixture
def make_vetter(hub: HubStandIn, rules: FakeRules, clock: FakeClock, tmp_path: Path):
    def make(
        token: str | None = None,
        model_dir: Path | None = None,
        max_cached_models: int = MAX_CACHED_MODELS,
        **settings: Any,
    ) -> ModelVetter:
        values: dict[str, Any] = {"allow_any_hub_model": True, "vet_cache_ttl_s": 60.0}
        values.update(settings)
        config = Settings(_env_file=None, hf_token=token, model_dir=model_dir, **values)
        access = HubAccess(
            endpoint=hub.url,
            token=SecretStr(token) if token else None,
            cache_dir=tmp_path / "hf-cache",
            model_dir=model_dir,
        )
        return ModelVetter(
            config, rules, access=access, clock=clock, max_cached_models=max_cached_models
        )

    return make


async def test_hub_model_that_fits_the_task_is_vetted_with_its_size(hub, make_vetter):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification", num_parameters=16)

    vetted = await make_vetter().vet("sentiment", "acme/sentiment")

    assert vetted.origin == "hub"
    assert vetted.source == "acme/sentiment"
    assert vetted.task == "text-classification"
    assert vetted.num_parameters == 16
    assert vetted.weights_bytes == len(hub.repos["acme/sentiment"].files["model.safetensors"])
    assert hub.count("/api/models/acme/sentiment?blobs=true") == 1


async def test_missing_repo_is_refused_as_unknown_model(hub, make_vetter):
    with pytest.raises(UnknownModel) as refused:
        await make_vetter().vet("sentiment", "acme/nothing-here")
    assert refused.value.values["model"] == "acme/nothing-here"


async def test_malformed_model_id_is_refused_without_asking_the_hub(hub, make_vetter):
    with pytest.raises(UnknownModel):
        await make_vetter().vet("sentiment", "acme/../../etc")
    assert hub.requests == []


async def test_private_repo_without_a_token_reads_as_unknown_model(hub, make_vetter):
    hub.add("acme/private", model_files(), pipeline_tag="text-classification", private=True)
    with pytest.raises(UnknownModel):
        await make_vetter().vet("sentiment", "acme/private")


async def test_gated_model_is_refused_without_a_token(hub, make_vetter):
    hub.add("acme/gated", model_files(), pipeline_tag="text-classification", gated=True)

    with pytest.raises(GatedModel) as refused:
        await make_vetter().vet("sentiment", "acme/gated")

    assert refused.value.values == {"model": "acme/gated", "has_token": False}
    assert hub.count("/resolve/") == 0


async def test_gated_model_passes_with_a_token_that_was_granted_access(hub, make_vetter):
    hub.add("acme/gated", model_files(), pipeline_tag="text-classification", gated=True)
    hub.tokens_with_access.add(TOKEN)

    vetted = await make_vetter(token=TOKEN).vet("sentiment", "acme/gated")

    assert vetted.model_id == "acme/gated"
    assert hub.count("/acme/gated/resolve/main/config.json", method="HEAD") == 1
    assert f"Bearer {TOKEN}" in hub.authorizations


async def test_gated_model_is_refused_when_the_token_was_not_granted_access(hub, make_vetter):
    hub.add("acme/gated", model_files(), pipeline_tag="text-classification", gated=True)

    with pytest.raises(GatedModel) as refused:
        await make_vetter(token=TOKEN).vet("sentiment", "acme/gated")

    assert refused.value.values["has_token"] is True


async def test_model_tagged_for_another_task_is_refused(hub, make_vetter):
    hub.add("acme/writer", model_files("GPT2LMHeadModel"), pipeline_tag="text-generation")

    with pytest.raises(WrongTaskModel) as refused:
        await make_vetter().vet("sentiment", "acme/writer")

    assert refused.value.values == {
        "model": "acme/writer",
        "task": "sentiment",
        "actual": "text-generation",
    }


async def test_untagged_model_is_judged_by_its_config_architectures(hub, make_vetter):
    hub.add("acme/untagged-gpt2", model_files("GPT2LMHeadModel", model_type="gpt2"))
    hub.add("acme/untagged-mlm", model_files("BertForMaskedLM"))
    vetter = make_vetter()

    assert (await vetter.vet("generate", "acme/untagged-gpt2")).architectures == (
        "GPT2LMHeadModel",
    )
    with pytest.raises(WrongTaskModel) as refused:
        await vetter.vet("sentiment", "acme/untagged-mlm")
    assert refused.value.values["actual"] == "BertForMaskedLM"


async def test_translation_accepts_language_pair_tags_and_seq2seq_architectures(hub, make_vetter):
    hub.add(
        "acme/en-fr",
        model_files("MarianMTModel", model_type="marian"),
        pipeline_tag="translation_en_to_fr",
    )
    hub.add("acme/untagged-t5", model_files("T5ForConditionalGeneration", model_type="t5"))
    vetter = make_vetter()

    assert (await vetter.vet("translate", "acme/en-fr")).pipeline_tag == "translation_en_to_fr"
    assert (await vetter.vet("summarize", "acme/untagged-t5")).task == "summarization"


async def test_model_with_only_pickle_weights_is_refused(hub, make_vetter):
    hub.add(
        "acme/pickled",
        model_files(weights="pytorch_model.bin", weight_bytes=b"pickle"),
        pipeline_tag="text-classification",
    )

    with pytest.raises(UnsafeWeights) as refused:
        await make_vetter().vet("sentiment", "acme/pickled")

    assert refused.value.values == {
        "model": "acme/pickled",
        "found": "pytorch_model.bin",
        "alternative": SENTIMENT_DEFAULT,
    }


async def test_a_decoy_safetensors_file_beside_pickle_weights_is_refused(
    hub, make_vetter, tmp_path, rules
):
    """transformers would load pytorch_model.bin, not a stray .safetensors file."""
    decoy = {
        "config.json": config_bytes("BertForSequenceClassification"),
        "pytorch_model.bin": b"pickled weights",
        "decoy.safetensors": safetensors_bytes({"w": (1,)}),
    }
    hub.add("acme/decoy", decoy, pipeline_tag="text-classification")
    folder = write_model(tmp_path / "decoy", decoy)
    rules.rules.append(Rule(str(folder), "allow"))
    vetter = make_vetter()

    for model_id in ("acme/decoy", str(folder)):
        with pytest.raises(UnsafeWeights) as refused:
            await vetter.vet("sentiment", model_id)
        assert refused.value.values["found"] == "pytorch_model.bin, decoy.safetensors"


async def test_the_size_cap_counts_only_the_weights_that_would_be_loaded(hub, make_vetter):
    small = safetensors_bytes({"w": (4,)})
    huge = safetensors_bytes({"w": (4,)}, padding=3 * 2**20)
    hub.add(
        "acme/variants",
        {**model_files(weight_bytes=small), "model.fp16.safetensors": huge},
        pipeline_tag="text-classification",
    )
    hub.add(
        "acme/heavy-main",
        {**model_files(weight_bytes=huge), "extra.safetensors": small},
        pipeline_tag="text-classification",
    )
    vetter = make_vetter(max_model_size_mb=2)

    vetted = await vetter.vet("sentiment", "acme/variants")
    assert vetted.weights_bytes == len(small)
    with pytest.raises(ModelTooLarge):
        await vetter.vet("sentiment", "acme/heavy-main")


async def test_sharded_weights_count_every_shard_the_index_names(make_vetter, tmp_path, rules):
    shard = safetensors_bytes({"w": (4,)}, padding=2 * 2**20)
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    folder = write_model(
        tmp_path / "sharded",
        {
            "config.json": config_bytes("BertForSequenceClassification"),
            "model.safetensors.index.json": json.dumps(index).encode(),
            "model-00001-of-00002.safetensors": shard,
            "model-00002-of-00002.safetensors": shard,
        },
    )
    rules.rules.append(Rule(str(folder), "allow"))

    with pytest.raises(ModelTooLarge) as refused:
        await make_vetter(max_model_size_mb=3).vet("sentiment", str(folder))
    assert refused.value.values["size"] == f"{2 * len(shard) / 2**20:.1f} MiB"


async def test_model_over_the_parameter_cap_is_refused(hub, make_vetter):
    hub.add(
        "acme/huge",
        model_files(),
        pipeline_tag="text-classification",
        num_parameters=7_000_000_000,
    )

    with pytest.raises(ModelTooLarge) as refused:
        await make_vetter(max_model_params=1_000_000_000).vet("sentiment", "acme/huge")

    assert refused.value.values == {
        "model": "acme/huge",
        "size": "7.0B parameters",
        "limit": "1.0B parameters",
    }


async def test_model_over_the_size_cap_is_refused_when_its_parameters_are_unknown(hub, make_vetter):
    weights = safetensors_bytes({"w": (4,)}, padding=3 * 2**20)
    hub.add("acme/heavy", model_files(weight_bytes=weights), pipeline_tag="text-classification")

    with pytest.raises(ModelTooLarge) as refused:
        await make_vetter(max_model_size_mb=2).vet("sentiment", "acme/heavy")

    assert refused.value.values["limit"] == "2.0 MiB"
    assert refused.value.values["size"] == "3.0 MiB"


async def test_model_whose_config_has_auto_map_needs_remote_code_and_is_refused(hub, make_vetter):
    files = model_files(auto_map={"AutoModel": "modeling_custom.CustomModel"})
    hub.add("acme/custom", files, pipeline_tag="text-classification")

    with pytest.raises(RemoteCodeRequired) as refused:
        await make_vetter().vet("sentiment", "acme/custom")

    assert refused.value.values == {"model": "acme/custom"}


async def test_modeling_code_for_an_architecture_transformers_lacks_is_refused(hub, make_vetter):
    files = {
        **model_files("FancyForSequenceClassification", model_type="fancy"),
        "modeling_fancy.py": b"import os",
    }
    hub.add("acme/fancy", files, pipeline_tag="text-classification")
    with pytest.raises(RemoteCodeRequired):
        await make_vetter().vet("sentiment", "acme/fancy")


async def test_deny_list_beats_allow_any_and_the_registry_default(hub, make_vetter, rules):
    rules.rules.append(Rule(SENTIMENT_DEFAULT, "deny", 1))

    with pytest.raises(ModelDenied) as refused:
        await make_vetter(allow_any_hub_model=True).vet("sentiment", SENTIMENT_DEFAULT)

    assert isinstance(refused.value, ModelNotAllowed)
    assert hub.requests == []


@pytest.mark.parametrize(
    "spelling", ["acme/sent", "acme//sent", "./acme/sent", "acme/sent/", "ACME/Sent", " Acme/sent "]
)
async def test_a_deny_rule_matches_every_spelling_of_a_hub_id(hub, make_vetter, rules, spelling):
    hub.add("acme/sent", model_files(), pipeline_tag="text-classification")
    rules.rules.append(Rule("Acme/Sent", "deny"))

    with pytest.raises(ModelDenied):
        await make_vetter(allow_any_hub_model=True).vet("sentiment", spelling)


async def test_an_allow_rule_matches_another_spelling_of_the_same_id(hub, make_vetter, rules):
    hub.add("acme/sent", model_files(), pipeline_tag="text-classification")
    rules.rules.append(Rule("acme//sent/", "allow"))

    vetted = await make_vetter(allow_any_hub_model=False).vet("sentiment", "acme/sent")

    assert vetted.model_id == "acme/sent"


async def test_rules_about_a_folder_match_it_however_its_path_is_written(
    make_vetter, rules, tmp_path, monkeypatch
):
    folder = write_model(tmp_path / "models" / "mine", model_files())
    monkeypatch.chdir(tmp_path)
    rules.rules.append(Rule(str(folder), "deny"))
    vetter = make_vetter()

    for spelling in ("./models/mine", "./models/../models/mine/", str(folder)):
        with pytest.raises(ModelDenied):
            await vetter.vet("sentiment", spelling)


async def test_a_deny_rule_on_a_hub_id_also_covers_that_model_in_the_model_dir(
    make_vetter, rules, tmp_path
):
    model_dir = tmp_path / "models"
    write_model(model_dir / "acme" / "sent", model_files())
    rules.rules.append(Rule("ACME/sent", "deny"))

    with pytest.raises(ModelDenied):
        await make_vetter(model_dir=model_dir).vet("sentiment", "acme/sent")


async def test_a_model_in_the_model_dir_is_used_from_there_whatever_case_it_is_asked_in(
    hub, make_vetter, tmp_path
):
    model_dir = tmp_path / "models"
    folder = write_model(model_dir / "Acme" / "Sent", model_files())
    hub.add("Acme/Sent", model_files(), pipeline_tag="text-classification")

    vetted = await make_vetter(model_dir=model_dir).vet("sentiment", "acme/sent")

    assert (vetted.origin, vetted.source, vetted.plan) == ("model-dir", str(folder), None)
    assert hub.requests == []


async def test_every_translation_target_the_bot_offers_passes_the_policy(hub, make_vetter):
    hub.add(
        "Helsinki-NLP/opus-mt-en-fr",
        model_files("MarianMTModel", model_type="marian"),
        pipeline_tag="translation",
    )

    vetted = await make_vetter(allow_any_hub_model=False).vet(
        "translate", "Helsinki-NLP/opus-mt-en-fr"
    )

    assert vetted.origin == "hub"


async def test_hub_model_outside_the_allow_list_is_refused_by_default(hub, make_vetter):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")

    with pytest.raises(ModelNotAllowed) as refused:
        await make_vetter(allow_any_hub_model=False).vet("sentiment", "acme/sentiment")

    assert refused.value.values == {"model": "acme/sentiment", "task": "sentiment"}
    assert hub.requests == []
    assert Settings(_env_file=None).allow_any_hub_model is False


async def test_allow_listed_model_is_vetted_when_any_hub_model_is_off(hub, make_vetter, rules):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    rules.rules.append(Rule("acme/sentiment", "allow", 1))

    vetted = await make_vetter(allow_any_hub_model=False).vet("sentiment", "acme/sentiment")

    assert vetted.model_id == "acme/sentiment"


async def test_allow_listed_model_is_still_vetted(hub, make_vetter, rules):
    hub.add("acme/pickled", model_files(weights="pytorch_model.bin"), pipeline_tag="fill-mask")
    rules.rules.append(Rule("acme/pickled", "allow", 1))

    with pytest.raises(WrongTaskModel):
        await make_vetter(allow_any_hub_model=False).vet("sentiment", "acme/pickled")


async def test_registry_default_and_operator_override_are_always_allowed(hub, make_vetter):
    hub.add(SENTIMENT_DEFAULT, model_files(), pipeline_tag="text-classification")
    hub.add("acme/house-model", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter(
        allow_any_hub_model=False, default_models={"text-classification": "acme/house-model"}
    )

    assert (await vetter.vet("sentiment", SENTIMENT_DEFAULT)).model_id == SENTIMENT_DEFAULT
    assert (await vetter.vet("sentiment", "acme/house-model")).model_id == "acme/house-model"


async def test_rules_are_read_once_and_reread_only_after_rules_changed(hub, make_vetter, rules):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter(allow_any_hub_model=False)
    with pytest.raises(ModelNotAllowed):
        await vetter.vet("sentiment", "acme/sentiment")

    rules.rules.append(Rule("acme/sentiment", "allow", 7))
    with pytest.raises(ModelNotAllowed):
        await vetter.vet("sentiment", "acme/sentiment")
    vetter.rules_changed()

    assert (await vetter.vet("sentiment", "acme/sentiment")).model_id == "acme/sentiment"
    assert rules.reads == 2


async def test_admin_rules_in_the_settings_store_apply_after_rules_changed(
    hub, store, tmp_path, clock
):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    settings = Settings(_env_file=None, hf_token=None, allow_any_hub_model=False)
    access = HubAccess(endpoint=hub.url, cache_dir=tmp_path / "cache")
    vetter = ModelVetter(settings, store.rules, access=access, clock=clock)

    await store.rules.set("acme/sentiment", "allow", 42)
    vetter.rules_changed()
    assert (await vetter.vet("sentiment", "acme/sentiment")).model_id == "acme/sentiment"

    await store.rules.set("acme/sentiment", "deny", 42)
    vetter.rules_changed()
    with pytest.raises(ModelDenied):
        await vetter.vet("sentiment", "acme/sentiment")


async def test_vetting_twice_asks_the_hub_once(hub, make_vetter):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter()

    await vetter.vet("sentiment", "acme/sentiment")
    await vetter.vet("sentiment", "acme/sentiment")
    with pytest.raises(WrongTaskModel):
        await vetter.vet("generate", "acme/sentiment")

    assert len(hub.requests) == 1


async def test_refusals_are_cached_too(hub, make_vetter):
    vetter = make_vetter()
    for _ in range(3):
        with pytest.raises(UnknownModel):
            await vetter.vet("sentiment", "acme/missing")
    assert len(hub.requests) == 1


async def test_the_caches_keep_a_bounded_number_of_models_the_least_recently_used_leave(
    hub, make_vetter
):
    """Naming model after model (refused or not) cannot grow the bot's memory without end."""
    hub.add("acme/kept", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter(max_cached_models=16)
    await vetter.vet("sentiment", "acme/kept")
    for n in range(200):
        with pytest.raises(UnknownModel):
            await vetter.vet("sentiment", f"acme/missing-{n}")
        if n % 10 == 0:
            await vetter.vet("sentiment", "acme/kept")  # used often: stays
    asked = len(hub.requests)

    for n in range(185, 200):
        with pytest.raises(UnknownModel):
            await vetter.vet("sentiment", f"acme/missing-{n}")
    await vetter.vet("sentiment", "acme/kept")
    assert len(hub.requests) == asked, "the most recent ones are remembered"
    with pytest.raises(UnknownModel):
        await vetter.vet("sentiment", "acme/missing-0")
    assert len(hub.requests) == asked + 1, "the oldest was forgotten"


async def test_cached_result_expires_after_the_ttl_and_the_hub_is_asked_again(
    hub, make_vetter, clock
):
    vetter = make_vetter(vet_cache_ttl_s=60.0)
    with pytest.raises(UnknownModel):
        await vetter.vet("sentiment", "acme/late")
    hub.add("acme/late", model_files(), pipeline_tag="text-classification")

    clock.now += 59
    with pytest.raises(UnknownModel):
        await vetter.vet("sentiment", "acme/late")
    clock.now += 2

    assert (await vetter.vet("sentiment", "acme/late")).model_id == "acme/late"
    assert len(hub.requests) == 2


async def test_concurrent_vets_of_one_model_share_one_hub_call(hub, make_vetter):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter()

    results = await asyncio.gather(*(vetter.vet("sentiment", "acme/sentiment") for _ in range(5)))

    assert {result.model_id for result in results} == {"acme/sentiment"}
    assert len(hub.requests) == 1


async def test_tiny_model_in_a_local_directory_is_vetted_from_its_files(
    hub, make_vetter, rules, tmp_path
):
    path = tiny_models.tiny_classifier(tmp_path / "tiny")
    rules.rules.append(Rule(str(path), "allow", 1))

    vetted = await make_vetter(allow_any_hub_model=False).vet("sentiment", str(path))

    assert vetted.origin == "path"
    assert vetted.source == str(path)
    assert vetted.architectures == ("BertForSequenceClassification",)
    assert vetted.num_parameters and vetted.num_parameters > 1000
    assert hub.requests == []


async def test_local_directory_is_not_allowed_unless_allow_listed(hub, make_vetter, tmp_path):
    path = write_model(tmp_path / "stray", model_files())
    with pytest.raises(ModelNotAllowed):
        await make_vetter(allow_any_hub_model=True).vet("sentiment", str(path))


async def test_local_directory_gets_the_same_refusals_as_a_hub_model(
    hub, make_vetter, rules, tmp_path
):
    pickled = write_model(tmp_path / "pickled", model_files(weights="pytorch_model.bin"))
    custom = write_model(tmp_path / "custom", model_files(auto_map={"AutoModel": "x.Y"}))
    rules.rules += [Rule(str(pickled), "allow"), Rule(str(custom), "allow")]
    vetter = make_vetter()

    with pytest.raises(UnsafeWeights):
        await vetter.vet("sentiment", str(pickled))
    with pytest.raises(RemoteCodeRequired):
        await vetter.vet("sentiment", str(custom))
    with pytest.raises(WrongTaskModel):
        await vetter.vet("generate", str(custom))


async def test_local_directory_with_a_broken_config_is_an_unknown_model(
    hub, make_vetter, rules, tmp_path
):
    path = write_model(tmp_path / "broken", {"config.json": b"{not json", "model.safetensors": b""})
    rules.rules.append(Rule(str(path), "allow"))
    with pytest.raises(UnknownModel):
        await make_vetter().vet("sentiment", str(path))


async def test_models_in_model_dir_are_allowed_and_vetted_without_the_hub(
    hub, make_vetter, tmp_path
):
    model_dir = tmp_path / "models"
    write_model(model_dir / "acme" / "local-sentiment", model_files())
    files = {**model_files("BertForMaskedLM"), "README.md": b"---\npipeline_tag: fill-mask\n---\n"}
    write_model(model_dir / "carded", files)
    vetter = make_vetter(model_dir=model_dir, allow_any_hub_model=False)

    vetted = await vetter.vet("sentiment", "acme/local-sentiment")
    carded = await vetter.vet("fill", "carded")

    assert vetted.origin == "model-dir"
    assert vetted.source == str((model_dir / "acme" / "local-sentiment").resolve())
    assert vetted.num_parameters == 16
    assert carded.pipeline_tag == "fill-mask"
    assert hub.requests == []


async def test_model_dir_never_serves_a_folder_outside_it(hub, make_vetter, tmp_path):
    write_model(tmp_path / "outside", model_files())
    (tmp_path / "models").mkdir()
    vetter = make_vetter(model_dir=tmp_path / "models", allow_any_hub_model=False)

    with pytest.raises((UnknownModel, ModelNotAllowed)):
        await vetter.vet("sentiment", "../outside")


async def test_offline_vetting_uses_a_model_already_in_the_hf_cache(hub, make_vetter, monkeypatch):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter()
    online = await vetter.vet("sentiment", "acme/sentiment")
    assert online.plan is not None
    folder = await fetch_model(online.plan, access=vetter.access)
    seen = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    vetted = await make_vetter().vet("sentiment", "acme/sentiment")

    assert vetted.origin == "hub-cache"
    assert vetted.source == str(folder)
    assert len(hub.requests) == seen


async def test_offline_without_a_cached_copy_is_refused_as_hub_unavailable(
    hub, make_vetter, monkeypatch
):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailable):
        await make_vetter().vet("sentiment", "acme/sentiment")
    assert hub.requests == []


async def test_hub_outage_is_refused_and_not_cached(hub, make_vetter):
    hub.add("acme/sentiment", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter()
    hub.down = True

    with pytest.raises(HubUnavailable):
        await vetter.vet("sentiment", "acme/sentiment")
    hub.down = False

    assert (await vetter.vet("sentiment", "acme/sentiment")).origin == "hub"


async def test_unreachable_hub_is_refused_as_hub_unavailable(tmp_path, rules, clock, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    settings = Settings(_env_file=None, hf_token=None, allow_any_hub_model=True)
    access = HubAccess(endpoint="http://127.0.0.1:9", cache_dir=tmp_path)
    vetter = ModelVetter(settings, rules, access=access, clock=clock)

    with pytest.raises(HubUnavailable):
        await vetter.vet("sentiment", "acme/sentiment")


async def test_search_lists_hub_models_for_the_task_by_downloads(hub, make_vetter, rules):
    hub.add("acme/popular", {}, pipeline_tag="text-classification", downloads=900, likes=5)
    hub.add("acme/niche", {}, pipeline_tag="text-classification", downloads=10)
    hub.add("acme/banned", {}, pipeline_tag="text-classification", downloads=500)
    hub.add("acme/writer", {}, pipeline_tag="text-generation", downloads=10_000)
    rules.rules.append(Rule("acme/banned", "deny"))
    vetter = make_vetter(allow_any_hub_model=True)

    found = await vetter.search_models("sentiment")
    narrowed = await vetter.search_models("sentiment", "nich")

    assert [item.model_id for item in found] == ["acme/popular", "acme/niche"]
    assert (found[0].downloads, found[0].likes, found[0].origin) == (900, 5, "hub")
    assert [item.model_id for item in narrowed] == ["acme/niche"]
    assert hub.count("pipeline_tag=text-classification") == 2
    assert hub.count("sort=downloads") == 2


async def test_search_lists_allowed_and_model_dir_models_when_offline(
    hub, make_vetter, rules, tmp_path, monkeypatch
):
    model_dir = tmp_path / "models"
    write_model(model_dir / "acme" / "local-sentiment", model_files())
    write_model(model_dir / "acme" / "local-writer", model_files("GPT2LMHeadModel"))
    rules.rules += [Rule("acme/allowed", "allow"), Rule("acme/denied", "deny")]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    vetter = make_vetter(model_dir=model_dir, allow_any_hub_model=True)

    found = await vetter.search_models("sentiment")

    assert [(item.model_id, item.origin) for item in found] == [
        (SENTIMENT_DEFAULT, "default"),
        ("acme/allowed", "allowed"),
        ("acme/local-sentiment", "model-dir"),
    ]
    assert [item.model_id for item in await vetter.search_models("sentiment", "LOCAL")] == [
        "acme/local-sentiment"
    ]
    assert hub.requests == []


async def test_search_does_not_list_hub_models_the_policy_would_refuse(hub, make_vetter):
    hub.add("acme/popular", {}, pipeline_tag="text-classification", downloads=900)

    found = await make_vetter(allow_any_hub_model=False).search_models("sentiment", limit=5)

    assert [item.model_id for item in found] == [SENTIMENT_DEFAULT]
    assert hub.requests == []


async def test_search_falls_back_to_allowed_models_when_the_hub_is_unreachable(
    tmp_path, rules, clock, monkeypatch
):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    settings = Settings(_env_file=None, hf_token=None, allow_any_hub_model=True)
    access = HubAccess(endpoint="http://127.0.0.1:9", cache_dir=tmp_path)
    vetter = ModelVetter(settings, rules, access=access, clock=clock, hub_timeout_s=0.5)

    found = await vetter.search_models("generate")

    assert [item.model_id for item in found] == [get_task("generate").default_model]


async def test_hf_token_is_sent_to_the_hub_but_never_logged(hub, make_vetter, caplog):
    caplog.set_level(logging.DEBUG)
    hub.add("acme/gated", model_files(), pipeline_tag="text-classification", gated=True)
    hub.add("acme/open", model_files(), pipeline_tag="text-classification")
    vetter = make_vetter(token=TOKEN)
    errors = []

    for model_id in ("acme/gated", "acme/missing"):
        with pytest.raises((GatedModel, UnknownModel)) as refused:
            await vetter.vet("sentiment", model_id)
        errors.append(refused.value)
    opened = await vetter.vet("sentiment", "acme/open")
    assert opened.plan is not None
    await fetch_model(opened.plan, access=vetter.access)
    await vetter.search_models("sentiment")

    assert f"Bearer {TOKEN}" in hub.authorizations
    assert TOKEN not in caplog.text
    assert all(TOKEN not in f"{error!s} {error!r} {error.values}" for error in errors)
    assert TOKEN not in repr(vetter.access)
    assert TOKEN not in json.dumps(Settings(_env_file=None, hf_token=TOKEN).model_dump(mode="json"))


async def test_every_refusal_carries_the_values_its_message_needs(
    hub, make_vetter, rules, monkeypatch
):
    hub.add("acme/gated", model_files(), pipeline_tag="text-classification", gated=True)
    hub.add("acme/writer", model_files("GPT2LMHeadModel"), pipeline_tag="text-generation")
    hub.add("acme/pickled", model_files(weights="pytorch_model.bin"), pipeline_tag="fill-mask")
    hub.add("acme/huge", model_files(), pipeline_tag="fill-mask", num_parameters=10**12)
    hub.add("acme/custom", model_files(auto_map={"AutoModel": "m.M"}), pipeline_tag="fill-mask")
    rules.rules.append(Rule("acme/denied", "deny"))
    open_vetter, closed_vetter = make_vetter(), make_vetter(allow_any_hub_model=False)
    attempts = [
        (open_vetter, "sentiment", "acme/missing"),
        (open_vetter, "sentiment", "acme/gated"),
        (open_vetter, "sentiment", "acme/writer"),
        (open_vetter, "fill", "acme/pickled"),
        (open_vetter, "fill", "acme/huge"),
        (open_vetter, "fill", "acme/custom"),
        (open_vetter, "fill", "acme/denied"),
        (closed_vetter, "fill", "acme/custom"),
    ]
    refusals = []
    for vetter, task, model_id in attempts:
        with pytest.raises(UserFacingError) as refused:
            await vetter.vet(task, model_id)
        refusals.append(refused.value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailable) as offline:
        await make_vetter().vet("sentiment", "acme/elsewhere")
    refusals.append(offline.value)

    assert len({type(refusal) for refusal in refusals}) == len(refusals)
    for refusal in refusals:
        for catalog in CATALOGS.values():
            needed = {name for _, name, _, _ in Formatter().parse(catalog[refusal.key]) if name}
            assert needed <= set(refusal.values), (refusal.key, needed, refusal.values)
