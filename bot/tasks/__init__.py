"""The task registry: every command's row, its parameters and its formatters.

Code everywhere reads these rows instead of branching on task names.
"""

from bot.tasks.params import OPTIONS, PARAMS, ParamSpec
from bot.tasks.registry import (
    MASK_TOKENS,
    TASKS,
    TRANSLATION_TARGETS,
    EngineKind,
    InputKind,
    InputStyle,
    ModelKind,
    ParamRules,
    TaskSpec,
    get_task,
    param_rules_from_caps,
)

__all__ = [
    "MASK_TOKENS",
    "OPTIONS",
    "PARAMS",
    "TASKS",
    "TRANSLATION_TARGETS",
    "EngineKind",
    "InputKind",
    "InputStyle",
    "ModelKind",
    "ParamRules",
    "ParamSpec",
    "TaskSpec",
    "get_task",
    "param_rules_from_caps",
]
