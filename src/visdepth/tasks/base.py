"""The task contract: how a sample becomes a prompt, how long an answer may be, and how an answer is scored.

A :class:`Task` groups samples by output structure (PAPER.md RQ3): its ``kind`` is one of
:data:`~visdepth.data.sample.TASK_KINDS`, or ``"mixed"`` for a data set whose rows carry their own kind (the
built-in ``photos`` and ``shapes`` sets, any JSONL manifest); a mixed task scores each sample by the sample's
kind, :meth:`Task.group` splits a list of samples into one group per kind and :meth:`Task.for_kind` gives the
task of one group (its prompt format, generation budget and scoring).

Scores per kind (the first key is the main score):

===================  ============================================================================================
``single_token``     ``accuracy`` (the answer's words start the prediction), ``exact_match``
``multiple_choice``  ``accuracy`` (from the option letters' log-probabilities when given, else from the text),
                     ``accuracy_logprob``, ``answer_logprob``, ``accuracy_text``
``exact_match``      the task's ``answer_metric`` (``exact_match``, ``vqa_accuracy`` or ``relaxed_accuracy``),
                     then ``exact_match``
``caption``          ``rougeL`` (F1, best reference), ``bleu`` (sentence BLEU, 0-100), ``similarity`` (with an
                     encoder); :meth:`Task.aggregate` names their mean ``bleu_sentence`` and gives corpus BLEU
                     as ``bleu``
``reasoning``        ``answer_accuracy`` (final answer after the answer phrase), ``answer_found``,
                     ``reasoning_rougeL`` (against a reference chain of thought in ``meta["reasoning"]``)
``open``             nothing: such samples are only compared with the full model (:meth:`Task.compare`)
===================  ============================================================================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from visdepth.data.builtin import DATASETS
from visdepth.data.sample import CHOICE_LABELS, TASK_GROUPS, TASK_KINDS, Sample
from visdepth.errors import ConfigError
from visdepth.metrics import output as om

MIXED = "mixed"
SCORED_KINDS = ("single_token", "multiple_choice", "exact_match", "caption", "reasoning")
ANSWER_METRICS = ("exact_match", "vqa_accuracy", "relaxed_accuracy")

# Generation budget per kind: enough for the answer plus a little slack for models that add a word; VQA and
# ChartQA use 16 as in lmms-eval, chains of thought need room to reason.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {
    "single_token": 8,
    "multiple_choice": 4,
    "exact_match": 16,
    "caption": 64,
    "reasoning": 256,
    "open": 128,
}

MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
SHORT_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."


@dataclass(frozen=True)
class PromptFormat:
    """How a sample's text becomes the prompt (the model adapter adds image placeholders and chat template).

    The prompt is the sample's question; when the sample has ``choices``, one line per option follows,
    ``choice_template`` filled with ``label`` (A, B, ...) and ``choice``; then the instruction of the sample's
    kind from ``instructions``, if any and not already in the question. The parts are joined with
    ``separator``. For example, with the default format a multiple-choice sample renders as::

        Which animal is shown in the photo?
        A. dog
        B. cat
        Answer with the option's letter from the given choices directly.
    """

    name: str
    choice_template: str = "{label}. {choice}"
    separator: str = "\n"
    instructions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.instructions) - set(TASK_KINDS)
        if unknown:
            raise ConfigError(
                f"prompt format {self.name!r} has instructions for unknown kinds {sorted(unknown)}; "
                f"use kinds among {', '.join(TASK_KINDS)}"
            )
        try:
            self.choice_template.format(label="A", choice="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"choice template {self.choice_template!r} is not a format string with {{label}} and {{choice}}"
            ) from exc

    def render(self, sample: Sample, kind: str | None = None) -> str:
        """The prompt text of ``sample`` scored as ``kind`` (default: the sample's own kind)."""
        kind = kind or sample.kind
        question = sample.prompt.strip()
        parts = [question]
        if sample.choices:
            parts += [
                self.choice_template.format(label=CHOICE_LABELS[i], choice=c)
                for i, c in enumerate(sample.choices)
            ]
        instruction = self.instructions.get(kind, "")
        if instruction and instruction not in question:
            parts.append(instruction)
        return self.separator.join(parts)

    def describe(self) -> dict[str, Any]:
        """The format as JSON-ready data (recorded in results as ``prompt_format``)."""
        return {
            "name": self.name,
            "choice_template": self.choice_template,
            "separator": self.separator,
            "instructions": dict(self.instructions),
        }


DEFAULT_FORMAT = PromptFormat("lettered", instructions={"multiple_choice": MC_INSTRUCTION})
"""Questions as written; lettered options and the LLaVA-1.5 multiple-choice instruction."""

SHORT_ANSWER_FORMAT = PromptFormat(
    "lettered-short-answer",
    instructions={"multiple_choice": MC_INSTRUCTION, "exact_match": SHORT_ANSWER_INSTRUCTION},
)
"""As :data:`DEFAULT_FORMAT`, plus LLaVA-1.5's short-answer instruction for VQA (VQAv2, ChartQA)."""


Loader = Callable[..., Sequence[Sample]]


def score_names(kind: str, answer_metric: str = "exact_match") -> list[str]:
    """The score keys a task of ``kind`` reports, main score first (optional ones included)."""
    if kind == "single_token":
        return ["accuracy", "exact_match"]
    if kind == "multiple_choice":
        return ["accuracy", "accuracy_logprob", "answer_logprob", "accuracy_text"]
    if kind == "exact_match":
        return list(dict.fromkeys([answer_metric, "exact_match"]))
    if kind == "caption":
        return ["rougeL", "bleu", "similarity"]
    if kind == "reasoning":
        return ["answer_accuracy", "answer_found", "reasoning_rougeL"]
    return []


class Task:
    """A named evaluation task: data, prompt format, generation budget and scoring (see the module notes).

    Parameters
    ----------
    name : str
        Registry name (``vqav2``), recorded in results.
    kind : str
        A scored task kind, or ``"mixed"`` to score every sample by its own kind.
    prompt_format : PromptFormat
        How prompts are rendered.
    max_new_tokens : int or mapping, optional
        Generation budget: one number for every kind, or per kind; missing kinds use
        :data:`DEFAULT_MAX_NEW_TOKENS`.
    answer_metric : str
        How short answers (``exact_match`` kind, and final answers of ``reasoning``) are scored:
        ``exact_match`` (normalised, against the answer and ``meta["aliases"]``), ``vqa_accuracy`` (against the
        human answers in ``meta["answers"]``) or ``relaxed_accuracy`` (ChartQA).
    answer_pattern : str
        Regular expression that finds the final answer of a chain of thought (:func:`split_reasoning`).
    loader : callable, optional
        ``loader(split=..., limit=..., **kwargs) -> samples``.
    splits, default_split, split
        The splits the loader knows, the one used when none is chosen, and the chosen one.
    dataset : str, optional
        The :mod:`visdepth.data` data set the task is built on: it then reads that data set (unless a
        ``loader`` is given), takes its splits and description unless given, and may share its name (tasks and
        data sets are one namespace; any other task under a data set's name is refused).
    source : str
        Where the data comes from (a hub id, a file), recorded in results; ``visdepth.data:<dataset>`` for a
        task built on a data set.
    missing_answer_fix : str
        The fix named when samples lack answers.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        description: str = "",
        prompt_format: PromptFormat = DEFAULT_FORMAT,
        max_new_tokens: int | Mapping[str, int] | None = None,
        answer_metric: str = "exact_match",
        answer_pattern: str = om.DEFAULT_ANSWER_PATTERN,
        loader: Loader | None = None,
        splits: Sequence[str] = (),
        default_split: str | None = None,
        split: str | None = None,
        dataset: str | None = None,
        source: str = "",
        missing_answer_fix: str = "add an 'answer' field",
    ) -> None:
        if kind != MIXED and kind not in TASK_KINDS:
            raise ConfigError(f"task kind {kind!r} is unknown; use one of {', '.join(TASK_KINDS)} or {MIXED}")
        if answer_metric not in ANSWER_METRICS:
            raise ConfigError(
                f"answer metric {answer_metric!r} is unknown; use one of {', '.join(ANSWER_METRICS)}"
            )
        self.name = name
        self.kind = kind
        self.description = description
        self.prompt_format = prompt_format
        budget = dict(DEFAULT_MAX_NEW_TOKENS)
        if isinstance(max_new_tokens, int):
            budget = dict.fromkeys(budget, max_new_tokens)
        elif max_new_tokens is not None:
            budget.update(max_new_tokens)
        bad = {k: v for k, v in budget.items() if k not in TASK_KINDS or not isinstance(v, int) or v < 1}
        if bad:
            raise ConfigError(f"max_new_tokens {bad} is invalid; give positive whole numbers for known kinds")
        self._budget = budget
        self.answer_metric = answer_metric
        self.answer_pattern = answer_pattern
        om._compile(answer_pattern)  # fail at definition, not at the first score
        self.dataset = dataset
        if dataset is not None:
            spec = DATASETS.find(dataset)
            if spec is not None:
                splits = splits or spec.splits
                default_split = default_split if default_split is not None else spec.default_split
                self.description = description or spec.description
            if loader is None:
                loader = _dataset_loader(dataset)
            source = source or f"visdepth.data:{dataset}"
        self.loader = loader
        self.splits = tuple(splits)
        self.default_split = (
            default_split if default_split is not None else (self.splits[0] if self.splits else None)
        )
        self.split = split
        self.source = source
        self.missing_answer_fix = missing_answer_fix

    # --- structure -----------------------------------------------------------------------------------------

    def kind_of(self, sample: Sample) -> str:
        """The kind ``sample`` is scored as: the task's kind, or the sample's own for a mixed task."""
        return sample.kind if self.kind == MIXED else self.kind

    def for_kind(self, kind: str) -> Task:
        """This task restricted to one kind (a mixed task's view of one group of samples)."""
        if kind not in TASK_KINDS:
            raise ConfigError(f"task kind {kind!r} is unknown; use one of {', '.join(TASK_KINDS)}")
        if self.kind not in (MIXED, kind):
            raise ConfigError(f"task {self.name!r} is a {self.kind} task; it has no {kind} samples")
        view = copy.copy(self)
        view.kind = kind
        return view

    def group(self, samples: Iterable[Sample]) -> dict[str, list[Sample]]:
        """Samples by the kind they are scored as, in the order of :data:`TASK_KINDS` (empty kinds left out)."""
        groups: dict[str, list[Sample]] = {k: [] for k in TASK_KINDS}
        for s in samples:
            groups[self.kind_of(s)].append(s)
        return {k: v for k, v in groups.items() if v}

    @property
    def max_new_tokens(self) -> int:
        """Generation budget of the task's kind; for a mixed task the largest, a safe bound for any sample."""
        if self.kind == MIXED:
            return max(self._budget.values())
        return self._budget[self.kind]

    def max_new_tokens_for(self, sample_or_kind: Sample | str) -> int:
        """Generation budget of one sample (or kind)."""
        kind = sample_or_kind if isinstance(sample_or_kind, str) else self.kind_of(sample_or_kind)
        return self._budget[kind]

    def prompt(self, sample: Sample) -> str:
        """The prompt text of ``sample`` (question, lettered options, instruction), without image placeholders."""
        kind = self.kind_of(sample)
        if kind == "multiple_choice" and not sample.choices:
            raise ConfigError(
                f"{sample.describe()} has no choices but task {self.name!r} asks multiple choice"
            )
        return self.prompt_format.render(sample, kind)

    def choice_letters(self, sample: Sample) -> list[str]:
        """The option letters of a multiple-choice sample (``["A", "B", "C", "D"]``), for letter log-probs."""
        if not sample.choices:
            raise ConfigError(
                f"{sample.describe()} has no choices; only multiple-choice samples have letters"
            )
        return list(CHOICE_LABELS[: len(sample.choices)])

    # --- answers -------------------------------------------------------------------------------------------

    @staticmethod
    def accepted_answers(sample: Sample) -> list[str]:
        """The answer and its accepted variants (``meta["aliases"]``)."""
        out = [sample.answer] if sample.answer is not None else []
        aliases = sample.meta.get("aliases")
        if isinstance(aliases, list):
            out += [str(a) for a in aliases]
        return out

    @classmethod
    def human_answers(cls, sample: Sample) -> list[str]:
        """The human answers of a VQA sample (``meta["answers"]``, repeats kept), else the accepted answers."""
        answers = sample.meta.get("answers")
        if isinstance(answers, list) and answers:
            return [str(a) for a in answers]
        return cls.accepted_answers(sample)

    def _answer_score(self, sample: Sample, prediction: str) -> float:
        if self.answer_metric == "vqa_accuracy":
            return om.vqa_accuracy(prediction, self.human_answers(sample))
        refs = self.accepted_answers(sample)
        if self.answer_metric == "relaxed_accuracy":
            return om.relaxed_accuracy(prediction, refs)
        return om.exact_match(prediction, refs)

    def _answer_letter(self, sample: Sample) -> str | None:
        idx = sample.answer_index
        return None if idx is None else CHOICE_LABELS[idx]

    # --- scoring -------------------------------------------------------------------------------------------

    def score(
        self,
        sample: Sample,
        prediction: str,
        *,
        choice_logprobs: Mapping[str, float] | None = None,
        encoder: om.SentenceEncoder | None = None,
    ) -> dict[str, float]:
        """Scores of one prediction against the sample's answer, main score first (see the module notes).

        ``prediction`` is the decoded generation (special tokens removed). ``choice_logprobs`` (from
        :func:`~visdepth.metrics.output.choice_logprobs`) scores a multiple-choice sample by the most likely
        letter, the paper's single-token reading; ``encoder`` adds ``similarity`` to caption scores.
        """
        kind = self.kind_of(sample)
        pred = str(prediction).strip()
        self._require_answer(sample, kind)
        if kind == "single_token":
            refs = self.accepted_answers(sample)
            return {"accuracy": om.prefix_match(pred, refs), "exact_match": om.exact_match(pred, refs)}
        if kind == "multiple_choice":
            return self._score_choice(sample, pred, choice_logprobs)
        if kind == "exact_match":
            out = {self.answer_metric: self._answer_score(sample, pred)}
            if self.answer_metric != "exact_match":
                out["exact_match"] = om.exact_match(pred, self.accepted_answers(sample))
            return out
        if kind == "caption":
            refs = self._references(sample)
            out = {"rougeL": om.rouge_l(pred, refs), "bleu": om.sentence_bleu(pred, refs)}
            if encoder is not None:
                out["similarity"] = encoder.max_similarity(pred, refs)
            return out
        if kind == "reasoning":
            return self._score_reasoning(sample, pred)
        return {}

    def _score_choice(
        self, sample: Sample, pred: str, choice_logprobs: Mapping[str, float] | None
    ) -> dict[str, float]:
        right = self._answer_letter(sample)
        letters = self.choice_letters(sample)
        out: dict[str, float] = {}
        if choice_logprobs is not None:
            missing = [x for x in letters if x not in choice_logprobs]
            if missing:
                raise ConfigError(
                    f"choice_logprobs of {sample.describe()} lack letters {missing}; pass "
                    "task.choice_letters(sample) to choice_logprobs"
                )
            lps = {x: float(choice_logprobs[x]) for x in letters}
            out["accuracy"] = float(om.choice_prediction(lps) == right)
            out["accuracy_logprob"] = out["accuracy"]
            # -inf (a letter the model can never emit) would not survive JSON; the key is then left out
            if math.isfinite(lps[right]):
                out["answer_logprob"] = lps[right]
        if pred or choice_logprobs is None:
            text_acc = float(om.parse_choice(pred, sample.choices or [], letters) == right)
            out.setdefault("accuracy", text_acc)
            out["accuracy_text"] = text_acc
        return out

    def _score_reasoning(self, sample: Sample, pred: str) -> dict[str, float]:
        split = om.split_reasoning(pred, self.answer_pattern)
        if split.answer is None:
            acc = 0.0
        elif sample.choices:
            acc = float(om.parse_choice(split.answer, sample.choices) == self._answer_letter(sample))
        else:
            acc = self._answer_score(sample, split.answer)
        out = {"answer_accuracy": acc, "answer_found": float(split.answer is not None)}
        ref = sample.meta.get("reasoning")
        if isinstance(ref, str) and ref.strip():
            out["reasoning_rougeL"] = om.rouge_l(split.reasoning, ref) if split.reasoning else 0.0
        return out

    @staticmethod
    def _references(sample: Sample) -> list[str]:
        if sample.references:
            return list(sample.references)
        return [sample.answer] if sample.answer is not None else []

    def compare(
        self, sample: Sample, full: str, modified: str, *, encoder: om.SentenceEncoder | None = None
    ) -> dict[str, float]:
        """How far a modified model's output is from the full model's on the same sample (RQ2, RQ3, RQ5).

        Short answers (single token, exact match): ``agreement`` (equal after normalisation); multiple
        choice: ``agreement`` of the chosen letters; captions and open text: ``similarity`` (with an encoder),
        ``rougeL`` and ``bleu`` against the full output; reasoning: see
        :func:`~visdepth.metrics.output.compare_reasoning`. Every kind adds ``identical`` (same text) and,
        with an encoder, ``similarity`` of the whole texts. Needs no answers.
        """
        kind = self.kind_of(sample)
        a, b = str(full).strip(), str(modified).strip()
        out: dict[str, float] = {}
        if kind in ("single_token", "exact_match"):
            out["agreement"] = float(om.normalize_answer(a) == om.normalize_answer(b))
        elif kind == "multiple_choice":
            la = om.parse_choice(a, sample.choices or [])
            lb = om.parse_choice(b, sample.choices or [])
            same = (
                la == lb
                if la is not None or lb is not None
                else om.normalize_answer(a) == om.normalize_answer(b)
            )
            out["agreement"] = float(same)
        elif kind == "reasoning":
            out.update(om.compare_reasoning(a, b, pattern=self.answer_pattern, encoder=encoder))
        else:
            if encoder is not None:
                out["similarity"] = encoder.similarity(a, b)
            if a or b:
                out["rougeL"] = om.rouge_l(b, a) if a and b else 0.0
                out["bleu"] = om.sentence_bleu(b, a) if a and b else 0.0
            else:
                out.update(rougeL=1.0, bleu=100.0)
        if encoder is not None and "similarity" not in out:
            out["similarity"] = encoder.similarity(a, b)
        out["identical"] = float(a == b)
        return out

    def aggregate(
        self,
        samples: Sequence[Sample],
        scores: Sequence[Mapping[str, float]],
        predictions: Sequence[str] | None = None,
    ) -> dict[str, dict[str, float]]:
        """Mean of every score per kind (``n`` counts the samples; a key missing from some rows is averaged
        over the rows that have it). The mean of the rows' sentence BLEU is named ``bleu_sentence``; ``bleu``
        is corpus BLEU (what papers report), given to caption groups when ``predictions`` are given."""
        if len(samples) != len(scores) or (predictions is not None and len(predictions) != len(samples)):
            raise ValueError("give one score dict (and one prediction) per sample")
        out: dict[str, dict[str, float]] = {}
        for kind in self.group(samples):
            idx = [i for i, s in enumerate(samples) if self.kind_of(s) == kind]
            keys = list(dict.fromkeys(k for i in idx for k in scores[i]))
            summary: dict[str, float] = {"n": float(len(idx))}
            for k in keys:
                vals = [float(scores[i][k]) for i in idx if k in scores[i]]
                # a mean of sentence BLEU is not corpus BLEU: keep the name "bleu" for the corpus figure
                summary["bleu_sentence" if k == "bleu" else k] = sum(vals) / len(vals)
            if kind == "caption" and predictions is not None:
                refs = [self._references(samples[i]) for i in idx]
                if all(refs):
                    summary["bleu"] = om.corpus_bleu([str(predictions[i]).strip() for i in idx], refs)
            out[kind] = summary
        return out

    # --- data ----------------------------------------------------------------------------------------------

    def _has_answer(self, sample: Sample, kind: str) -> bool:
        if kind == "open":
            return True
        if kind == "caption":
            return bool(sample.references) or sample.answer is not None
        if self.answer_metric == "vqa_accuracy" and kind == "exact_match":
            return bool(self.human_answers(sample))
        return sample.answer is not None

    def _require_answer(self, sample: Sample, kind: str) -> None:
        if not self._has_answer(sample, kind):
            self.check([sample])

    def check(self, samples: Sequence[Sample]) -> None:
        """Raise :class:`~visdepth.errors.ConfigError` naming every sample that cannot be scored, and the fix."""
        no_choices = [s for s in samples if self.kind_of(s) == "multiple_choice" and not s.choices]
        if no_choices:
            raise ConfigError(
                f"task {self.name!r} asks multiple choice but {_where(no_choices)} "
                f"{'has' if len(no_choices) == 1 else 'have'} no choices; add a 'choices' list."
            )
        missing = [s for s in samples if not self._has_answer(s, self.kind_of(s))]
        if not missing:
            return
        kinds = {self.kind_of(s) for s in missing}
        fix = self.missing_answer_fix
        if kinds == {"caption"}:
            fix = "add a 'references' list (or an 'answer')"
        elif "caption" in kinds:
            fix += " ('references' for captions)"
        if self.answer_metric == "vqa_accuracy":
            fix += " or a meta 'answers' list"
        raise ConfigError(
            f"task {self.name!r} needs answers but {_where(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} none; {fix}."
        )

    def with_split(self, split: str | None) -> Task:
        """A copy reading ``split`` (one of :attr:`splits`)."""
        if split is not None and split not in self.splits:
            if not self.splits:
                raise ConfigError(f"task {self.name!r} has no splits; use {self.name!r} without ':{split}'")
            raise ConfigError(
                f"task {self.name!r} has no split {split!r}; use one of "
                + ", ".join(f"{self.name}:{s}" for s in self.splits)
            )
        view = copy.copy(self)
        view.split = split
        return view

    def load(self, limit: int | None = None, *, check: bool = True, **kwargs: Any) -> list[Sample]:
        """The task's samples (the first ``limit``), checked (unless ``check=False``): every one can be scored.

        ``check=False`` is for experiments that only read representations and need no answers.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(
                f"limit {limit!r} is not a positive whole number; pass e.g. --limit 10 or leave it out"
            )
        if self.loader is None:
            raise ConfigError(f"task {self.name!r} has no data loader; load samples yourself and pass them")
        samples = list(self.loader(split=self.split or self.default_split, limit=limit, **kwargs))[:limit]
        if not samples:
            raise ConfigError(f"task {self.name!r} loaded no samples; check the data source {self.source!r}")
        if check:
            self.check(samples)
        return samples

    def describe(self) -> dict[str, Any]:
        """The task's settings as JSON-ready data, for result files (``prompt_format`` included)."""
        kinds = list(SCORED_KINDS) + ["open"] if self.kind == MIXED else [self.kind]
        return {
            "task": self.name,
            "kind": self.kind,
            "group": None if self.kind == MIXED else TASK_GROUPS[self.kind],
            "split": self.split or self.default_split,
            "source": self.source,
            "prompt_format": self.prompt_format.describe(),
            "max_new_tokens": {k: self._budget[k] for k in kinds},
            "answer_metric": self.answer_metric,
            "answer_pattern": self.answer_pattern,
            "scores": {k: score_names(k, self.answer_metric) for k in kinds if k != "open"},
        }

    def __repr__(self) -> str:
        split = f", split={self.split!r}" if self.split else ""
        return f"Task({self.name!r}, kind={self.kind!r}{split})"


def _dataset_loader(dataset: str) -> Loader:
    """A loader that reads the :mod:`visdepth.data` data set ``dataset`` (looked up when it loads)."""

    def loader(split: str | None = None, limit: int | None = None, **kwargs: Any) -> Sequence[Sample]:
        return DATASETS.get(dataset).load(split, limit=limit)

    loader.__qualname__ = f"dataset_loader[{dataset}]"  # one definition per data set, across reloads
    return loader


def _where(samples: Sequence[Sample], shown: int = 10) -> str:
    """``manifest.jsonl lines 3, 7`` / ``samples 'a', 'b'``: where the offending samples are."""
    by_file: dict[str, list[str]] = {}
    loose: list[str] = []
    for s in samples:
        origin = s.origin or ""
        file, sep, line = origin.rpartition(" line ")
        if sep and line.isdigit():
            by_file.setdefault(file, []).append(line)
        else:
            loose.append(repr(s.id))
    parts = []
    for file, lines in by_file.items():
        listed = ", ".join(lines[:shown]) + (f" and {len(lines) - shown} more" if len(lines) > shown else "")
        parts.append(f"{file} {'line' if len(lines) == 1 else 'lines'} {listed}")
    if loose:
        listed = ", ".join(loose[:shown]) + (f" and {len(loose) - shown} more" if len(loose) > shown else "")
        parts.append(f"{'sample' if len(loose) == 1 else 'samples'} {listed}")
    return "; ".join(parts)
