"""The ``shapes`` benchmark: procedurally rendered scenes of coloured shapes, with the study's four task kinds.

A scene is a 3 x 3 grid of 16-pixel cells (a 48 x 48 image) holding one to four objects; an object is one of
five colours and four shapes. Cells are aligned with the patch grid of the reference VLM (``visdepth/shapes-vlm``
has 16-pixel patches, so every cell is exactly one image token), which is what lets a tiny vision tower bind
colour and shape. Everything is deterministic from a seed; no file is needed, because an image is named by a
``shapes:<scene>`` reference that encodes its layout and its jitter seed and is re-rendered on load.

Splits: a scene belongs to ``test`` when a hash of its layout (which object in which cell) falls in a fixed
fifth of the hash space, else to ``train``; the two splits therefore never share a layout.

Question types (``meta["qtype"]``) by task kind:

- ``single_token``: ``colour_of_shape``, ``shape_of_colour``, ``exists`` (yes/no), ``colour_at``;
- ``multiple_choice``: ``shape_at_choice``, ``colour_at_choice`` (four lettered options in the fixed order of
  ``SHAPES`` / ``COLOURS``, answer = letter);
- ``exact_match``: ``count_all``, ``count_colour`` (a digit), ``where`` (a position such as ``top left``),
  ``what_at`` (``red circle`` or ``nothing``);
- ``caption``: ``caption``, every object in row-major cell order:
  ``a red circle at top left, a blue square at center.``;
- ``reasoning``: ``cot_colour``, ``cot_shape``, counting step by step in a fixed format, for example
  ``objects are red circle, blue cross, red square. red ones are red circle, red square. so the final answer is
  2.``; :func:`parse_cot` splits the reasoning from the final answer.

Multiple-choice prompts are the question only (as :class:`~visdepth.data.sample.Sample` wants);
:func:`format_choices` appends the options in the format the reference model was trained on.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from visdepth.data.builtin import register_dataset
from visdepth.data.images import register_image_source
from visdepth.data.manifest import write_manifest
from visdepth.data.sample import CHOICE_LABELS, Sample
from visdepth.errors import InputError

GRID = 3
CELL = 16
IMAGE_SIZE = GRID * CELL
BACKGROUND = (255, 255, 255)
MAX_OBJECTS = 4
VERSION = "v1"  # bump when rendering changes, so old references fail loudly instead of drawing differently

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 200, 25),
    "purple": (145, 60, 185),
}
SHAPES = ("circle", "square", "triangle", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
POSITIONS = (
    "top left",
    "top center",
    "top right",
    "middle left",
    "center",
    "middle right",
    "bottom left",
    "bottom center",
    "bottom right",
)
NUMBERS = tuple(str(i) for i in range(MAX_OBJECTS + 1))

QTYPES: dict[str, str] = {
    "colour_of_shape": "single_token",
    "shape_of_colour": "single_token",
    "exists": "single_token",
    "colour_at": "single_token",
    "shape_at_choice": "multiple_choice",
    "colour_at_choice": "multiple_choice",
    "count_all": "exact_match",
    "count_colour": "exact_match",
    "where": "exact_match",
    "what_at": "exact_match",
    "caption": "caption",
    "cot_colour": "reasoning",
    "cot_shape": "reasoning",
}
SPLITS = ("train", "test")
TEST_SAMPLES_PER_QTYPE = 100
COT_SUFFIX = "Think step by step."
MC_SUFFIX = "Answer with the letter."


@dataclass(frozen=True)
class Obj:
    cell: int  # row-major index in the 3 x 3 grid
    colour: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """Objects sorted by cell (the canonical order of captions) and the seed of the rendering jitter."""

    objects: tuple[Obj, ...]
    jitter_seed: int

    def ref(self) -> str:
        """The ``shapes:`` image reference that re-renders exactly this scene."""
        objs = ",".join(f"{o.colour}_{o.shape}@{o.cell}" for o in self.objects)
        return f"shapes:{VERSION}/{objs}/{self.jitter_seed}"

    def layout_key(self) -> str:
        return ",".join(f"{o.cell}{o.colour}{o.shape}" for o in self.objects)

    @property
    def split(self) -> str:
        digest = hashlib.sha256(self.layout_key().encode()).digest()
        return "test" if digest[0] % 5 == 0 else "train"

    def at(self, cell: int) -> Obj | None:
        return next((o for o in self.objects if o.cell == cell), None)


def parse_ref(name: str) -> Scene:
    """The scene of a ``shapes:`` reference name (the part after ``shapes:``)."""
    try:
        version, objs, seed = name.split("/")
        if version != VERSION:
            raise ValueError(f"version {version!r} is not {VERSION!r}")
        objects = []
        for item in objs.split(","):
            kind, cell = item.split("@")
            colour, shape = kind.split("_")
            if colour not in COLOURS or shape not in SHAPES or not 0 <= int(cell) < GRID * GRID:
                raise ValueError(f"bad object {item!r}")
            objects.append(Obj(int(cell), colour, shape))
        return Scene(tuple(sorted(objects, key=lambda o: o.cell)), int(seed))
    except ValueError as err:
        raise InputError(
            f"'shapes:{name}' is not a valid shapes scene ({err}); expected "
            f"'shapes:{VERSION}/<colour>_<shape>@<cell>,.../<seed>' as written by visdepth.data.shapes"
        ) from None


def random_scene(rng: random.Random) -> Scene:
    n = rng.randint(1, MAX_OBJECTS)
    cells = sorted(rng.sample(range(GRID * GRID), n))
    objs = tuple(Obj(c, rng.choice(list(COLOURS)), rng.choice(SHAPES)) for c in cells)
    return Scene(objs, rng.randrange(2**31))


def render(scene: Scene) -> Image.Image:
    """Draw a scene: each shape fills most of its cell, with a little jitter of size, place and colour."""
    rng = random.Random(scene.jitter_seed)
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        row, col = divmod(o.cell, GRID)
        size = rng.randint(11, 14)
        x0 = col * CELL + rng.randint(1, CELL - 1 - size)
        y0 = row * CELL + rng.randint(1, CELL - 1 - size)
        x1, y1 = x0 + size - 1, y0 + size - 1
        fill = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[o.colour])
        if o.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif o.shape == "square":
            draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), fill=fill)
        elif o.shape == "triangle":
            draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=fill)
        else:  # cross: two bars a third of the size wide
            t = max(2, size // 3)
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            draw.rectangle((cx - t // 2, y0, cx - t // 2 + t - 1, y1), fill=fill)
            draw.rectangle((x0, cy - t // 2, x1, cy - t // 2 + t - 1), fill=fill)
    return img


def _load_ref(name: str) -> Image.Image:
    return render(parse_ref(name))


register_image_source(
    "shapes",
    _load_ref,
    description="procedurally rendered scenes of visdepth.data.shapes (re-rendered on load)",
)


# --- questions --------------------------------------------------------------------------------------------


def format_choices(prompt: str, choices: list[str]) -> str:
    """The prompt with lettered options, as the reference model was trained: ``A. red`` one per line."""
    lines = [prompt] + [f"{CHOICE_LABELS[i]}. {c}" for i, c in enumerate(choices)] + [MC_SUFFIX]
    return "\n".join(lines)


def caption(scene: Scene) -> str:
    return ", ".join(f"a {o.name} at {POSITIONS[o.cell]}" for o in scene.objects) + "."


def cot_answer(scene: Scene, group: str, members: list[Obj]) -> str:
    """``objects are A, B. <group> are A. so the final answer is 1.``"""
    listed = ", ".join(o.name for o in scene.objects)
    chosen = ", ".join(o.name for o in members) or "none"
    return f"objects are {listed}. {group} are {chosen}. so the final answer is {len(members)}."


_COT_RE = re.compile(r"so the final answer is\s+([^\s.]+)")


def parse_cot(text: str) -> tuple[str, str | None]:
    """Split a chain-of-thought answer into (reasoning, final answer); the answer is ``None`` when absent.

    The format is ``<reasoning> so the final answer is <answer>.``; the last occurrence counts.
    """
    matches = list(_COT_RE.finditer(text))
    if not matches:
        return text.strip(), None
    last = matches[-1]
    return text[: last.start()].strip(), last.group(1)


def _question(scene: Scene, qtype: str, rng: random.Random) -> tuple[str, str, list[str] | None] | None:
    """(prompt, answer, choices) for one question type, or None when the scene cannot pose it."""
    objs = scene.objects
    colours = [o.colour for o in objs]
    shapes = [o.shape for o in objs]
    if qtype == "colour_of_shape":
        unique = [o for o in objs if shapes.count(o.shape) == 1]
        if not unique:
            return None
        o = rng.choice(unique)
        return f"What colour is the {o.shape}?", o.colour, None
    if qtype == "shape_of_colour":
        unique = [o for o in objs if colours.count(o.colour) == 1]
        if not unique:
            return None
        o = rng.choice(unique)
        return f"What shape is the {o.colour} object?", o.shape, None
    if qtype == "exists":
        present = {o.name for o in objs}
        if rng.random() < 0.5:
            name = rng.choice(sorted(present))
        else:
            # absent ones that share a colour or a shape with a present object are the informative negatives
            absent = [f"{c} {s}" for c in COLOURS for s in SHAPES if f"{c} {s}" not in present]
            near = [a for a in absent if a.split()[0] in colours or a.split()[1] in shapes]
            name = rng.choice(near if near and rng.random() < 0.7 else absent)
        return f"Is there a {name}?", "yes" if name in present else "no", None
    if qtype == "colour_at":
        o = rng.choice(objs)
        return f"What colour is the object at {POSITIONS[o.cell]}?", o.colour, None
    if qtype in ("shape_at_choice", "colour_at_choice"):
        o = rng.choice(objs)
        pool, right = (SHAPES, o.shape) if qtype == "shape_at_choice" else (tuple(COLOURS), o.colour)
        options = rng.sample([p for p in pool if p != right], 3) + [right]
        rng.shuffle(options)  # kept so that the random stream, hence every other sample, is unchanged
        # Options in the pool's fixed order: the letter is then a function of the answer and the options shown,
        # which the reference model learns; with shuffled options it never learnt the induction-style copy
        # from the answer to its letter (MODEL_CARD.md).
        options.sort(key=pool.index)
        what = "shape" if qtype == "shape_at_choice" else "colour"
        return (
            f"What {what} is the object at {POSITIONS[o.cell]}?",
            CHOICE_LABELS[options.index(right)],
            options,
        )
    if qtype == "count_all":
        return "How many objects are there?", str(len(objs)), None
    if qtype == "count_colour":
        c = rng.choice(colours) if rng.random() < 0.6 else rng.choice(list(COLOURS))
        return f"How many {c} objects are there?", str(colours.count(c)), None
    if qtype == "where":
        names = [o.name for o in objs]
        unique = [o for o in objs if names.count(o.name) == 1]
        if not unique:
            return None
        o = rng.choice(unique)
        return f"Where is the {o.name}?", POSITIONS[o.cell], None
    if qtype == "what_at":
        # mostly occupied cells: with one to four objects in nine cells, "nothing" would otherwise be the usual answer
        empty = [c for c in range(GRID * GRID) if scene.at(c) is None]
        cell = rng.choice(empty) if empty and rng.random() < 0.3 else rng.choice(objs).cell
        o = scene.at(cell)
        return f"What is at {POSITIONS[cell]}?", o.name if o else "nothing", None
    if qtype == "caption":
        return "Describe the image.", caption(scene), None
    if qtype == "cot_colour":
        c = rng.choice(colours) if rng.random() < 0.8 else rng.choice(list(COLOURS))
        members = [o for o in objs if o.colour == c]
        return f"How many {c} objects are there? {COT_SUFFIX}", cot_answer(scene, f"{c} ones", members), None
    if qtype == "cot_shape":
        s = rng.choice(shapes) if rng.random() < 0.8 else rng.choice(SHAPES)
        members = [o for o in objs if o.shape == s]
        return f"How many {PLURALS[s]} are there? {COT_SUFFIX}", cot_answer(scene, PLURALS[s], members), None
    raise ValueError(f"unknown question type {qtype!r}")


def make_sample(scene: Scene, qtype: str, rng: random.Random, sample_id: str) -> Sample | None:
    q = _question(scene, qtype, rng)
    if q is None:
        return None
    prompt, answer, choices = q
    kind = QTYPES[qtype]
    meta = {"qtype": qtype, "split": scene.split, "num_objects": len(scene.objects)}
    if kind == "caption":
        return Sample(
            id=sample_id, images=[scene.ref()], prompt=prompt, task=kind, references=[answer], meta=meta
        )
    if kind == "reasoning":
        meta["reasoning"] = parse_cot(answer)[0]
        meta["target"] = answer  # the full chain of thought the model was trained to write
        answer = parse_cot(answer)[1]
    return Sample(id=sample_id, images=[scene.ref()], prompt=prompt, answer=answer, choices=choices, task=kind,
                  meta=meta)  # fmt: skip


def iter_samples(split: str, seed: int = 0, qtypes: tuple[str, ...] | None = None) -> Iterator[Sample]:
    """An endless, deterministic stream of samples of one split, cycling through the question types.

    Each sample has its own scene, drawn until it falls in ``split`` and can pose the question.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    qtypes = tuple(qtypes or QTYPES)
    rng = random.Random(f"visdepth-shapes/{split}/{seed}")
    i = 0
    while True:
        qtype = qtypes[i % len(qtypes)]
        while True:
            scene = random_scene(rng)
            if scene.split != split:
                continue
            sample = make_sample(scene, qtype, rng, f"shapes-{split}-{i:06d}")
            if sample is not None:
                break
        yield sample
        i += 1


def samples(split: str = "test", n: int | None = None, seed: int = 0) -> list[Sample]:
    """``n`` samples of ``split`` (default: the fixed test size, 100 per question type), types interleaved."""
    n = TEST_SAMPLES_PER_QTYPE * len(QTYPES) if n is None else n
    stream = iter_samples(split, seed)
    return [next(stream) for _ in range(n)]


def materialise(samples_: list[Sample], folder: str | Path, manifest_name: str = "shapes.jsonl") -> Path:
    """Write the samples' images as PNG files into ``folder`` plus a JSONL manifest pointing at them.

    Built-in ``shapes:`` references need no files; this is for tools that want plain pictures.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    written = []
    for s in samples_:
        paths = []
        for k, ref in enumerate(s.images):
            path = folder / "images" / f"{s.id}-{k}.png"
            render(parse_ref(ref.removeprefix("shapes:"))).save(path)
            paths.append(str(path.absolute()))
        written.append(s.model_copy(update={"images": paths}))
    return write_manifest(written, folder / manifest_name)


def _load_dataset(split: str | None = None, limit: int | None = None) -> list[Sample]:
    split = split or "test"
    n = TEST_SAMPLES_PER_QTYPE * len(QTYPES)
    return samples(split, min(n, limit) if limit else n)


register_dataset(
    "shapes",
    _load_dataset,
    description="procedurally rendered 3x3 scenes of coloured shapes (visdepth's own offline benchmark): "
    "single-token, multiple-choice, exact-match, caption and chain-of-thought questions; the reference "
    "model visdepth/shapes-vlm is trained on its train split",
    splits=("test", "train"),
    default_split="test",
)
