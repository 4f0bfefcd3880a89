"""Where and as whom the bot talks to the Hub, and where its local models live.

Vetting, search and downloads share one `HubAccess`, so the endpoint (the Hub
or a mirror of it), the token, the cache and the model folder are read from
settings in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from huggingface_hub import HfApi, constants
from pydantic import SecretStr

from bot.config import Settings
from bot.hub.modelscope import ModelScopeAccess


@dataclass(frozen=True)
class HubAccess:
    """Where and as whom the bot talks to the Hub; shared by vetting, search and fetch."""

    endpoint: str | None = None
    token: SecretStr | None = None
    cache_dir: Path | None = None
    model_dir: Path | None = None
    source: Literal["hub", "modelscope"] = "hub"
    modelscope_endpoint: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HubAccess:
        return cls(
            endpoint=settings.hf_endpoint.rstrip("/") if settings.hf_endpoint else None,
            token=settings.hf_token,
            model_dir=settings.model_dir,
            source=settings.model_source,
            modelscope_endpoint=settings.modelscope_endpoint,
        )

    @property
    def modelscope(self) -> ModelScopeAccess:
        """Where ModelScope is, and the bot's folder of models fetched from it (beside the
        Hugging Face cache)."""
        cache = self.cache_dir or Path(constants.HF_HUB_CACHE)
        return ModelScopeAccess(
            endpoint=self.modelscope_endpoint,
            token=os.environ.get("MODELSCOPE_API_TOKEN") or None,
            folder=cache.parent / "hfbot-modelscope",
        )

    def describe_source(self) -> str:
        """Where models come from, for messages an operator reads."""
        if self.source == "modelscope":
            return f"ModelScope ({self.modelscope_endpoint or 'modelscope.cn'})"
        return self.endpoint or constants.ENDPOINT

    def token_arg(self) -> str | bool:
        """The token for huggingface_hub calls; False so a token saved by `hf auth login`
        for someone else is never sent on the bot's behalf."""
        return self.token.get_secret_value() if self.token else False

    @property
    def offline(self) -> bool:
        return constants.HF_HUB_OFFLINE

    def api(self) -> HfApi:
        return HfApi(endpoint=self.endpoint, token=self.token_arg())

    def model_dir_path(self, model_id: str) -> Path | None:
        """`<model_dir>/<model_id>` when it holds a model; never a path outside model_dir.

        Hub ids are case-insensitive, so `acme/sent` finds a folder fetched as
        `Acme/Sent`: a model already here is never downloaded again.
        """
        if self.model_dir is None:
            return None
        root = self.model_dir.expanduser().resolve()
        candidate = (root / model_id).resolve()
        if candidate.is_relative_to(root) and holds_model(candidate):
            return candidate
        wanted = hub_form(model_id)
        for folder in model_folders(root):
            if hub_form(folder.relative_to(root).as_posix()) == wanted:
                return folder
        return None


# What makes a folder a model: a transformers config, or a diffusers pipeline's index.
MODEL_MARKERS = ("config.json", "model_index.json")


def holds_model(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in MODEL_MARKERS)


def model_folders(root: Path) -> list[Path]:
    """Folders `<name>` and `<owner>/<name>` under `root` that hold a model, sorted
    (blocking: disk). A pipeline's own components (`unet/config.json`) are not models."""
    found = {
        marker.parent
        for name in MODEL_MARKERS
        for marker in (*root.glob(f"*/{name}"), *root.glob(f"*/*/{name}"))
    }
    return sorted(folder for folder in found if not holds_model(folder.parent))


def is_path_like(model_id: str) -> bool:
    """Only explicit paths are read from disk, so a Hub id never resolves to a stray folder."""
    return model_id.startswith(("/", "./", "../", "~"))


def hub_form(model_id: str) -> str:
    """A model id as the Hub reads it: case-folded, without `./`, empty or trailing parts.

    `acme/sent`, `Acme/Sent`, `acme//sent`, `./acme/sent` and `acme/sent/` all
    name one Hub repo, so an allow or deny rule must match every one of them.
    """
    return "/".join(part for part in model_id.strip().split("/") if part not in ("", ".")).lower()


def model_keys(model_id: str, folder: Path | None = None) -> frozenset[str]:
    """Every spelling an admin's rule about this model may use: its Hub form and its folder."""
    keys = {hub_form(model_id)}
    if folder is not None:
        keys.add(str(folder))
    return frozenset(keys)


def rule_id(model_id: str) -> str:
    """The one spelling a rule is stored under, so a later rule on the same model replaces it
    (blocking: a path is resolved on disk)."""
    text = model_id.strip()
    if is_path_like(text):
        return str(Path(text).expanduser().resolve())
    return hub_form(text)


def rule_keys(model_id: str) -> frozenset[str]:
    """What a rule written as `model_id` matches (blocking: a path is resolved on disk)."""
    if is_path_like(model_id.strip()):
        return model_keys(model_id, Path(model_id.strip()).expanduser().resolve())
    return model_keys(model_id)
