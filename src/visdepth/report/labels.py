"""Short names for figures and the HTML report: a model named by a local path must not fill a panel's title."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the longest model label a figure title carries (longer ones keep their tail, where the name usually is)
MAX_LABEL = 32


def shorten(text: str, limit: int = MAX_LABEL) -> str:
    """``text`` cut to ``limit`` characters, keeping its end behind an ellipsis (names differ at the end)."""
    text = str(text)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def model_label(model: Mapping[str, Any] | str | None, limit: int = MAX_LABEL) -> str:
    """A short label for a model: a hub id (``org/name``) as it is, a local path by its last component.

    ``model`` is a result's ``model`` record (its ``name``) or the name itself; ``'model'`` when there is none.
    """
    name = model.get("name") if isinstance(model, Mapping) else model
    if not name:
        return "model"
    name = str(name).rstrip("/\\")
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    # a hub id has exactly one slash and no path-like start; anything else is a folder: keep its last part
    is_path = name.startswith(("/", ".", "~")) or len(parts) > 2 or ":" in name.split("/")[0]
    label = parts[-1] if is_path and parts else name
    return shorten(label, limit)
