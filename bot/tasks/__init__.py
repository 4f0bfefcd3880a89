"""The task registry: every command's row, its parameters and its formatters.

Code everywhere reads these rows instead of branching on task names.
"""

from bot.tasks.params import OPTIONS, PARAMS, ParamSpec
from bot.tasks.registry import (
    MASK_TOKENS,
    MODEL_NOTES,
    MODELSCOPE_IDS,
    SAFE_ALTERNATIVES,
    TASKS,
    TRANSLATION_TARGETS,
    EngineKind,
    InputKind,
    InputStyle,
    ModelKind,
    ModelNote,
    ParamRules,
    TaskSpec,
    alternative_for,
    get_task,
    param_rules_from_caps,
)

__all__ = [
    "MASK_TOKENS",
    "MODELSCOPE_IDS",
    "MODEL_NOTES",
    "OPTIONS",
    "PARAMS",
    "SAFE_ALTERNATIVES",
    "TASKS",
    "TRANSLATION_TARGETS",
    "EngineKind",
    "InputKind",
    "InputStyle",
    "ModelKind",
    "ModelNote",
    "ParamRules",
    "ParamSpec",
    "TaskSpec",
    "alternative_for",
    "get_task",
    "param_rules_from_caps",
]
