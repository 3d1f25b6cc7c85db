"""The sample record every experiment consumes: images, a prompt, and what a good answer looks like.

Task kinds group samples by the structure of their output, the axis along which the study finds visual depth
matters (PAPER.md, RQ3 and RQ5):

==================  ===========================================================================================
``single_token``    the answer is one word or token (yes/no, a colour, a count); scored by the first token
``multiple_choice`` pick one of ``choices`` (BLINK-style); also a single-token answer, the option's letter
``exact_match``     short VQA answer of a few words, scored by normalised exact match (VQAv2, ChartQA)
``caption``         multi-token description, scored against ``references`` with BLEU / ROUGE (Flickr8K)
``reasoning``       chain-of-thought prompt; the reasoning text and the final ``answer`` are compared apart
``open``            free generation with no reference; only compared with the full model's own output
==================  ===========================================================================================

:data:`TASK_GROUPS` folds these into the three output structures of the paper plus reasoning.
"""

from __future__ import annotations

import string
from typing import Any, Literal, get_args

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from visdepth.data.images import load_image

TaskKind = Literal["single_token", "multiple_choice", "exact_match", "caption", "reasoning", "open"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)

# Output structure each kind is reported under (PAPER.md RQ3: single-token answers incl. multiple choice,
# short exact-match answers, multi-token generation; RQ5: reasoning).
TASK_GROUPS: dict[str, str] = {
    "single_token": "single_token",
    "multiple_choice": "single_token",
    "exact_match": "short_answer",
    "caption": "generation",
    "open": "generation",
    "reasoning": "reasoning",
}

CHOICE_LABELS = string.ascii_uppercase
#: other names a manifest row's ``task`` may use for a kind
TASK_ALIASES = ("cot", "chain_of_thought")


def _number_to_str(v: Any) -> Any:
    # Manifests often hold counts as numbers ("answer": 2); they are compared as text anyway.
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return v


class Sample(BaseModel):
    """One evaluation item.

    ``prompt`` is the question text only: for multiple choice, the prompt template of the experiment appends the
    lettered ``choices``, so the same sample works under different prompt formats. ``answer`` is either the text
    of one choice or its letter. ``task`` may be left out and is then inferred (see :attr:`kind`).
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    images: list[str] = Field(
        min_length=1, description="file paths or built-in refs such as skimage:astronaut"
    )
    prompt: str = Field(min_length=1)
    answer: str | None = None
    choices: list[str] | None = None
    task: TaskKind | None = None
    references: list[str] | None = Field(default=None, description="reference texts, e.g. several captions")
    meta: dict[str, Any] = Field(default_factory=dict)

    # "data.jsonl line 3" when the sample came from a manifest; for error messages only, never serialised.
    _origin: str | None = PrivateAttr(default=None)

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _scalar_to_str(cls, v: Any) -> Any:
        return _number_to_str(v)

    @field_validator("task", mode="before")
    @classmethod
    def _task_alias(cls, v: Any) -> Any:
        # "cot" (chain of thought) is the name many manifests use for a reasoning row
        return "reasoning" if isinstance(v, str) and v.strip().lower() in TASK_ALIASES else v

    @field_validator("choices", "references", mode="before")
    @classmethod
    def _list_to_str(cls, v: Any) -> Any:
        return [_number_to_str(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _consistent(self) -> Sample:
        if self.choices is not None:
            if len(self.choices) < 2:
                raise ValueError("'choices' needs at least two options")
            if len(self.choices) > len(CHOICE_LABELS):
                raise ValueError(f"'choices' has more than {len(CHOICE_LABELS)} options")
            if self.answer is not None and self.answer_index is None:
                raise ValueError(
                    f"answer {self.answer!r} is neither one of the choices nor a choice letter "
                    f"(A-{CHOICE_LABELS[len(self.choices) - 1]})"
                )
        if self.task == "multiple_choice" and self.choices is None:
            raise ValueError("task 'multiple_choice' needs a 'choices' list")
        if self.references is not None and not self.references:
            raise ValueError("'references' is empty; leave it out or give at least one text")
        return self

    @property
    def kind(self) -> str:
        """The task kind: ``task`` when given, else inferred (choices -> multiple_choice, references -> caption,
        an answer -> exact_match, nothing -> open)."""
        if self.task is not None:
            return self.task
        if self.choices is not None:
            return "multiple_choice"
        if self.references is not None:
            return "caption"
        if self.answer is not None:
            return "exact_match"
        return "open"

    @property
    def group(self) -> str:
        """The output structure the sample is reported under (see :data:`TASK_GROUPS`)."""
        return TASK_GROUPS[self.kind]

    @property
    def answer_index(self) -> int | None:
        """Index of the correct choice (the answer matched as choice text first, then as a letter)."""
        if self.choices is None or self.answer is None:
            return None
        if self.answer in self.choices:
            return self.choices.index(self.answer)
        letter = self.answer.strip().strip("().: ").upper()
        if len(letter) == 1 and letter in CHOICE_LABELS[: len(self.choices)]:
            return CHOICE_LABELS.index(letter)
        return None

    @property
    def origin(self) -> str | None:
        """Where the sample was read from (``"data.jsonl line 3"``), if from a manifest."""
        return self._origin

    def describe(self) -> str:
        """``sample 'x' (data.jsonl line 3)``, for messages."""
        return f"sample {self.id!r}" + (f" ({self._origin})" if self._origin else "")

    def load_images(self) -> list[Image.Image]:
        """The sample's images as RGB PIL images, in order."""
        return load_images(self)


def load_images(sample: Sample) -> list[Image.Image]:
    """The images of ``sample`` as RGB PIL images; a missing or unreadable one raises ``InputError``."""
    return [load_image(ref, where=sample.describe()) for ref in sample.images]
