"""What RQ5 measures for a batch of (task, sample, cut) items: the chain of thought at the cut against the full
model's own chain, its final answer, the direct answer, chains cut to token budgets, and the teacher-forced answer.

Items of the full model (cut L) come first: their chains are the reference of every other cut and are kept in
:class:`Context` (and read back from the rows file on a resumed run), so each row holds both chains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch

from visdepth.data import Sample
from visdepth.experiments.reasoning.prompts import Prompts
from visdepth.interventions import truncated_generate
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.models.base import ModelInputs
from visdepth.tasks import Task

if TYPE_CHECKING:  # the config is the experiment's; only its fields are read here
    from visdepth.experiments.reason import ReasonConfig


@dataclass
class Item:
    """One sample of one task at one cut depth."""

    task: str
    sample: Sample
    cut: int
    prompts: Prompts

    @property
    def id(self) -> str:
        return f"{self.task}/{self.sample.id}/cut{self.cut}"

    @property
    def bucket(self) -> tuple[str, int]:
        return self.task, self.cut


@dataclass
class Chain:
    """A generated chain of thought: its token ids (up to the end token), text and located final answer."""

    ids: list[int]
    text: str
    reasoning: str
    answer: str | None
    #: tokens of the reasoning part (the chain before its final-answer part)
    reasoning_tokens: int

    def record(self) -> dict[str, Any]:
        return {
            "text": self.text.strip(),
            "ids": self.ids,
            "n_tokens": len(self.ids),
            "reasoning": self.reasoning,
            "reasoning_tokens": self.reasoning_tokens,
            "answer": self.answer,
            "answer_found": self.answer is not None,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Chain:
        return cls(rec["ids"], rec["text"], rec["reasoning"], rec["answer"], rec["reasoning_tokens"])


class Context:
    """What every batch needs: model, settings, cut depths, each task's answer rule, and the full model's
    chains (filled by the cut-L items, or from the rows of a resumed run)."""

    def __init__(self, adapter: VLMAdapter, config: ReasonConfig, tasks: dict[str, Task], cuts: list[int]):
        self.adapter, self.config, self.tasks, self.cuts = adapter, config, tasks, cuts
        self.full: dict[tuple[str, str], dict[str, Any]] = {}
        eos = adapter.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if getattr(adapter.tokenizer, "eos_token_id", None) is not None:
            eos.append(adapter.tokenizer.eos_token_id)
        self.eos = set(eos)

    @cached_property
    def encoder(self) -> om.SentenceEncoder:
        return om.get_sentence_encoder(self.config.sentence_model)

    def pattern(self, task: str) -> str:
        return self.config.answer_pattern or self.tasks[task].answer_pattern

    def chain_budget(self, task: str) -> int:
        return self.config.max_new_tokens or self.tasks[task].max_new_tokens_for("reasoning")

    def direct_budget(self, task: str) -> int:
        return self.tasks[task].max_new_tokens_for("exact_match")

    def generate(self, inputs: ModelInputs, cut: int, max_new_tokens: int) -> list[list[int]]:
        """Greedy token ids per sample at visual depth ``cut``, each up to (not including) its end token."""
        out = truncated_generate(
            self.adapter,
            inputs,
            cut,
            self.config.mode,
            max_new_tokens=max_new_tokens,
            **self.config.gen_kwargs,
        )
        chains = []
        for row in out.tokens.tolist():
            end = next((i for i, t in enumerate(row) if t in self.eos), len(row))
            chains.append(row[:end])
        return chains

    def chain(self, task: str, ids: Sequence[int]) -> Chain:
        """The chain of ``ids``: decoded, its final answer located by the task's rule (or ``--answer_pattern``,
        ``--reasoning_tags``), and the number of its tokens before the final-answer part."""
        tok = self.adapter.tokenizer
        ids = [int(i) for i in ids]
        text = tok.decode(ids, skip_special_tokens=True)
        split = om.locate_answer(text, self.pattern(task), self.config.reasoning_tags)
        k = 0
        if split.answer_start >= len(text):
            k = len(ids)
        else:  # the longest token prefix whose text ends before the final-answer part
            for n in range(1, len(ids) + 1):
                if len(tok.decode(ids[:n], skip_special_tokens=True)) > split.answer_start:
                    break
                k = n
        return Chain(ids, text, split.reasoning, split.answer, k)

    def build(self, task: str, prompts: Sequence[str], samples: Sequence[Sample]) -> ModelInputs:
        return self.adapter.build_inputs(
            [s.load_images() for s in samples],
            list(prompts),
            chat=self.config.chat,
            labels=[s.describe() for s in samples],
        )


def append_tokens(inputs: ModelInputs, ids: Sequence[int]) -> ModelInputs:
    """A batch of one sample with text token ``ids`` appended to its prompt (the teacher-forced chain): ids and
    attention mask grow, per-position token-type tensors (Qwen's ``mm_token_type_ids``, Gemma's
    ``token_type_ids``) grow with 0 (text), image pixels and grids stay."""
    if inputs.input_ids.shape[0] != 1:
        raise ValueError("append_tokens takes a batch of one sample")
    if not ids:
        return inputs
    shape = tuple(inputs.input_ids.shape)
    extra = torch.tensor([list(ids)], dtype=inputs.input_ids.dtype, device=inputs.input_ids.device)
    tensors = {}
    for key, value in inputs.tensors.items():
        if key == "input_ids":
            value = torch.cat([value, extra], dim=1)
        elif key == "attention_mask":
            value = torch.cat([value, torch.ones_like(extra, dtype=value.dtype)], dim=1)
        elif tuple(value.shape) == shape and not value.is_floating_point():
            value = torch.cat([value, torch.zeros_like(extra, dtype=value.dtype)], dim=1)
        tensors[key] = value
    text = torch.zeros(1, len(ids), dtype=torch.bool, device=inputs.image_mask.device)
    return ModelInputs(
        tensors,
        torch.cat([inputs.image_mask.bool(), text], dim=1),
        torch.cat([inputs.special_mask.bool(), text], dim=1),
        inputs.prompts,
    )


def answer_accuracy(task: Task, sample: Sample, answer: str | None) -> float | None:
    """Whether an extracted answer is right, by the task's own rule for short answers (its ``answer_metric``;
    the option letter for multiple choice); ``None`` for a sample without a ground-truth answer (captions,
    open questions); 0 for an answer that could not be extracted."""
    kind = task.kind_of(sample)
    if kind in ("caption", "open") or sample.answer is None:
        return None
    if answer is None:
        return 0.0
    if sample.choices:
        right = om.parse_choice(answer, sample.choices) == task._answer_letter(sample)
        return float(right)
    if kind == "single_token":
        return om.exact_match(answer, task.accepted_answers(sample))
    return float(task._answer_score(sample, answer))  # the task's scorer of final answers (reasoning kind)


def agree(a: str | None, b: str | None) -> float:
    """1 when both answers were extracted and are equal after VQA normalisation (as ``compare_reasoning``)."""
    return float(a is not None and b is not None and om.normalize_answer(a) == om.normalize_answer(b))


def direct_answer(ctx: Context, task: str, ids: Sequence[int]) -> dict[str, Any]:
    """A direct (no chain) answer: the final answer by the task's rule when the text has one, else the whole
    text without a final period."""
    text = ctx.adapter.tokenizer.decode(list(ids), skip_special_tokens=True)
    found = om.locate_answer(text, ctx.pattern(task), ctx.config.reasoning_tags).answer
    answer = found if found is not None else (text.strip().rstrip(".").strip() or None)
    return {"text": text.strip(), "n_tokens": len(ids), "answer": answer}


def measure_batch(ctx: Context, items: list[Item]) -> list[dict[str, Any]]:
    """Rows of a batch of items of one task at one cut (see the module notes)."""
    name, cut = items[0].task, items[0].cut
    task, config = ctx.tasks[name], ctx.config
    L = ctx.adapter.num_layers
    samples = [it.sample for it in items]
    budget = ctx.chain_budget(name)
    longest = math.ceil(max([1.0, *config.budgets]) * budget)
    # greedy decoding is causal: a chain generated with a budget of n tokens is the first n tokens of a longer
    # greedy chain, so one generation with the largest budget gives the free chain and every budget's chain
    generated = ctx.generate(ctx.build(name, [it.prompts.cot for it in items], samples), cut, longest)
    direct_ids = None
    if config.direct:
        prompts = [it.prompts.direct for it in items]
        direct_ids = ctx.generate(ctx.build(name, prompts, samples), cut, ctx.direct_budget(name))
    rows = []
    for b, item in enumerate(items):
        sample = item.sample
        chain = ctx.chain(name, generated[b][:budget])
        direct = direct_answer(ctx, name, direct_ids[b]) if direct_ids is not None else None
        if cut == L:
            ctx.full[(name, sample.id)] = {"chain": chain.record(), "direct": direct}
        full_rec = ctx.full[(name, sample.id)]
        full = Chain.from_record(full_rec["chain"])
        row: dict[str, Any] = {
            "task": name,
            "sample": sample.id,
            "kind": task.kind_of(sample),
            "cut": cut,
            "depth": cut / L,
            "prompt": item.prompts.cot,
            "prompt_source": item.prompts.source,
            "ground_truth": sample.answer,
            "full": full_rec["chain"],
            "chain": chain.record(),
            "trajectory": om.compare_trajectories(
                full.ids[: full.reasoning_tokens],
                chain.ids[: chain.reasoning_tokens],
                full.reasoning,
                chain.reasoning,
                encoder=ctx.encoder if config.similarity else None,
            ),
            "answer": {
                "agreement": agree(full.answer, chain.answer),
                "accuracy": answer_accuracy(task, sample, chain.answer),
                "full_accuracy": answer_accuracy(task, sample, full.answer),
                "found": chain.answer is not None,
                "full_found": full.answer is not None,
            },
        }
        if direct is not None:
            full_direct = full_rec["direct"]
            row["direct"] = {
                **direct,
                "prompt": item.prompts.direct,
                "prompt_source": item.prompts.direct_source,
                "accuracy": answer_accuracy(task, sample, direct["answer"]),
                "agreement": agree(full_direct["answer"], direct["answer"]) if full_direct else None,
            }
        row["budgets"] = {}
        for factor in config.budgets:
            n = max(1, math.ceil(factor * len(full.ids)))
            capped = ctx.chain(name, generated[b][:n])
            row["budgets"][f"{factor:g}"] = {
                "max_tokens": n,
                "n_tokens": len(capped.ids),
                "answer": capped.answer,
                "found": capped.answer is not None,
                "accuracy": answer_accuracy(task, sample, capped.answer),
                "agreement": agree(full.answer, capped.answer),
            }
        if config.teacher_forced:
            row["teacher_forced"] = teacher_forced(ctx, item, full)
        rows.append(row)
    return rows


def teacher_forced(ctx: Context, item: Item, full: Chain) -> dict[str, Any]:
    """The truncated model given the full model's reasoning (its token ids up to the final-answer part) after
    the prompt: only the conclusion is its own, within what is left of the chain budget. The image is truncated
    at the cut as usual; the chain is text."""
    name, sample = item.task, item.sample
    prefix = full.ids[: full.reasoning_tokens]
    inputs = append_tokens(ctx.build(name, [item.prompts.cot], [sample]), prefix)
    # the rest of the chain budget, so that the full model's forced chain is its own free chain again
    (continuation,) = ctx.generate(inputs, item.cut, max(1, ctx.chain_budget(name) - len(prefix)))
    chain = ctx.chain(name, prefix + continuation)
    return {
        "continuation": ctx.adapter.tokenizer.decode(continuation, skip_special_tokens=True).strip(),
        "prefix_tokens": len(prefix),
        "answer": chain.answer,
        "found": chain.answer is not None,
        "accuracy": answer_accuracy(ctx.tasks[name], sample, chain.answer),
        "agreement": agree(full.answer, chain.answer),
    }
