"""A diffusers pipeline as vetting reads it: its `model_index.json`, from metadata only.

A diffusers repo has no `config.json` at its root. Its `model_index.json` names the
pipeline class and, per component folder (unet, vae, text_encoder, tokenizer,
scheduler, …), the library and class that load it. Vetting judges a pipeline by the
same rules as a transformers model (`bot.hub.facts`): each component folder that
holds weights (it has a `config.json`) must ship them as safetensors, their sizes
are summed, and no code of the repo's own may run: the pipeline and every component
must be a class diffusers or transformers ship (a `[module, class]` pair naming a
file of the repo, as custom pipelines do, is refused), and any `.py` file in the
repo is a refusal too. Nothing is loaded; diffusers is imported only to look names up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

PIPELINE_INDEX = "model_index.json"


@dataclass(frozen=True)
class PipelineIndex:
    """What `model_index.json` says: the pipeline class, each component's (library, class).

    `class_name` is None where the index names a custom pipeline (a `[file, class]`
    pair); components set to `[null, null]` (no safety checker) are left out.
    """

    class_name: str | None
    components: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    custom_pipeline: str | None = None

    @classmethod
    def parse(cls, raw: str | bytes) -> PipelineIndex:
        """Raises ValueError when the file is not a pipeline index."""
        index = json.loads(raw)
        if not isinstance(index, dict) or "_class_name" not in index:
            raise ValueError("not a diffusers model_index.json")
        name = index["_class_name"]
        components = {
            key: (str(value[0]), str(value[1]))
            for key, value in index.items()
            if not key.startswith("_")
            and isinstance(value, list)
            and len(value) == 2
            and value[0]
            and value[1]
        }
        if isinstance(name, str):
            return cls(name, components)
        return cls(None, components, custom_pipeline=".".join(str(part) for part in name))

    def custom_code(self, files: Iterable[str]) -> str | None:
        """What in this pipeline would run the repo's own code, or None (blocking: imports
        diffusers to look its classes up)."""
        if self.custom_pipeline is not None:
            return f"pipeline {self.custom_pipeline}"
        code = sorted(name for name in files if name.endswith(".py"))
        if code:
            return code[0]
        import diffusers

        if self.class_name not in dir(diffusers):
            return f"pipeline {self.class_name}"
        for component, (library, class_name) in sorted(self.components.items()):
            module = _library(library)
            if module is None or class_name not in dir(module):
                return f"{component}: {library}.{class_name}"
        return None


def _library(name: str) -> ModuleType | None:
    """The module a component's library names, when it is one this bot trusts: diffusers,
    transformers, or one of diffusers' own pipeline packages (a Stable Diffusion safety
    checker is `["stable_diffusion", "StableDiffusionSafetyChecker"]`)."""
    import diffusers.pipelines
    import transformers

    modules: dict[str, ModuleType] = {"diffusers": diffusers, "transformers": transformers}
    if name in modules:
        return modules[name]
    if name.isidentifier() and name in dir(diffusers.pipelines):
        found = getattr(diffusers.pipelines, name)
        return found if isinstance(found, ModuleType) else None
    return None


def weight_files(component: str, files: Iterable[str]) -> tuple[str, ...]:
    """The safetensors weights diffusers and transformers read from one component folder:
    one file, or an index's numbered shards; nothing when the folder has neither."""
    present = set(files)
    for stem in ("diffusion_pytorch_model", "model"):
        single = f"{component}/{stem}.safetensors"
        if single in present:
            return (single,)
        if f"{single}.index.json" in present:
            prefix = f"{component}/{stem}-"
            return tuple(
                sorted(
                    name
                    for name in present
                    if name.startswith(prefix)
                    and name.endswith(".safetensors")
                    and "-of-" in name
                    and name.count("/") == component.count("/") + 1
                )
            )
    return ()
