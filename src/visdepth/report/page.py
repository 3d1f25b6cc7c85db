"""The building blocks of the HTML report's sections: numbers as table cells, tables, embedded figures, verdicts
and the section record the template shows for one experiment folder.

:mod:`visdepth.report.html` assembles the page from them; a question's own report module (``report/recover.py``)
uses them too, which is why they live here and not in html.py (that would make the two import each other).
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``–`` when missing, 3 significant digits else."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}g}"


def pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


@dataclass
class Verdict:
    question: str
    claim: str
    measured: str
    verdict: str  # holds | does not hold | mixed | not testable
    rule: str

    @property
    def css(self) -> str:
        return self.verdict.replace(" ", "-")


def combine(votes: Sequence[bool | None]) -> str:
    """holds when every testable vote supports, does not hold when none does, mixed else."""
    known = [v for v in votes if v is not None]
    if not known:
        return "not testable"
    if all(known):
        return "holds"
    if not any(known):
        return "does not hold"
    return "mixed"


@dataclass
class Section:
    """What the template shows for one experiment folder."""

    kind: str
    title: str
    folder: str
    model: str
    error: str | None = None
    figures: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    readings: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def table(title: str, header: list[str], rows: list[list[str]], note: str | None = None) -> dict[str, Any]:
    return {"title": title, "header": header, "rows": rows, "note": note}


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def embed_figures(
    plot: Callable[[Any, Path], dict[str, Path]], result: Any, captions: dict[str, str]
) -> list[dict]:
    """Draw with ``plot`` into a scratch folder and embed every PNG it wrote (captions by figure-name prefix)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="visdepth-report-") as tmp:
        paths = plot(result, Path(tmp))
        for name, path in paths.items():
            caption = next((c for prefix, c in captions.items() if name.startswith(prefix)), "")
            out.append({"name": name, "uri": data_uri(Path(path)), "caption": caption})
    return out
