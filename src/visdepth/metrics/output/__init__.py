"""Output metrics: how good a generated answer is, and how far a modified model's output moved from the full one.

One module per job. Answer quality (RQ3, RQ4): VQAv2 answer normalisation, exact match and soft
accuracy (:mod:`.answers`), ChartQA relaxed accuracy (:mod:`.chartqa`), multiple-choice scoring from the
log-probabilities of the option letters (:mod:`.choice`), BLEU (sacrebleu) and ROUGE-L (rouge-score) against
several references (:mod:`.overlap`). Closeness to the full model (RQ2, RQ3, RQ5): semantic similarity of
generated texts with a real sentence encoder (:mod:`.semantic`, all-MiniLM-L6-v2 by default), the KL
divergence of next-token distributions and first-token agreement (:mod:`.distributions`), and the split of a
chain of thought into its reasoning and its final answer (:mod:`.reasoning`) and how far one chain's path moved
from another's (:mod:`.trajectory`).

Every public name is importable from here (``from visdepth.metrics import output as om``, ``om.rouge_l``).
sacrebleu, rouge-score and sentence-transformers are optional (``pip install visdepth[text]``) and imported
only by the functions that need them; everything else needs torch only.
"""

from visdepth.metrics.output.answers import exact_match, normalize_answer, prefix_match, vqa_accuracy
from visdepth.metrics.output.chartqa import parse_number, relaxed_accuracy
from visdepth.metrics.output.choice import choice_logprobs, choice_prediction, choice_token_ids, parse_choice
from visdepth.metrics.output.distributions import first_token_agreement, kl_divergence, top1_agreement
from visdepth.metrics.output.overlap import bleu_signature, corpus_bleu, rouge_l, sentence_bleu
from visdepth.metrics.output.reasoning import (
    DEFAULT_ANSWER_PATTERN,
    ChainSplit,
    ReasoningSplit,
    _compile,  # noqa: F401  (tasks check an answer pattern with it when a task is defined)
    check_answer_pattern,
    compare_reasoning,
    locate_answer,
    split_reasoning,
)
from visdepth.metrics.output.semantic import (
    DEFAULT_SENTENCE_MODEL,
    SentenceEncoder,
    default_sentence_model_path,
    get_sentence_encoder,
)
from visdepth.metrics.output.trajectory import (
    compare_trajectories,
    first_difference,
    split_steps,
    token_edit_distance,
)

__all__ = [
    "DEFAULT_ANSWER_PATTERN",
    "DEFAULT_SENTENCE_MODEL",
    "ChainSplit",
    "ReasoningSplit",
    "SentenceEncoder",
    "bleu_signature",
    "check_answer_pattern",
    "choice_logprobs",
    "choice_prediction",
    "choice_token_ids",
    "compare_reasoning",
    "compare_trajectories",
    "corpus_bleu",
    "default_sentence_model_path",
    "exact_match",
    "first_difference",
    "first_token_agreement",
    "get_sentence_encoder",
    "kl_divergence",
    "locate_answer",
    "normalize_answer",
    "parse_choice",
    "parse_number",
    "prefix_match",
    "relaxed_accuracy",
    "rouge_l",
    "sentence_bleu",
    "split_reasoning",
    "split_steps",
    "token_edit_distance",
    "top1_agreement",
    "vqa_accuracy",
]
