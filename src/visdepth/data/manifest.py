"""Read and write JSONL data manifests: one sample per line.

A row is a JSON object with the fields of :class:`~visdepth.data.sample.Sample`; ``image`` (one reference) may
stand in for ``images`` (a list). Relative image paths resolve against the manifest's folder, so a manifest and
its pictures can move together. Blank lines and lines starting with ``#`` are skipped. Every malformed row raises
:class:`~visdepth.errors.ManifestError` naming the file, the line number and the fix, before any model is loaded.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from visdepth.data.images import check_builtin_ref, image_file_problem, is_builtin_ref
from visdepth.data.sample import TASK_KINDS, Sample
from visdepth.errors import ManifestError

PathLike = str | os.PathLike[str]


def load_manifest(path: PathLike) -> list[Sample]:
    """Read a JSONL manifest into samples, checking every row (and that every image file exists)."""
    shown = str(path)
    path = Path(path).expanduser()
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.jsonl"))[:3]
        example = f" such as {str(path / inside[0])!r}" if inside else ""
        raise ManifestError(
            f"{shown!r} is a folder, not a manifest; give the path of a .jsonl manifest{example} (one sample per "
            "line), or a built-in data set name (see `visdepth datasets`)."
        )
    if not path.is_file():
        where = path.absolute()
        raise ManifestError(f"manifest {shown!r} not found (looked in {where}); fix the path.")
    base = path.absolute().parent
    try:
        # utf-8-sig: editors on Windows prepend a byte-order mark that json.loads would reject.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{shown} is not UTF-8 text ({exc.reason}); save it as UTF-8.") from exc

    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    generated: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        sample, defaulted = _parse_row(stripped, lineno, shown, path.stem, base)
        if sample.id in first_line:
            note = " (as that row's default id)" if sample.id in generated else ""
            raise ManifestError(
                f"{shown} line {lineno}: id {sample.id!r} is already used on line {first_line[sample.id]}{note}; "
                "give each row a unique id."
            )
        first_line[sample.id] = lineno
        if defaulted:
            generated.add(sample.id)
        samples.append(sample)
    if not samples:
        raise ManifestError(f"{shown} has no samples; add one JSON object per line.")
    return samples


def _parse_row(text: str, lineno: int, shown: str, stem: str, base: Path) -> tuple[Sample, bool]:
    """The row's sample, and whether its id was made up from the file name and line."""

    def fail(problem: str, fix: str) -> ManifestError:
        return ManifestError(f"{shown} line {lineno}: {problem}; {fix}.")

    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg} at column {exc.colno})", "fix the row or remove it") from None
    if not isinstance(row, dict):
        raise fail(
            f"expected a JSON object, got {_json_type(row)}", 'write the row as {"image": ..., "prompt": ...}'
        )

    if "image" in row and "images" in row:
        raise fail('both "image" and "images" are given', "keep only one of them")
    refs: Any = row.pop("image") if "image" in row else row.pop("images", None)
    if refs is None:
        raise fail("no image", 'add an "image" path or an "images" list')
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list):
        raise fail(
            f'"images" must be a list of strings, not {_json_type(refs)}', 'write it as ["a.png", ...]'
        )
    if not refs:
        raise fail('"images" is an empty list', "give at least one image")
    images: list[str] = []
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip():
            raise fail(
                f"image reference {ref!r} is not a non-empty string", "give a file path or a built-in name"
            )
        images.append(_resolve_ref(ref.strip(), base, fail))
    row["images"] = images

    defaulted = row.get("id") is None
    if defaulted:
        row["id"] = f"{stem}-{lineno}"
    try:
        sample = Sample.model_validate(row)
    except ValidationError as exc:
        problem, fix = _explain(exc)
        raise fail(problem, fix) from None
    sample._origin = f"{shown} line {lineno}"
    return sample, defaulted


def _resolve_ref(ref: str, base: Path, fail) -> str:
    if is_builtin_ref(ref):
        problem = check_builtin_ref(ref)
        if problem is not None:
            problem, _, fix = problem.partition("; ")
            raise fail(problem, fix)
        return ref
    p = Path(ref).expanduser()
    # abspath rather than resolve: keep symlinked data folders as the user wrote them.
    full = Path(os.path.abspath(p if p.is_absolute() else base / p))
    if not full.is_file():
        raise fail(f"image {ref!r} not found (looked in {full})", "fix the path or remove the row")
    problem = image_file_problem(full)
    if problem is not None:
        raise fail(f"image {ref!r} {problem}", "replace it with a whole PNG or JPEG file or remove the row")
    return str(full)


def _json_type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number"
    )


def _explain(exc: ValidationError) -> tuple[str, str]:
    """One (problem, fix) pair for the first validation error of a row."""
    err = exc.errors()[0]
    loc = err["loc"]
    key = str(loc[0]) if loc else "row"
    # pydantic reports list items as ("choices", 2); users count from one.
    name = f'item {loc[1] + 1} of "{key}"' if len(loc) > 1 and isinstance(loc[1], int) else f'"{key}"'
    kind = err["type"]
    given = err.get("input")
    if kind == "missing":
        what = "a non-empty string" if key in ("prompt", "id") else "a value"
        return f'no "{key}"', f'add a "{key}" key with {what}'
    if kind == "extra_forbidden":
        return f'unknown key "{key}"', 'fix its spelling or move it under "meta"'
    if kind == "literal_error":
        return f"task {given!r} is not a known task kind", "use one of " + ", ".join(TASK_KINDS)
    if kind == "string_too_short":
        return f"{name} is empty", "give it some text"
    if given is None and kind.endswith("_type"):
        optional = key != "prompt" and not name.startswith("item")
        return f"{name} is null", "give it a value" + (" or leave the key out" if optional else "")
    if kind == "string_type":
        return f"{name} must be a string, not {_json_type(given)}", "quote the value"
    if kind == "list_type":
        return f"{name} must be a list, not {_json_type(given)}", 'write it as ["...", "..."]'
    if kind in ("dict_type", "model_type"):
        return f"{name} must be an object, not {_json_type(given)}", 'write it as {"key": value}'
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, "), "fix the row"
    return f"{name}: {err['msg']}", "fix the row"


def write_manifest(samples: Iterable[Sample], path: PathLike) -> Path:
    """Write samples as a JSONL manifest that :func:`load_manifest` reads back to equal samples.

    Image files inside the manifest's folder are written relative to it, so the folder can be moved; other
    files keep their absolute path. The file is replaced atomically.
    """
    path = Path(path).expanduser()
    base = path.absolute().parent
    base.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in samples:
        row = s.model_dump(mode="json", exclude_none=True)
        if not row.get("meta"):
            row.pop("meta", None)
        row["images"] = [_portable_ref(ref, base) for ref in s.images]
        lines.append(json.dumps(row, ensure_ascii=False))
    fd, tmp = tempfile.mkstemp(dir=base, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _portable_ref(ref: str, base: Path) -> str:
    if is_builtin_ref(ref):
        return ref
    full = Path(os.path.abspath(Path(ref).expanduser()))
    try:
        return full.relative_to(base).as_posix()
    except ValueError:
        return str(full)
