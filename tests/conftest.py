"""Shared fixtures: offline mode, small real photos, and tiny random models of every registered family."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

# Tiny models are bound by Python overhead: a second intra-op thread only spins on the shared cores of a CI
# machine (measured several times slower under load), so every test runs with one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photo (scikit-image's astronaut), downscaled so processors stay fast."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((48, 40))


@pytest.fixture(scope="session")
def photo2() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea()).resize((40, 52))


@pytest.fixture(scope="session")
def noise() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (36, 44, 3), dtype=np.uint8))


@functools.cache
def tiny(name: str):
    """Tiny models are built once per test session (they are deterministic, so sharing is safe)."""
    import visdepth

    return visdepth.load(name, device="cpu")
