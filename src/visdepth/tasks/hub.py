"""Benchmarks from the Hugging Face hub (BLINK, Flickr8K, ChartQA, VQAv2) turned into ordinary samples.

Each benchmark has a pure converter from one hub row to a :class:`~visdepth.data.sample.Sample` (tested on
hand-made rows that mimic the hub schema) and a loader that reads rows with ``datasets.load_dataset`` (the
optional ``datasets`` dependency: ``pip install visdepth[datasets]``). Images are written once to a cache
folder (``$VISDEPTH_CACHE``, else ``$XDG_CACHE_HOME/visdepth``, else ``~/.cache/visdepth``) under
``datasets/<benchmark>/``, so hub samples carry plain file paths like any manifest.

==========  ============================  =========================================  =================================
task        hub id                        splits (default first)                     row fields used
==========  ============================  =========================================  =================================
blink       ``BLINK-Benchmark/BLINK``     ``val`` (``test`` answers are hidden);     idx, sub_task, question, choices,
                                          one config per subtask, all 14 by default  answer ``"(A)"``, image_1..image_4
flickr8k    ``jxie/flickr8k``             ``test``, ``validation``, ``train``        image, caption_0..caption_4
chartqa     ``lmms-lab/ChartQA``          ``test``                                   question, answer, type, image
vqav2       ``lmms-lab/VQAv2``            ``validation`` (test splits unlabelled)    question_id, question, image_id,
                                                                                     multiple_choice_answer, answers
==========  ============================  =========================================  =================================

With a ``limit`` the rows are streamed, so a small run downloads only what it uses; without one the split is
downloaded into the ``datasets`` cache. The ChartQA converter also reads the ``HuggingFaceM4/ChartQA`` schema
(query, label).
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from visdepth.data.images import to_rgb
from visdepth.data.sample import CHOICE_LABELS, Sample
from visdepth.errors import InputError, VisdepthError

BLINK_ID = "BLINK-Benchmark/BLINK"
BLINK_SUBTASKS = (
    "Art_Style",
    "Counting",
    "Forensic_Detection",
    "Functional_Correspondence",
    "IQ_Test",
    "Jigsaw",
    "Multi-view_Reasoning",
    "Object_Localization",
    "Relative_Depth",
    "Relative_Reflectance",
    "Semantic_Correspondence",
    "Spatial_Relation",
    "Visual_Correspondence",
    "Visual_Similarity",
)
FLICKR8K_ID = "jxie/flickr8k"
CHARTQA_ID = "lmms-lab/ChartQA"
VQAV2_ID = "lmms-lab/VQAv2"

# The captioning prompt of LLaVA-1.5's COCO/Flickr evaluation (as in lmms-eval).
CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."

_FORMAT_EXT = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_dir() -> Path:
    """visdepth's cache folder: ``$VISDEPTH_CACHE``, else ``$XDG_CACHE_HOME/visdepth``, else ``~/.cache/visdepth``."""
    if os.environ.get("VISDEPTH_CACHE"):
        return Path(os.environ["VISDEPTH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "visdepth"


class ImageCache:
    """Writes images from hub rows to files under ``folder`` (once each) and returns their paths.

    An image given as encoded bytes (``{"bytes": ..., "path": ...}``, what ``datasets`` yields without
    decoding) is written verbatim, so JPEGs are not re-compressed; a decoded PIL image or an array is written
    as PNG (lossless); a row that points to an existing local file keeps that file.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).expanduser()

    def save(self, key: str, image: Any) -> str:
        """The file path of ``image`` stored under ``key`` (``"vqav2/42"``; written unless already there)."""
        parts = [_SAFE_RE.sub("_", p) for p in key.split("/") if p not in ("", ".", "..")]
        if not parts:
            raise ValueError(f"image key {key!r} is empty")
        stem = self.folder.joinpath(*parts)
        if isinstance(image, dict):
            data, path = image.get("bytes"), image.get("path")
            if data is None:
                if path and Path(path).is_file():
                    return str(Path(path).absolute())
                raise InputError(f"hub image {key!r} has neither bytes nor a readable path ({path!r})")
            try:
                with Image.open(io.BytesIO(data)) as im:
                    fmt = im.format or ""
                    # an exotic format is stored as decoded pixels, since not every reader handles it
                    pixels = None if fmt in _FORMAT_EXT else to_rgb(im).copy()
            except OSError as exc:
                raise InputError(f"hub image {key!r} cannot be read as a picture ({exc})") from exc
            target = stem.with_name(stem.name + _FORMAT_EXT.get(fmt, ".png"))
            if target.is_file():
                return str(target)
            if pixels is not None:
                return self._write_png(target, pixels)
            return self._write(target, bytes(data))
        if isinstance(image, (str, os.PathLike)):
            if Path(image).is_file():
                return str(Path(image).absolute())
            raise InputError(f"hub image {key!r} points to {str(image)!r}, which does not exist")
        target = stem.with_name(stem.name + ".png")
        if target.is_file():
            return str(target)
        return self._write_png(target, to_rgb(image))

    def _write_png(self, target: Path, image: Image.Image) -> str:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return self._write(target, buf.getvalue())

    @staticmethod
    def _write(target: Path, data: bytes) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a killed run never leaves a half image that a later run would trust
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return str(target)


# --- row converters (pure apart from writing images through the cache) ----------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _blink_letter(answer: Any, n_choices: int) -> str | None:
    # "(A)" in the public val split; the test split hides answers (an empty or placeholder value).
    s = (_text(answer) or "").strip("() ").upper()
    if len(s) == 1 and s in CHOICE_LABELS[:n_choices]:
        return s
    return None


def blink_row_to_sample(
    row: dict[str, Any], index: int, *, images: ImageCache, split: str = "val", subtask: str | None = None
) -> Sample:
    """A BLINK row (idx, sub_task, question, choices, answer ``"(B)"``, image_1..image_4) as a
    multiple-choice sample with the answer as a letter; a hidden answer becomes ``None``."""
    subtask = _text(row.get("sub_task")) or subtask
    idx = _text(row.get("idx")) or f"{split}_{subtask or 'blink'}_{index}"
    refs = [
        images.save(f"blink/{idx}_{k}", row[f"image_{k}"])
        for k in range(1, 5)
        if row.get(f"image_{k}") is not None
    ]
    if not refs:
        raise InputError(f"BLINK row {idx!r} has no image_1..image_4; the hub schema may have changed")
    choices = [str(c) for c in row["choices"]]
    return Sample(
        id=f"blink-{idx}",
        images=refs,
        prompt=str(row["question"]).strip(),
        choices=choices,
        answer=_blink_letter(row.get("answer"), len(choices)),
        task="multiple_choice",
        meta={"source": BLINK_ID, "split": split, "subtask": subtask},
    )


def flickr8k_row_to_sample(
    row: dict[str, Any], index: int, *, images: ImageCache, split: str = "test", prompt: str = CAPTION_PROMPT
) -> Sample:
    """A Flickr8K row (image, caption_0..caption_4) as a caption sample with its five references."""
    refs = [t for k in range(5) if (t := _text(row.get(f"caption_{k}")))]
    if not refs and isinstance(row.get("captions"), list):  # other mirrors keep a list
        refs = [t for c in row["captions"] if (t := _text(c))]
    if not refs:
        raise InputError(f"Flickr8K row {index} has no caption_0..caption_4; the hub schema may have changed")
    image = row["image"]
    path = image.get("path") if isinstance(image, dict) else None
    name = Path(path).stem if path else f"{split}-{index:05d}"  # the original Flickr file name when known
    return Sample(
        id=f"flickr8k-{name}",
        images=[images.save(f"flickr8k/{name}", image)],
        prompt=prompt,
        task="caption",
        references=refs,
        meta={"source": FLICKR8K_ID, "split": split, "index": index},
    )


def chartqa_row_to_sample(
    row: dict[str, Any], index: int, *, images: ImageCache, split: str = "test"
) -> Sample:
    """A ChartQA row (question, answer, type, image; or query, label) as an exact-match sample.

    Several labels become the answer plus ``meta["aliases"]``; ``type`` (``human_test`` or
    ``augmented_test``) is kept so results can be split as in the paper.
    """
    question = _text(row.get("question")) or _text(row.get("query"))
    if question is None:
        raise InputError(f"ChartQA row {index} has no question; the hub schema may have changed")
    label = row.get("answer", row.get("label"))
    labels = (
        [t for x in label if (t := _text(x))] if isinstance(label, list) else [t for t in [_text(label)] if t]
    )
    kind = row.get("type", row.get("human_or_machine"))
    meta: dict[str, Any] = {"source": CHARTQA_ID, "split": split, "type": None if kind is None else str(kind)}
    if len(labels) > 1:
        meta["aliases"] = labels[1:]
    return Sample(
        id=f"chartqa-{split}-{index:05d}",
        images=[images.save(f"chartqa/{split}-{index:05d}", row["image"])],
        prompt=question,
        answer=labels[0] if labels else None,
        task="exact_match",
        meta=meta,
    )


def _vqa_answers(answers: Any) -> list[str]:
    # list of {"answer": ...} dicts (lmms-lab/VQAv2), a dict of lists (a datasets Sequence of structs) or str.
    if isinstance(answers, dict):
        answers = answers.get("answer", [])
    out = []
    for a in answers or []:
        t = _text(a.get("answer")) if isinstance(a, dict) else _text(a)
        if t is not None:
            out.append(t)
    return out


def vqav2_row_to_sample(
    row: dict[str, Any], index: int, *, images: ImageCache, split: str = "validation"
) -> Sample:
    """A VQAv2 row as an exact-match sample: ``answer`` is the most common human answer
    (``multiple_choice_answer``), ``meta["answers"]`` the ten human answers for soft accuracy."""
    qid = row.get("question_id", index)
    answers = _vqa_answers(row.get("answers"))
    answer = _text(row.get("multiple_choice_answer"))
    if answer is None and answers:
        answer = Counter(answers).most_common(1)[0][0]
    image_id = row.get("image_id")
    key = f"vqav2/{image_id}" if image_id is not None else f"vqav2/q{qid}"  # one file per COCO image
    meta: dict[str, Any] = {"source": VQAV2_ID, "split": split, "answers": answers}
    for k in ("image_id", "question_type", "answer_type"):
        if row.get(k) is not None:
            meta[k] = row[k] if isinstance(row[k], (int, float)) else str(row[k])
    return Sample(
        id=f"vqav2-{qid}",
        images=[images.save(key, row["image"])],
        prompt=str(row["question"]).strip(),
        answer=answer,
        task="exact_match",
        meta=meta,
    )


# --- loaders ----------------------------------------------------------------------------------------------


def _import_datasets(task: str) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise VisdepthError(
            f"task {task!r} reads the Hugging Face hub and needs the datasets package; run `pip install datasets` "
            "(or `pip install visdepth[datasets]`), or use a local manifest (local:<path.jsonl>)"
        ) from exc
    return datasets


def iter_hub_rows(
    task: str,
    dataset_id: str,
    *,
    split: str,
    limit: int | None = None,
    config: str | None = None,
    image_columns: Sequence[str] = ("image",),
) -> Iterator[dict[str, Any]]:
    """Rows of a hub data set with its image columns left encoded (``{"bytes", "path"}``), streamed when
    ``limit`` is given; any loading failure becomes one :class:`VisdepthError` naming the data set."""
    datasets = _import_datasets(task)
    where = f"{dataset_id!r}" + (f" (config {config!r})" if config else "") + f" split {split!r}"

    def fail(exc: Exception) -> VisdepthError:
        return VisdepthError(
            f"could not read {where} from the Hugging Face hub for task {task!r} ({type(exc).__name__}: {exc}); "
            "check the network and the split, or use a local manifest (local:<path.jsonl>)"
        )

    try:
        ds = datasets.load_dataset(dataset_id, config, split=split, streaming=limit is not None)
        features = getattr(ds, "features", None) or {}
        for col in image_columns:
            if isinstance(features.get(col), datasets.Image):
                # encoded bytes: written to the cache verbatim instead of decoded and re-encoded
                ds = ds.cast_column(col, datasets.Image(decode=False))
        if limit is not None:
            ds = ds.take(limit) if hasattr(ds, "take") else ds.select(range(min(limit, len(ds))))
        rows = iter(ds)
    except VisdepthError:
        raise
    except Exception as exc:
        raise fail(exc) from exc
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # streaming reads lazily: network errors surface here
            raise fail(exc) from exc
        yield dict(row)


def _images(cache: str | os.PathLike[str] | None) -> ImageCache:
    return ImageCache(Path(cache).expanduser() if cache is not None else cache_dir() / "datasets")


def load_blink(
    split: str | None = "val",
    limit: int | None = None,
    *,
    subtasks: Sequence[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> list[Sample]:
    """BLINK samples of the chosen ``subtasks`` (all 14 by default), interleaved so that a small ``limit``
    still covers every subtask."""
    split = split or "val"
    chosen = list(subtasks or BLINK_SUBTASKS)
    unknown = [s for s in chosen if s not in BLINK_SUBTASKS]
    if unknown:
        raise VisdepthError(f"unknown BLINK subtasks {unknown}; use some of {', '.join(BLINK_SUBTASKS)}")
    images = _images(cache)
    image_cols = [f"image_{k}" for k in range(1, 5)]
    per_task = [
        iter_hub_rows("blink", BLINK_ID, split=split, limit=limit, config=name, image_columns=image_cols)
        for name in chosen
    ]
    out: list[Sample] = []
    counters = [itertools.count() for _ in chosen]
    for group in itertools.zip_longest(*per_task):
        for name, counter, row in zip(chosen, counters, group, strict=True):
            if row is not None:
                out.append(blink_row_to_sample(row, next(counter), images=images, split=split, subtask=name))
        if limit is not None and len(out) >= limit:
            break
    return out[:limit]


def load_flickr8k(
    split: str | None = "test", limit: int | None = None, *, cache: str | os.PathLike[str] | None = None
) -> list[Sample]:
    """Flickr8K caption samples (five references each)."""
    split = split or "test"
    images = _images(cache)
    rows = iter_hub_rows("flickr8k", FLICKR8K_ID, split=split, limit=limit)
    return [flickr8k_row_to_sample(r, i, images=images, split=split) for i, r in enumerate(rows)]


def load_chartqa(
    split: str | None = "test", limit: int | None = None, *, cache: str | os.PathLike[str] | None = None
) -> list[Sample]:
    """ChartQA samples (human and augmented questions)."""
    split = split or "test"
    images = _images(cache)
    rows = iter_hub_rows("chartqa", CHARTQA_ID, split=split, limit=limit)
    return [chartqa_row_to_sample(r, i, images=images, split=split) for i, r in enumerate(rows)]


def load_vqav2(
    split: str | None = "validation", limit: int | None = None, *, cache: str | os.PathLike[str] | None = None
) -> list[Sample]:
    """VQAv2 samples with their ten human answers."""
    split = split or "validation"
    images = _images(cache)
    rows = iter_hub_rows("vqav2", VQAV2_ID, split=split, limit=limit)
    return [vqav2_row_to_sample(r, i, images=images, split=split) for i, r in enumerate(rows)]
