"""How the settings commands read their words: `/model <task> <model>`, `/set [task] <param>
<value>`, and how a stored value is shown. Personal and group settings commands read them
the same way, so the reading lives below both."""

from __future__ import annotations

from bot.errors import UsageHint
from bot.tasks import OPTIONS, PARAMS, TASKS, TaskSpec, get_task
from handlers.request.parsing import command_text
from handlers.request.turn import Turn


def command_words(turn: Turn) -> list[str]:
    return command_text(turn.message).split()


def shown_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def task_and_model(turn: Turn, command: str) -> tuple[TaskSpec, str | None]:
    words = command_words(turn)
    if len(words) != 2:
        raise UsageHint("error.usage_model", command=command)
    spec = get_task(words[0])
    return spec, None if words[1].lower() in ("default", "reset") else words[1]


def param_words(turn: Turn, command: str) -> tuple[str | None, str, str]:
    """`[task] <param> <value>` as written: the task word (None when left out), param, value."""
    words = command_words(turn)
    if len(words) == 3:
        return words[0], words[1], words[2]
    if len(words) != 2:
        raise UsageHint("error.usage_set", command=command, known=", ".join([*PARAMS, *OPTIONS]))
    return None, words[0], words[1]


def tasks_reading(param: str) -> list[str]:
    """The tasks that read a parameter, in the registry's order (generate first)."""
    return [spec.name for spec in TASKS.values() if param in spec.params]


def task_param_value(turn: Turn, command: str) -> tuple[TaskSpec | None, str, str]:
    """`[task] <param> <value>`; with no task, the first one the parameter belongs to."""
    task, param, value = param_words(turn, command)
    if task is not None:
        return get_task(task), param, value
    if param in OPTIONS:
        return None, param, value
    readers = tasks_reading(param)
    return (TASKS[readers[0]] if readers else TASKS["generate"]), param, value
