"""Score a VLM on the held-out shapes benchmark with greedy decoding, with and without its image.

``python -m visdepth.reference.evaluate`` (defaults: the built-in ``visdepth/shapes-vlm``, the full test split)

Per task kind: accuracy of the normalised answer (the option letter for multiple choice); captions exactly
right plus corpus BLEU (sacrebleu) and mean ROUGE-L F1 (rouge-score); chain of thought scored on its final
answer (parsed with :func:`visdepth.data.shapes.parse_cot`) and, apart, on its reasoning text. Conditions:
``full``; ``blank``, every image replaced by an empty canvas; ``no_image``, the image tokens removed from the
prompt (and no pixels given). ``majority`` is the accuracy of always giving the most frequent train answer of
each question type, the chance level the ablations should fall to.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from visdepth.data import shapes
from visdepth.data.sample import Sample

CONDITIONS = ("full", "blank", "no_image")
# Enough new tokens for the longest answer of each kind (a 4-object chain of thought is about 40 words).
MAX_NEW_TOKENS = {"single_token": 3, "multiple_choice": 3, "exact_match": 4, "caption": 40, "reasoning": 56}
KIND_ORDER = ("single_token", "multiple_choice", "exact_match", "caption", "reasoning")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .,:;!?")


def question(sample: Sample) -> str:
    return shapes.format_choices(sample.prompt, sample.choices) if sample.choices else sample.prompt


def blank_image() -> Image.Image:
    return Image.new("RGB", (shapes.IMAGE_SIZE, shapes.IMAGE_SIZE), shapes.BACKGROUND)


@torch.no_grad()
def generate(
    adapter: Any, samples: Sequence[Sample], condition: str = "full", batch_size: int = 32
) -> list[str]:
    """Greedy answers of the model to ``samples`` under one condition (see the module docstring)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; use one of {CONDITIONS}")
    outputs: list[str] = [""] * len(samples)
    # batches of one kind so that short answers do not wait for captions
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_kind[s.kind].append(i)
    tok = adapter.tokenizer
    for kind, idx in by_kind.items():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            images = [[blank_image()] if condition == "blank" else samples[i].load_images() for i in chunk]
            inputs = adapter.build_inputs(images, [question(samples[i]) for i in chunk]).to(
                adapter.device, adapter.dtype
            )
            kwargs = adapter.model_kwargs(inputs)
            if condition == "no_image":
                keep = ~inputs.image_mask
                # every prompt loses the same number of image tokens, so left padding stays aligned
                kwargs = {
                    "input_ids": inputs.input_ids[keep].view(len(chunk), -1),
                    "attention_mask": inputs.attention_mask[keep].view(len(chunk), -1),
                }
            out = adapter.model.generate(
                **kwargs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS.get(kind, 32), num_beams=1
            )
            new = out[:, kwargs["input_ids"].shape[1] :]
            for i, row in zip(chunk, new, strict=True):
                outputs[i] = tok.decode(row, skip_special_tokens=True).strip()
    return outputs


def score(samples: Sequence[Sample], predictions: Sequence[str]) -> dict[str, Any]:
    """Metrics per task kind, per question type, and the single-token group (single token + multiple choice)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    per_kind: dict[str, list[float]] = defaultdict(list)
    per_qtype: dict[str, list[float]] = defaultdict(list)
    caption_hyp, caption_ref, reasoning_right = [], [], []
    for s, pred in zip(samples, predictions, strict=True):
        if s.kind == "caption":
            ref = s.references[0]
            right = normalise(pred) == normalise(ref)
            caption_hyp.append(pred)
            caption_ref.append(ref)
        elif s.kind == "reasoning":
            reasoning, final = shapes.parse_cot(pred)
            right = final is not None and normalise(final) == normalise(s.answer)
            reasoning_right.append(float(normalise(reasoning) == normalise(s.meta["reasoning"])))
        else:
            right = normalise(pred) == normalise(s.answer)
        per_kind[s.kind].append(float(right))
        per_qtype[s.meta.get("qtype", s.kind)].append(float(right))
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    result: dict[str, Any] = {
        "n": len(samples),
        "accuracy": {k: mean(per_kind[k]) for k in KIND_ORDER if k in per_kind},
    }
    single = per_kind.get("single_token", []) + per_kind.get("multiple_choice", [])
    result["accuracy"]["single_token_group"] = mean(single)
    result["by_qtype"] = {k: mean(v) for k, v in sorted(per_qtype.items())}
    if caption_hyp:
        result["caption_bleu"] = round(sacrebleu.corpus_bleu(caption_hyp, [caption_ref]).score, 2)
        scorer = rouge_scorer.RougeScorer(["rougeL"])
        rouge = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(caption_hyp, caption_ref, strict=True)]
        result["caption_rougeL"] = mean(rouge)
    if reasoning_right:
        result["reasoning_text_exact"] = mean(reasoning_right)
    return result


def majority_baseline(test: Sequence[Sample], n_train: int = 4000, seed: int = 0) -> dict[str, Any]:
    """Accuracy of always answering the most frequent train answer of the question type."""
    stream = shapes.iter_samples("train", seed=seed + 1000)
    counts: dict[str, Counter] = defaultdict(Counter)
    for _ in range(n_train):
        s = next(stream)
        counts[s.meta["qtype"]][_gold(s)] += 1
    preds = []
    for s in test:
        guess = counts[s.meta["qtype"]].most_common(1)[0][0]
        preds.append(f"so the final answer is {guess}." if s.kind == "reasoning" else guess)
    return score(test, preds)


def _gold(s: Sample) -> str:
    return s.references[0] if s.kind == "caption" else str(s.answer)


def evaluate(
    model: str | Any = "visdepth/shapes-vlm",
    limit: int | None = None,
    conditions: Sequence[str] = CONDITIONS,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """All conditions on the test split (first ``limit`` samples); ``model`` is a name, a path or an adapter."""
    import visdepth
    from visdepth.results.meta import run_metadata

    adapter = visdepth.load(model, device="cpu", dtype="float32") if isinstance(model, str) else model
    test = shapes.samples("test", seed=seed)[:limit]
    config = {"model": adapter.name, "limit": limit, "conditions": list(conditions), "batch_size": batch_size}
    choices = {
        "decoding": "greedy",
        "max_new_tokens": MAX_NEW_TOKENS,
        "answer_normalisation": "lower case, spaces collapsed, surrounding punctuation stripped",
        "single_token_group": "single-token and multiple-choice samples together",
        "conditions": "blank: every image an empty white canvas; no_image: image tokens removed, no pixels",
        "majority": "most frequent answer of each question type over 4000 train samples",
    }
    meta = run_metadata(config, choices, seed=seed, device=adapter.device, dtype=adapter.dtype)
    result: dict[str, Any] = {
        "meta": meta.model_dump(mode="json"),
        "model": adapter.name,
        "split": "test",
        "seed": seed,
        "n": len(test),
    }
    for condition in conditions:
        t0 = time.time()
        preds = generate(adapter, test, condition, batch_size)
        result[condition] = score(test, preds) | {"seconds": round(time.time() - t0, 1)}
        result[condition]["examples"] = [
            {"prompt": s.prompt, "gold": _gold(s), "prediction": p}
            for s, p in list(zip(test, preds, strict=True))[: len(shapes.QTYPES)]
        ]
    result["majority"] = majority_baseline(test, seed=seed)
    result["meta"] = meta.finish().model_dump(mode="json")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="visdepth/shapes-vlm", help="built-in name or folder")
    parser.add_argument("--limit", type=int, default=None, help="first n test samples (default: all)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the test split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = evaluate(args.model, args.limit, args.conditions.split(","), args.batch_size, args.seed)
    text = json.dumps(result, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    summary = {c: {k: result[c][k] for k in result[c] if k not in ("examples", "by_qtype")}
               for c in (*args.conditions.split(","), "majority")}  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
