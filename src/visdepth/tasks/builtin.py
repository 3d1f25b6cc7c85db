"""The built-in tasks: ``photos`` and ``shapes`` (offline, mixed kinds) and the paper's hub benchmarks.

=========  ===================  ===================  ====================================================
task       kind                 scored by            prompt format
=========  ===================  ===================  ====================================================
photos     mixed                each sample's kind   ``lettered`` (questions carry their own instructions)
shapes     mixed                each sample's kind   ``shapes`` (the format visdepth/shapes-vlm was trained on)
blink      multiple_choice      option letter        ``lettered``
flickr8k   caption              ROUGE-L, BLEU        ``lettered`` (the captioning prompt is the question)
chartqa    exact_match          relaxed accuracy     ``lettered-short-answer``
vqav2      exact_match          VQA soft accuracy    ``lettered-short-answer``
=========  ===================  ===================  ====================================================

``photos`` and ``shapes`` are built on the data sets of the same name (``dataset=``), which lets them share it.
"""

from __future__ import annotations

import visdepth.data.shapes  # noqa: F401  (registers the shapes data set the shapes task is built on)
from visdepth.tasks import hub
from visdepth.tasks.base import DEFAULT_FORMAT, MIXED, SHORT_ANSWER_FORMAT, PromptFormat, Task
from visdepth.tasks.registry import register_task

# visdepth.data.shapes.format_choices: options "A. red" one per line, then this line; tests keep them equal.
SHAPES_MC_INSTRUCTION = "Answer with the letter."
SHAPES_FORMAT = PromptFormat("shapes", instructions={"multiple_choice": SHAPES_MC_INSTRUCTION})
# The chain-of-thought format of the shapes set ("... so the final answer is 2."), as visdepth.data.shapes.parse_cot.
SHAPES_ANSWER_PATTERN = r"so the final answer is\s+(?P<answer>[^\s.]+)"
# Shapes answers are short and the reference model stops at its end token; these bound runaway generations.
SHAPES_MAX_NEW_TOKENS = {
    "single_token": 4,
    "multiple_choice": 2,
    "exact_match": 8,
    "caption": 48,
    "reasoning": 64,
}


PHOTOS = register_task(
    Task(
        "photos",
        MIXED,
        description="10 real photos shipped inside scikit-image, scikit-learn and matplotlib with hand-written "
        "questions of every kind; each sample is scored by its own kind",
        prompt_format=DEFAULT_FORMAT,
        dataset="photos",
    )
)

SHAPES = register_task(
    Task(
        "shapes",
        MIXED,
        description="procedurally rendered scenes of coloured shapes (visdepth.data.shapes) with single-token, "
        "multiple-choice, exact-match, caption and chain-of-thought questions",
        prompt_format=SHAPES_FORMAT,
        max_new_tokens=SHAPES_MAX_NEW_TOKENS,
        answer_pattern=SHAPES_ANSWER_PATTERN,
        dataset="shapes",
        splits=("test", "train"),
        default_split="test",
    )
)

BLINK = register_task(
    Task(
        "blink",
        "multiple_choice",
        description="BLINK (Fu et al., ECCV 2024): 14 visual perception tasks as multiple-choice questions with "
        "one to four images",
        prompt_format=DEFAULT_FORMAT,
        loader=hub.load_blink,
        splits=("val", "test"),
        default_split="val",
        source=hub.BLINK_ID,
        missing_answer_fix="BLINK's test answers are hidden; use blink:val",
    )
)

FLICKR8K = register_task(
    Task(
        "flickr8k",
        "caption",
        description="Flickr8K (Hodosh et al., JAIR 2013): one-sentence captions scored against five references",
        prompt_format=DEFAULT_FORMAT,
        loader=hub.load_flickr8k,
        splits=("test", "validation", "train"),
        default_split="test",
        source=hub.FLICKR8K_ID,
    )
)

CHARTQA = register_task(
    Task(
        "chartqa",
        "exact_match",
        description="ChartQA (Masry et al., 2022): questions about charts, numbers scored with 5% tolerance",
        prompt_format=SHORT_ANSWER_FORMAT,
        answer_metric="relaxed_accuracy",
        loader=hub.load_chartqa,
        splits=("test",),
        source=hub.CHARTQA_ID,
    )
)

VQAV2 = register_task(
    Task(
        "vqav2",
        "exact_match",
        description="VQAv2 (Goyal et al., CVPR 2017): open questions about COCO images, VQA soft accuracy over "
        "ten human answers",
        prompt_format=SHORT_ANSWER_FORMAT,
        answer_metric="vqa_accuracy",
        loader=hub.load_vqav2,
        splits=("validation",),
        source=hub.VQAV2_ID,
        missing_answer_fix="only the validation split of VQAv2 has public answers; use vqav2:validation",
    )
)
