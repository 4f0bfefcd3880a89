"""What vetting needs to know about a model, read from the Hub's answer or from its files.

Both sources become one `ModelFacts`, so a Hub model, a model in the local
Hugging Face cache and a directory an operator copied onto an air-gapped
machine are judged by the same rules (`refusal_for`). Reading facts never
loads weights: parameter counts come from the Hub's safetensors summary or
from the safetensors headers, which are plain JSON in front of the tensors.
A diffusers pipeline's facts add its component folders (`bot.hub.pipelines`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import ModelInfo
from huggingface_hub.repocard import metadata_load

from bot.errors import (
    ModelTooLarge,
    NoChatTemplate,
    RemoteCodeRequired,
    UnknownModel,
    UnsafeWeights,
    UnsafeWeightsTryOther,
    UserFacingError,
    WrongTaskModel,
)
from bot.hub.pipelines import PIPELINE_INDEX, PipelineIndex, weight_files
from bot.tasks import TaskSpec, alternative_for

SAFE_WEIGHTS = "*.safetensors"
# The only weight files transformers reads with `use_safetensors=True`: one file, or an
# index and the shards it names. Any other .safetensors file is never loaded, so it
# neither qualifies a model nor counts against the size caps.
SINGLE_WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
OTHER_WEIGHTS = ("*.msgpack", "*.h5", "*.gguf", "*.onnx")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class SizeCaps:
    """The operator's limits; None turns a limit off."""

    max_params: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class ModelFacts:
    """Everything a refusal can depend on, and nothing that needs the weights loaded."""

    model_id: str
    files: tuple[str, ...]
    pipeline_tag: str | None = None
    architectures: tuple[str, ...] = ()
    model_type: str | None = None
    labels: tuple[str, ...] = ()
    has_auto_map: bool = False
    has_chat_template: bool = False
    custom_class: str | None = None
    file_sizes: Mapping[str, int] = field(default_factory=dict)
    lfs_sha256: Mapping[str, str] = field(default_factory=dict)
    num_parameters: int | None = None
    gated: bool = False
    revision: str | None = None
    # The Hub's safetensors conversion pull request these facts were read from, if any.
    conversion_pr: int | None = None
    # Where the files are fetched from when they are not on disk yet.
    source: Literal["hub", "modelscope"] = "hub"
    shards: tuple[str, ...] = ()
    # A diffusers pipeline's component folders (model_index.json's), loaded one by one.
    components: tuple[str, ...] = ()
    local_path: Path | None = field(default=None, compare=False)

    @property
    def is_pipeline(self) -> bool:
        return PIPELINE_INDEX in self.files

    @property
    def loaded_weights(self) -> tuple[str, ...]:
        """The weight files loading reads: `model.safetensors`, else an index's shards; for
        a pipeline, those of every component folder that holds weights, or none at all
        when one of them has no safetensors."""
        if self.is_pipeline:
            found: list[str] = []
            for component in self.components:
                if f"{component}/config.json" in self.files:
                    weights = weight_files(component, self.files)
                    if not weights:
                        return ()
                    found.extend(weights)
            return tuple(found)
        if SINGLE_WEIGHTS in self.files:
            return (SINGLE_WEIGHTS,)
        if WEIGHTS_INDEX in self.files:
            return self.shards or tuple(name for name in self.files if _SHARD.fullmatch(name))
        return ()

    @property
    def weights_bytes(self) -> int | None:
        """Bytes of the weights that would be loaded; None when a size is not known."""
        sizes = [self.file_sizes.get(name) for name in self.loaded_weights]
        known = [size for size in sizes if size is not None]
        return sum(known) if sizes and len(known) == len(sizes) else None

    @property
    def other_weight_files(self) -> tuple[str, ...]:
        patterns = PICKLE_WEIGHTS + OTHER_WEIGHTS
        return tuple(
            name for name in self.files if any(fnmatch(name, pattern) for pattern in patterns)
        )

    def needs_remote_code(self) -> bool:
        """`auto_map` or a custom class means the Hub's own Python runs; so do modeling
        files for an architecture transformers does not ship."""
        if self.has_auto_map or self.custom_class:
            return True
        if self.is_pipeline:
            return any(name.endswith(".py") for name in self.files)
        ships_code = any(
            Path(name).name.startswith(("modeling_", "configuration_")) and name.endswith(".py")
            for name in self.files
        )
        return ships_code and not _transformers_knows(self.model_type)


def _transformers_knows(model_type: str | None) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type is not None and model_type in CONFIG_MAPPING_NAMES


def refusal_for(facts: ModelFacts, spec: TaskSpec, caps: SizeCaps) -> UserFacingError | None:
    """The first reason this model cannot serve this task, most useful to the user first."""
    model = facts.model_id
    kind = spec.model_kind
    if facts.pipeline_tag:
        fits = kind.accepts_tag(facts.pipeline_tag)
        model_task = facts.pipeline_tag
    else:
        fits = kind.accepts_architectures(facts.architectures)
        model_task = ", ".join(facts.architectures) or "unknown"
    if fits and kind.required_label and facts.labels:
        fits = any(kind.required_label in label.lower() for label in facts.labels)
        model_task = model_task if fits else f"labels {', '.join(facts.labels)}"
    if not fits:
        return WrongTaskModel(model=model, task=spec.name, actual=model_task)
    if kind.needs_chat_template and not facts.has_chat_template:
        return NoChatTemplate(model=model)
    if facts.needs_remote_code():
        return RemoteCodeRequired(model=model)
    if not facts.loaded_weights:
        decoys = tuple(name for name in facts.files if fnmatch(name, SAFE_WEIGHTS))
        found = ", ".join(facts.other_weight_files + decoys) or "none"
        alternative = alternative_for(model, spec)
        if alternative is not None:
            return UnsafeWeightsTryOther(model=model, found=found, alternative=alternative)
        return UnsafeWeights(model=model, found=found)
    if caps.max_params and facts.num_parameters and facts.num_parameters > caps.max_params:
        return ModelTooLarge(
            model=model,
            size=describe_params(facts.num_parameters),
            limit=describe_params(caps.max_params),
        )
    if caps.max_bytes and facts.weights_bytes and facts.weights_bytes > caps.max_bytes:
        return ModelTooLarge(
            model=model,
            size=describe_bytes(facts.weights_bytes),
            limit=describe_bytes(caps.max_bytes),
        )
    return None


def describe_params(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit} parameters"
    return f"{count} parameters"


def describe_bytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def _config_facts(
    config: Mapping[str, Any], tokenizer_config: Mapping[str, Any], files: tuple[str, ...]
) -> dict[str, Any]:
    id2label = config.get("id2label") or {}
    return {
        "architectures": tuple(config.get("architectures") or ()),
        "model_type": config.get("model_type"),
        "labels": tuple(str(label) for label in id2label.values()),
        "has_auto_map": bool(config.get("auto_map")),
        "has_chat_template": bool(tokenizer_config.get("chat_template"))
        or any(name in files for name in CHAT_TEMPLATE_FILES),
    }


def facts_from_hub_info(info: ModelInfo) -> ModelFacts:
    """Facts from one `model_info(files_metadata=True)` answer: no file is downloaded."""
    siblings = info.siblings or []
    sizes = {
        sibling.rfilename: size
        for sibling in siblings
        if (size := sibling.lfs.size if sibling.lfs else sibling.size) is not None
    }
    hashes = {
        sibling.rfilename: sibling.lfs.sha256 for sibling in siblings if sibling.lfs is not None
    }
    transformers_info = info.transformers_info
    config = info.config or {}
    files = tuple(sibling.rfilename for sibling in siblings)
    return ModelFacts(
        model_id=info.id,
        files=files,
        pipeline_tag=info.pipeline_tag
        or (transformers_info.pipeline_tag if transformers_info else None),
        custom_class=transformers_info.custom_class if transformers_info else None,
        file_sizes=sizes,
        lfs_sha256=hashes,
        num_parameters=info.safetensors.total if info.safetensors else None,
        gated=bool(info.gated),
        revision=info.sha,
        **_config_facts(config, config.get("tokenizer_config") or {}, files),
    )


def with_pipeline(facts: ModelFacts, index: PipelineIndex) -> ModelFacts:
    """A pipeline's facts: its class as the architecture, its components, any code of its own
    (blocking: looks classes up in diffusers). The Hub's parameter count covers every
    safetensors file of the repo, variants and unused folders too, so it is dropped."""
    return dataclasses.replace(
        facts,
        architectures=(index.class_name,) if index.class_name else (),
        components=tuple(sorted(index.components)),
        custom_class=index.custom_code(facts.files),
        num_parameters=None,
    )


def facts_from_directory(path: Path, model_id: str) -> ModelFacts:
    """Facts from a model's files on disk (blocking: call it in a thread)."""
    index: PipelineIndex | None = None
    try:
        if (path / PIPELINE_INDEX).is_file() and not (path / "config.json").is_file():
            index = PipelineIndex.parse((path / PIPELINE_INDEX).read_text(encoding="utf-8"))
            config: dict[str, Any] = {}
        else:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UnknownModel(model=model_id) from None
    files = sorted(
        item.relative_to(path).as_posix()
        for item in path.rglob("*")
        if item.is_file() and not any(part.startswith(".") for part in item.relative_to(path).parts)
    )
    card = metadata_load(path / "README.md") if (path / "README.md").is_file() else None
    facts = ModelFacts(
        model_id=model_id,
        files=tuple(files),
        pipeline_tag=(card or {}).get("pipeline_tag"),
        file_sizes={name: (path / name).stat().st_size for name in files},
        shards=indexed_shards(path / WEIGHTS_INDEX, files),
        local_path=path,
        **_config_facts(config, _json_file(path / "tokenizer_config.json"), tuple(files)),
    )
    if index is not None:
        facts = with_pipeline(facts, index)
    weights = [path / name for name in facts.loaded_weights]
    counted = sum(safetensors_parameter_count(item) for item in weights)
    return dataclasses.replace(facts, num_parameters=counted or None)


def _json_file(path: Path) -> dict[str, Any]:
    """A JSON object from disk, or an empty one when the file is missing or not an object."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def indexed_shards(index: Path, files: list[str]) -> tuple[str, ...]:
    """The shard files a local index names; all of them must be there, or none counts."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    shards = tuple(sorted({str(name) for name in weight_map.values()}))
    return shards if shards and set(shards) <= set(files) else ()


def safetensors_parameter_count(path: Path) -> int:
    """Count parameters from a safetensors header (8-byte length, then JSON), tensors unread."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _MAX_SAFETENSORS_HEADER:
            return 0
        header = json.loads(handle.read(length))
    return sum(
        math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__"
    )
