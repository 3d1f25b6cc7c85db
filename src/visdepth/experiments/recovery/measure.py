"""What recover measures per batch: every model (full, truncated, recovered per cut) answering every question
with every decoding strategy, scored against the answers and against the teacher's greedy answer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from visdepth.data import Sample
from visdepth.experiments.recovery import decoding, lora
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.tasks import Task

if TYPE_CHECKING:  # the config is the experiment's; only its fields are read here
    from visdepth.experiments.recover import RecoverConfig

#: kinds compared with the teacher through the sentence encoder
ENCODER_KINDS = ("caption", "reasoning", "open")


@dataclass
class Item:
    task: str
    kind: str
    sample: Sample

    @property
    def id(self) -> str:
        return f"{self.task}/{self.sample.id}"


class Context:
    """What the batches share: the model, cuts, strategies, adapter weights and the sentence encoder."""

    def __init__(self, adapter: VLMAdapter, config: RecoverConfig, tasks: dict[str, Task], cuts: list[int]):
        self.adapter, self.config, self.tasks, self.cuts = adapter, config, tasks, cuts
        self.strategies = decoding.parse_strategies(config.decoding)
        self.weights: dict[int, tuple[Any, dict]] = {}

    @cached_property
    def encoder(self) -> om.SentenceEncoder:
        return om.get_sentence_encoder(self.config.sentence_model)

    def build(self, task: Task, samples: list[Sample]):
        prompts = [task.prompt(s) for s in samples]
        return self.adapter.build_inputs([s.load_images() for s in samples], prompts, chat=self.config.chat)


def measure_batch(ctx: Context, items: list[Item]) -> list[dict[str, Any]]:
    """Every model's answers with every strategy, scored against the answers and the teacher's greedy answer."""
    adapter, config = ctx.adapter, ctx.config
    task = ctx.tasks[items[0].task]
    kind = items[0].kind
    samples = [it.sample for it in items]
    budget = config.max_new_tokens or task.max_new_tokens_for(kind)
    inputs = ctx.build(task, samples)
    greedy = ctx.strategies[0]
    teacher = decoding.run_strategy(adapter, None, samples, adapter.num_layers, greedy, budget, 1, 0, inputs)
    if config.max_new_tokens is None:
        # every other answer is judged against the teacher's: past twice its longest answer (+8) a model is only
        # rambling (a truncated model may never stop), so the budget ends there
        longest = max(len(adapter.tokenizer(t[0], add_special_tokens=False).input_ids) for t in teacher)
        budget = min(budget, 2 * longest + 8)

    def answers(cut: int) -> dict[str, list[list[str]]]:
        out = {}
        for st in ctx.strategies:
            if cut == adapter.num_layers and st is greedy:
                out[st.name] = teacher
                continue
            out[st.name] = decoding.run_strategy(
                adapter,
                lambda s: ctx.build(task, s),
                samples,
                cut,
                st,
                budget,
                config.num_samples,
                config.seed,
                batch_inputs=inputs,
            )
        return out

    outputs: dict[str, dict[str, list[list[str]]]] = {"full": answers(adapter.num_layers)}
    for cut in ctx.cuts:
        outputs[f"truncated@{cut}"] = answers(cut)
    for cut in ctx.cuts:
        peft_config, weights = ctx.weights[cut]
        with lora.attached(adapter, peft_config, weights):
            outputs[f"recovered@{cut}"] = answers(cut)
    encoder = ctx.encoder if kind in ENCODER_KINDS else None
    rows = []
    for b, (it, sample) in enumerate(zip(items, samples, strict=True)):
        ref = outputs["full"]["greedy"][b][0]
        per_model = {m: {st: texts[b] for st, texts in by_st.items()} for m, by_st in outputs.items()}
        rows.append(
            {
                "task": it.task,
                "sample": sample.id,
                "kind": kind,
                "outputs": per_model,
                "scores": {
                    m: {st: [task.score(sample, t, encoder=encoder) for t in ts] for st, ts in by.items()}
                    for m, by in per_model.items()
                },
                "teacher": {
                    m: {
                        st: [task.compare(sample, ref, t, encoder=encoder) for t in ts]
                        for st, ts in by.items()
                    }
                    for m, by in per_model.items()
                },
            }
        )
    return rows
