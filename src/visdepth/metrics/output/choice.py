"""Multiple choice: log-probabilities of the option letters as next token, and the letter an answer picks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from visdepth.errors import ConfigError
from visdepth.metrics.output.answers import normalize_answer
from visdepth.metrics.output.reasoning import split_reasoning


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
