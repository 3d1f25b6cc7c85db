"""Chain-of-thought prompts for RQ5: the task's own format, a documented wrapper for any question, and the
direct (no chain) prompt of the same question.

``cot_prompt`` chooses where a sample's chain-of-thought prompt comes from:

- ``task``: the task's own chain-of-thought format, i.e. its ``reasoning`` samples (shapes' ``cot`` questions,
  ``task: cot`` / ``task: reasoning`` rows of a manifest), rendered by the task's prompt format; a task without
  such samples is refused;
- ``wrap``: every sample's question (with its lettered options, without the task's answer instruction) in
  :data:`DEFAULT_COT_WRAPPER` (or ``--cot_wrapper``), which asks for a chain ending with ``so the final answer
  is X``;
- ``auto``: the task's own format for its reasoning samples, the wrapper for the others.

The direct prompt (RQ5 "does reasoning compensate?") asks the same question for an answer without a chain: a
sample's ``meta["direct_prompt"]`` when given; for a wrapped sample the task's own prompt; for a sample in the
task's own format its prompt with the chain-of-thought instruction removed (:data:`COT_INSTRUCTION`), or with
:data:`DIRECT_INSTRUCTION` appended when it holds none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.tasks import Task
from visdepth.tasks.base import MIXED, SHORT_ANSWER_INSTRUCTION

CotPrompt = Literal["task", "wrap", "auto"]
#: the wrapper that turns any question into a chain-of-thought prompt; ``{question}`` is the rendered question
DEFAULT_COT_WRAPPER = "{question}\nThink step by step, then end with: so the final answer is <answer>."
#: a chain-of-thought instruction: a sentence asking to think or reason step by step (shapes' "Think step by
#: step.", photos' "Think step by step, then give the final answer in one word.", the default wrapper's)
COT_INSTRUCTION = re.compile(r"[^.?!\n]*\bstep[- ]by[- ]step\b[^.?!\n]*[.?!]?", re.IGNORECASE)
#: appended to a direct prompt whose chain-of-thought prompt held no known instruction to remove
DIRECT_INSTRUCTION = SHORT_ANSWER_INSTRUCTION


@dataclass(frozen=True)
class Prompts:
    """The two prompts of one sample and where they came from (recorded in its rows)."""

    cot: str
    direct: str
    #: ``task`` (the task's own format) or ``wrapper``
    source: str
    #: ``meta``, ``task prompt``, ``instruction removed`` or ``instruction appended``
    direct_source: str


def check_wrapper(template: str) -> str:
    """The wrapper template, or a one-line ConfigError when it cannot be filled with ``{question}``."""
    try:
        filled = template.format(question="Q")
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"--cot_wrapper {template!r} is not a format string with only {{question}} ({err}); write e.g. "
            "'{question} Think step by step.'"
        ) from None
    if "Q" not in filled or "{question}" not in template:
        raise ConfigError(f"--cot_wrapper {template!r} has no {{question}}; put {{question}} where it goes.")
    return template


def own_format(task: Task, sample: Sample) -> bool:
    """Whether the task gives ``sample`` a chain-of-thought format of its own (a reasoning sample)."""
    return task.kind_of(sample) == "reasoning"


def no_cot_message(name: str, task: Task) -> str:
    kinds = task.kind if task.kind != MIXED else "of other kinds"
    return (
        f"task {name!r} has no chain-of-thought samples (its samples are {kinds}); pass --cot_prompt wrap (or "
        "auto) to wrap its questions in the chain-of-thought prompt, or choose a task with reasoning samples "
        "(shapes, a manifest with task: cot rows)."
    )


def select_samples(name: str, task: Task, mode: CotPrompt, limit: int | None) -> tuple[list[Sample], int]:
    """The samples RQ5 measures, and how many of the task's samples were left out for having no
    chain-of-thought format: in ``task`` mode the task's reasoning samples (the first ``limit`` of them),
    otherwise the first ``limit`` samples whatever their kind (none left out)."""
    if mode != "task":
        return task.load(limit), 0
    if task.kind not in (MIXED, "reasoning"):
        raise ConfigError(no_cot_message(name, task))
    loaded = task.load(None)
    own = [s for s in loaded if own_format(task, s)]
    if not own:
        raise ConfigError(no_cot_message(name, task))
    return own[:limit], len(loaded) - len(own)


def direct_prompt(task: Task, sample: Sample) -> tuple[str, str]:
    """The direct (no chain) prompt of ``sample`` and where it came from (see the module notes)."""
    given = sample.meta.get("direct_prompt")
    if isinstance(given, str) and given.strip():
        return given.strip(), "meta"
    if not own_format(task, sample):
        return task.prompt(sample), "task prompt"
    cot = task.prompt(sample)
    direct = COT_INSTRUCTION.sub(" ", cot)
    if direct != cot:
        # white space inside lines only: the lettered options keep their line breaks
        return "\n".join(
            " ".join(line.split()) for line in direct.splitlines()
        ).strip(), "instruction removed"
    return f"{cot}\n{DIRECT_INSTRUCTION}", "instruction appended"


def prompts_for(task: Task, sample: Sample, mode: CotPrompt, wrapper: str) -> Prompts:
    """The chain-of-thought and direct prompts of ``sample`` under ``mode`` (see the module notes)."""
    direct, direct_source = direct_prompt(task, sample)
    if own_format(task, sample) and mode != "wrap":
        return Prompts(task.prompt(sample), direct, "task", direct_source)
    if mode == "task":
        raise ConfigError(no_cot_message(task.name, task))
    question = task.prompt_format.render(sample, "open")  # the question and its options, no instruction
    return Prompts(wrapper.format(question=question), direct, "wrapper", direct_source)
