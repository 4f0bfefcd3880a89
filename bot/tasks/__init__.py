"""The task registry: every command's row, its parameters and its formatters.

Code everywhere reads these rows instead of branching on task names.
"""

from bot.tasks.outputs import Picture, VoiceNote
from bot.tasks.params import OPTIONS, PARAMS, ParamSpec, picture_size
from bot.tasks.registry import (
    MASK_TOKENS,
    MODEL_NOTES,
    MODELSCOPE_IDS,
    SAFE_ALTERNATIVES,
    TASKS,
    TRANSLATION_TARGETS,
    VISION_CHAT_MODEL,
    EngineKind,
    InputKind,
    InputStyle,
    ModelKind,
    ModelNote,
    OutputKind,
    ParamRules,
    TaskSpec,
    alternative_for,
    get_task,
    param_rules_from_caps,
)
from bot.tasks.voices import SPEECH_VOICES, speech_language, voice_model
from bot.tasks.work import drawing_work

__all__ = [
    "MASK_TOKENS",
    "MODELSCOPE_IDS",
    "MODEL_NOTES",
    "OPTIONS",
    "PARAMS",
    "SAFE_ALTERNATIVES",
    "SPEECH_VOICES",
    "TASKS",
    "TRANSLATION_TARGETS",
    "VISION_CHAT_MODEL",
    "EngineKind",
    "InputKind",
    "InputStyle",
    "ModelKind",
    "ModelNote",
    "OutputKind",
    "ParamRules",
    "ParamSpec",
    "Picture",
    "TaskSpec",
    "VoiceNote",
    "alternative_for",
    "drawing_work",
    "get_task",
    "param_rules_from_caps",
    "picture_size",
    "speech_language",
    "voice_model",
]
