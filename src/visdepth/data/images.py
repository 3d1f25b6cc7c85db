"""Turn the image references of a sample into RGB PIL images.

A reference is either a file path or ``scheme:name`` naming an image that ships inside an installed package:

- ``skimage:<name>``: a photo from ``skimage.data`` (``skimage:astronaut``, ``skimage:chelsea``...);
- ``sklearn:<file>``: ``sklearn.datasets.load_sample_image`` (``sklearn:china.jpg``, ``sklearn:flower.jpg``);
- ``matplotlib:<file>``: matplotlib's sample data (``matplotlib:grace_hopper.jpg``).

Other modules add schemes with :func:`register_image_source` (a procedurally generated data set can encode its
images as ``shapes:<spec>`` instead of writing files), so the rest of the code only ever sees strings.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from visdepth.errors import InputError

ImageLike = Image.Image | np.ndarray

# A scheme is a lowercase word of two or more characters, so Windows drive letters ("C:\x.png") stay paths.
_REF_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9_-]+):(?P<name>[^/\\].*)$")


@dataclass(frozen=True)
class ImageSource:
    """A scheme of built-in images: ``load(name)`` returns the image, ``names()`` lists the known names."""

    scheme: str
    load: Callable[[str], ImageLike]
    names: Callable[[], Sequence[str]] | None = None
    description: str = ""


_SOURCES: dict[str, ImageSource] = {}


def register_image_source(
    scheme: str,
    load: Callable[[str], ImageLike],
    names: Callable[[], Sequence[str]] | None = None,
    *,
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Make ``scheme:name`` references resolvable.

    ``names``, when given, lets a manifest be checked without loading any image; leave it out for open-ended
    schemes (then any name passes the check and a bad one fails when loaded).
    """
    if not _REF_RE.match(f"{scheme}:x"):
        raise ValueError(f"image scheme {scheme!r} must be a lowercase word of two or more characters")
    if scheme in _SOURCES and not overwrite:
        raise ValueError(f"image scheme {scheme!r} is already registered; pass overwrite=True to replace it")
    _SOURCES[scheme] = ImageSource(scheme, load, names, description)


def image_sources() -> dict[str, ImageSource]:
    """The registered schemes (a copy)."""
    return dict(_SOURCES)


def split_ref(ref: str) -> tuple[str, str] | None:
    """``(scheme, name)`` when ``ref`` names a registered built-in image, else ``None`` (a file path)."""
    m = _REF_RE.match(ref)
    if m is None or m.group("scheme") not in _SOURCES:
        return None
    return m.group("scheme"), m.group("name")


def is_builtin_ref(ref: str) -> bool:
    """Whether ``ref`` names a registered built-in image rather than a file."""
    return split_ref(ref) is not None


def check_builtin_ref(ref: str) -> str | None:
    """Why a built-in reference cannot resolve (one sentence), or ``None`` when it looks fine; loads nothing."""
    parts = split_ref(ref)
    if parts is None:
        return None
    scheme, name = parts
    src = _SOURCES[scheme]
    if src.names is None:
        return None
    known = list(src.names())
    if _canonical_name(scheme, name) in known:
        return None
    return f"unknown built-in image {ref!r}; use one of " + ", ".join(f"{scheme}:{n}" for n in known)


def _canonical_name(scheme: str, name: str) -> str:
    # sklearn and matplotlib name files; accept the bare stem too since "sklearn:china" is what people type.
    if scheme in ("sklearn", "matplotlib") and "." not in name:
        return name + ".jpg"
    return name


def to_rgb(img: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image or an H x W (x C) array (bool, integer or float in [0, 1])."""
    if isinstance(img, Image.Image):
        if img.mode == "RGB":
            return img
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            # Transparent pixels over white, as a viewer shows them; a bare convert would make them black.
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(bg, rgba).convert("RGB")
        return img.convert("RGB")
    arr = np.asarray(img)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        info = np.iinfo(arr.dtype)
        arr = (arr.astype(np.float64) / info.max * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        # uint8 arrays of these shapes map to L, RGB and RGBA without naming the mode (deprecated in Pillow).
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))
    raise InputError(
        f"an image array of shape {arr.shape} is not a 2-D picture; pass an H x W or H x W x 3 array"
    )


def image_file_problem(path: str | Path) -> str | None:
    """Why the file at ``path`` cannot be read as a picture (a phrase), or ``None``; fast enough for every row.

    ``verify`` reads the structure without decoding (a PNG's chunk checksums, which also catch a cut file); a
    JPEG is decoded at 1/8 scale, which is what finds one cut short; other formats are decoded in full.
    """
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
        if fmt != "PNG":
            with Image.open(path) as im:
                if fmt == "JPEG":
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except UnidentifiedImageError:
        return "is not an image file Pillow can read"
    except Image.DecompressionBombError as exc:
        return f"is too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"is damaged or cut short ({exc})"
    return None


def load_image(ref: str, *, where: str | None = None) -> Image.Image:
    """Load one reference as an RGB image.

    ``where`` describes the sample for error messages (for example ``"sample 'x' (data.jsonl line 3)"``).
    """
    ctx = f" of {where}" if where else ""
    parts = split_ref(ref)
    if parts is not None:
        problem = check_builtin_ref(ref)
        if problem is not None:
            raise InputError(f"{problem}{ctx}")
        scheme, name = parts
        try:
            img = _SOURCES[scheme].load(_canonical_name(scheme, name))
        except InputError:
            raise
        except Exception as exc:  # the package's own error (missing optional download, bad name...)
            raise InputError(
                f"built-in image {ref!r}{ctx} could not be loaded ({type(exc).__name__}: {exc}); "
                "pick an image that ships with the package or use a file"
            ) from exc
        return to_rgb(img).copy()

    path = Path(ref).expanduser()
    if not path.is_file():
        raise InputError(
            f"image {ref!r}{ctx} not found (looked in {path.resolve()}); fix the path or restore the file"
        )
    try:
        with Image.open(path) as im:
            # Phone photos store their rotation in EXIF; apply it so the model sees what a viewer shows.
            im = ImageOps.exif_transpose(im)
            return to_rgb(im).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(
            f"image {ref!r}{ctx} cannot be read as a picture ({exc}); convert it to PNG or JPEG"
        ) from exc


# --- built-in sources -----------------------------------------------------------------------------------------

# skimage.data images that ship inside the wheel (the rest need pooch and a network); checked offline.
SKIMAGE_NAMES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "checkerboard",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "shepp_logan_phantom",
    "stereo_motorcycle",
    "text",
)
SKLEARN_NAMES = ("china.jpg", "flower.jpg")
MATPLOTLIB_NAMES = ("grace_hopper.jpg",)


@functools.lru_cache(maxsize=32)
def _skimage(name: str) -> np.ndarray:
    import skimage.data

    out = getattr(skimage.data, name)()
    # stereo_motorcycle returns (left, right, disparity): the left view is the photo.
    if isinstance(out, tuple):
        out = out[0]
    out.setflags(write=False)  # cached and shared between calls
    return out


def _sklearn(name: str) -> ImageLike:
    # Importing sklearn takes seconds; its sample images are plain JPEG files inside the package, so read them
    # directly when they are where load_sample_image keeps them.
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "images" / name
        if path.is_file():
            with Image.open(path) as im:
                return to_rgb(im).copy()
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _matplotlib(name: str) -> Image.Image:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
        return to_rgb(im).copy()


register_image_source("skimage", _skimage, lambda: SKIMAGE_NAMES, description="scikit-image skimage.data")
register_image_source("sklearn", _sklearn, lambda: SKLEARN_NAMES, description="scikit-learn sample images")
register_image_source(
    "matplotlib", _matplotlib, lambda: MATPLOTLIB_NAMES, description="matplotlib sample data"
)
