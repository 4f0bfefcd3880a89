"""The task registry: every command's row, its parameters and its formatters.

Code everywhere reads these rows instead of branching on task names.
"""

from bot.tasks.outputs import Picture, VoiceNote
from bot.tasks.params import OPTIONS, PARAMS, ParamSpec, picture_size
from bot.tasks.registry import (
    MASK_TOKENS,
    TASKS,
    TRANSLATION_TARGETS,
    VISION_CHAT_MODEL,
    EngineKind,
    InputKind,
    InputStyle,
    ModelKind,
    OutputKind,
    ParamRules,
    TaskSpec,
    get_task,
    param_rules_from_caps,
)
from bot.tasks.voices import SPEECH_VOICES, speech_language, voice_model
from bot.tasks.work import drawing_work

__all__ = [
    "MASK_TOKENS",
    "OPTIONS",
    "PARAMS",
    "SPEECH_VOICES",
    "TASKS",
    "TRANSLATION_TARGETS",
    "VISION_CHAT_MODEL",
    "EngineKind",
    "InputKind",
    "InputStyle",
    "ModelKind",
    "OutputKind",
    "ParamRules",
    "ParamSpec",
    "Picture",
    "TaskSpec",
    "VoiceNote",
    "drawing_work",
    "get_task",
    "param_rules_from_caps",
    "picture_size",
    "speech_language",
    "voice_model",
]
