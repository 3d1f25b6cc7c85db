"""Tasks: what to ask a model about each sample, how much it may answer, and how the answer is scored.

Tasks and data sets are one namespace: ``resolve("vqav2")`` (or ``photos``, ``shapes:train``, ``blink``,
``flickr8k``, ``chartqa``, any data set of :mod:`visdepth.data`, ``local:my.jsonl``, ``my.jsonl``) returns a
:class:`Task` (``get_task`` is the same lookup, ``resolve_all`` reads a ``--tasks`` list);
``task.load(limit=...)`` its checked samples, ``task.prompt(s)`` the prompt text, ``task.max_new_tokens_for(s)``
the generation budget, ``task.score(s, text)`` the scores, ``task.describe()`` the settings to record
(``prompt_format`` included).
"""

from visdepth.tasks.base import (
    ANSWER_METRICS,
    DEFAULT_FORMAT,
    DEFAULT_MAX_NEW_TOKENS,
    MIXED,
    SCORED_KINDS,
    SHORT_ANSWER_FORMAT,
    PromptFormat,
    Task,
    score_names,
)
from visdepth.tasks.builtin import SHAPES_FORMAT
from visdepth.tasks.registry import (
    TASKS,
    available_tasks,
    catalog,
    get_task,
    list_tasks,
    local_task,
    register_task,
    resolve,
    resolve_all,
)

__all__ = [
    "ANSWER_METRICS",
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_NEW_TOKENS",
    "MIXED",
    "SCORED_KINDS",
    "SHAPES_FORMAT",
    "SHORT_ANSWER_FORMAT",
    "TASKS",
    "PromptFormat",
    "Task",
    "available_tasks",
    "catalog",
    "get_task",
    "list_tasks",
    "local_task",
    "register_task",
    "resolve",
    "resolve_all",
    "score_names",
]
