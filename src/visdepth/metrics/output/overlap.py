"""Text overlap against several references: corpus and sentence BLEU (sacrebleu) and ROUGE-L (rouge-score).

Both packages are optional (``pip install visdepth[text]``) and imported only when a score is asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from visdepth.errors import VisdepthError


def _references(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else [str(r) for r in references]
    if not refs:
        raise ValueError("no reference text given; pass at least one")
    return refs


def _import_text_metric(module: str, dist: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise VisdepthError(
            f"this metric needs {dist}, which is not installed; run `pip install {dist}` "
            "(or `pip install visdepth[text]`)"
        ) from exc


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
) -> float:
    """Corpus BLEU (0-100) with sacrebleu [Papineni2002]_ [Post2018]_; each hypothesis may have several refs.

    ``references[i]`` holds the reference text(s) of ``hypotheses[i]``; their number may vary between items
    (missing ones are passed to sacrebleu as ``None``, which it skips). ``tokenize`` is sacrebleu's tokenizer
    (``13a``, the WMT default); :func:`bleu_signature` gives the signature to record with the score.

    References
    ----------
    .. [Papineni2002] K. Papineni, S. Roukos, T. Ward, W.-J. Zhu, "BLEU: a Method for Automatic Evaluation of
       Machine Translation", ACL 2002.
    .. [Post2018] M. Post, "A Call for Clarity in Reporting BLEU Scores", WMT 2018 (sacrebleu).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists; give one each")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    metrics = _import_text_metric("sacrebleu.metrics", "sacrebleu")
    refs = [_references(r) for r in references]
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    bleu = metrics.BLEU(tokenize=tokenize, lowercase=lowercase)
    return float(bleu.corpus_score([str(h) for h in hypotheses], streams).score)


def sentence_bleu(hypothesis: str, references: str | Sequence[str], *, tokenize: str = "13a") -> float:
    """Sentence BLEU (0-100) with sacrebleu's defaults for single sentences (exponential smoothing, effective
    n-gram order, so a one-word exact answer still scores 100). Noisy for one sentence: report
    :func:`corpus_bleu` for a data set."""
    metrics = _import_text_metric("sacrebleu.metrics", "sacrebleu")
    bleu = metrics.BLEU(tokenize=tokenize, effective_order=True)
    return float(bleu.sentence_score(str(hypothesis), _references(references)).score)


def bleu_signature(*, tokenize: str = "13a", lowercase: bool = False, num_refs: int | None = None) -> str:
    """sacrebleu's signature of the corpus BLEU settings (``nrefs:var|case:mixed|eff:no|tok:13a|...``), for
    result files; ``num_refs`` is the number of references per item, ``None`` when it varies."""
    metrics = _import_text_metric("sacrebleu.metrics", "sacrebleu")
    bleu = metrics.BLEU(tokenize=tokenize, lowercase=lowercase)
    bleu.num_refs = -1 if num_refs is None else int(num_refs)  # sacrebleu learns it from a scored corpus
    return str(bleu.get_signature())


@functools.lru_cache(maxsize=4)
def _rouge_scorer(stem: bool) -> Any:
    rouge_scorer = _import_text_metric("rouge_score.rouge_scorer", "rouge-score")
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)


def rouge_l(prediction: str, references: str | Sequence[str], *, stem: bool = True) -> float:
    """ROUGE-L F1 in [0, 1] [Lin2004]_ against the best of several references (rouge-score, Porter stemming).

    rouge-score's tokenizer lower-cases and keeps only ``a-z0-9`` words, so it suits English text only.

    References
    ----------
    .. [Lin2004] C.-Y. Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL workshop 2004.
    """
    scorer = _rouge_scorer(bool(stem))
    scores = scorer.score_multi(_references(references), str(prediction))
    return float(scores["rougeL"].fmeasure)
