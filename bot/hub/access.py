"""Where and as whom the bot talks to the Hub, and where its local models live.

Vetting, search and downloads share one `HubAccess`, so the token, the cache
and the model folder are read from settings in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants
from pydantic import SecretStr

from bot.config import Settings


@dataclass(frozen=True)
class HubAccess:
    """Where and as whom the bot talks to the Hub; shared by vetting, search and fetch."""

    endpoint: str | None = None
    token: SecretStr | None = None
    cache_dir: Path | None = None
    model_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HubAccess:
        return cls(token=settings.hf_token, model_dir=settings.model_dir)

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
        """`<model_dir>/<model_id>` when it holds a model; never a path outside model_dir."""
        if self.model_dir is None:
            return None
        root = self.model_dir.expanduser().resolve()
        candidate = (root / model_id).resolve()
        if candidate.is_relative_to(root) and (candidate / "config.json").is_file():
            return candidate
        return None


def is_path_like(model_id: str) -> bool:
    """Only explicit paths are read from disk, so a Hub id never resolves to a stray folder."""
    return model_id.startswith(("/", "./", "../", "~"))
