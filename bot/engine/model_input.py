"""What one request hands a model, whichever command it comes from."""

from __future__ import annotations

from collections.abc import Mapping

from bot.engine.chat import ChatPrompt
from bot.engine.inputs import AudioBytes, ImageBytes

# A text; a question with the context to answer it from (`question`, `context`); a photo;
# a sound; or a conversation's next turn with its history.
ModelInput = str | Mapping[str, str] | ImageBytes | AudioBytes | ChatPrompt
