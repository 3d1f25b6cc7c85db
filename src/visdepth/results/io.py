"""Writing result files so that a killed run loses nothing and a rerun resumes where it stopped.

- :class:`JsonlWriter` appends one JSON object per line (per-sample rows) and flushes and fsyncs each one;
  on reopening it knows which ids are done and drops a half-written last line left by a kill.
- :func:`write_json` replaces a summary file atomically, so readers never see half a file.
- :func:`to_jsonable` turns pydantic models, dataclasses, numpy and torch values into plain JSON. Non-finite
  floats (nan, inf) become ``null``: strict JSON has no NaN, and a metric that could not be computed (for
  example the entropy of an empty token group) reads naturally as null.
- :func:`set_seed` seeds python, numpy and torch.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel

from visdepth.errors import VisdepthError

PathLike = str | os.PathLike[str]
Key = str | tuple[str, ...]


def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` made of dict, list, str, int, float, bool and None only.

    Pydantic models and dataclasses become dicts, numpy and torch scalars and arrays become numbers and
    (nested) lists, tuples and sets become lists, paths and dates strings, non-string keys strings, and nan and
    inf become None.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)  # bool subclasses and IntEnum become plain ints
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, BaseModel):
        return to_jsonable(obj.model_dump())
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        try:
            return sorted(items)  # sets have no order; sorting keeps files diffable between runs
        except TypeError:
            return items
    if isinstance(obj, (np.generic, np.ndarray)):
        return to_jsonable(obj.tolist())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    torch = sys.modules.get("torch")  # never import torch just to serialise
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            if not (t.dtype.is_floating_point or t.dtype.is_complex) or t.dtype in (
                torch.float32,
                torch.float64,
            ):
                return to_jsonable(t.tolist())
            return to_jsonable(t.float().tolist())  # bf16/fp16/fp8: widen first so values print as decimals
        if isinstance(obj, torch.dtype):
            return str(obj).removeprefix("torch.")
        if isinstance(obj, torch.device):
            return str(obj)
    raise TypeError(
        f"cannot write a {type(obj).__module__}.{type(obj).__qualname__} to JSON; "
        "convert it to numbers, strings, lists or dicts first"
    )


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, np.generic):
        k = k.item()
    if isinstance(k, enum.Enum):
        k = k.value
    return str(k)


def dumps(obj: Any, indent: int | None = None) -> str:
    """JSON text of ``obj`` after :func:`to_jsonable` (UTF-8 kept readable, never NaN)."""
    return json.dumps(to_jsonable(obj), ensure_ascii=False, allow_nan=False, indent=indent)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened this way on Windows.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically: a reader sees the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 minus the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_json(path: PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file + ``os.replace``); returns the path.

    The object is converted with :func:`to_jsonable` first, so nan and inf are written as null.
    """
    return write_text_atomic(path, dumps(obj, indent=indent) + "\n")


def read_json(path: PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _scan_jsonl(data: bytes, shown: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Rows of JSONL bytes, the byte length of the complete part, and whether that part ends without newline.

    The last line may be cut short by a killed writer: it is kept if it still parses, else left out. A bad line
    anywhere else is real damage and raises.
    """
    rows: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    last_i = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    offset = 0
    for i, raw in enumerate(lines):
        last = i == last_i
        end = offset + len(raw) + (0 if last else 1)
        if raw.strip():
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if last:
                    return rows, offset, False
                raise VisdepthError(
                    f"{shown} line {i + 1} is not valid JSON; delete that line (or the file) and rerun to resume"
                ) from None
            if not isinstance(row, dict):
                if last:
                    return rows, offset, False
                raise VisdepthError(
                    f"{shown} line {i + 1} is not a JSON object; delete that line (or the file) and rerun"
                )
            rows.append(row)
        offset = end
    missing_newline = bool(lines[-1].strip())
    return rows, len(data), missing_newline


def _key_of(row: Mapping[str, Any], key: Key) -> Any:
    """The id of a row under ``key`` (strings; a tuple of strings for a tuple key), None when it has none."""
    if isinstance(key, str):
        return None if row.get(key) is None else str(row[key])
    if any(row.get(k) is None for k in key):
        return None
    return tuple(str(row[k]) for k in key)


def unique_rows(rows: Iterable[dict[str, Any]], key: Key = "id") -> list[dict[str, Any]]:
    """``rows`` with only the first row of each id kept (rows without the id are all kept), in order."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        k = _key_of(row, key)
        if k is not None:
            if k in seen:
                continue
            seen.add(k)
        out.append(row)
    return out


def read_jsonl(path: PathLike, *, key: Key | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a truncated last line (from a killed run) is ignored, blank lines skipped.

    With ``key`` (``"id"``, or a tuple of fields), only the first row of each id is kept: a file written by two
    runs at once (before runs locked their folder) may hold a sample twice.
    """
    path = Path(path)
    rows, _, _ = _scan_jsonl(path.read_bytes(), str(path))
    return rows if key is None else unique_rows(rows, key)


class JsonlWriter:
    """Append-only JSONL file of per-sample rows, durable row by row and resumable.

    With ``resume=True`` (default) an existing file is kept: its rows are in :attr:`existing` and their ids in
    :attr:`done_ids`, so the caller skips finished samples; a half-written last line left by a kill is cut off
    the file before appending, and rows repeating an earlier row's id are dropped from it (the first is kept),
    so a resumed file holds each id once. With ``resume=False`` the file starts empty.

    ``key`` names the field that identifies a row (``"id"``), or a tuple of fields for rows keyed by several
    values (``("id", "layer")``); ids are compared as strings, tuples of strings for a tuple key. Each row is
    written with a single ``write``, flushed and fsynced (``fsync=False`` trades that safety for speed).
    """

    def __init__(self, path: PathLike, resume: bool = True, *, key: Key = "id", fsync: bool = True) -> None:
        self.path = Path(path)
        self.key = key
        self.fsync = fsync
        self.existing: list[dict[str, Any]] = []
        self.done_ids: set[Any] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            self._recover()
        self._file = open(self.path, "a" if resume else "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self.written = 0
        for row in self.existing:
            k = self._key_of(row)
            if k is not None:
                self.done_ids.add(k)

    def _recover(self) -> None:
        data = self.path.read_bytes()
        rows, good, missing_newline = _scan_jsonl(data, str(self.path))
        if good < len(data):
            # Garbage from a killed write: appending after it would glue the next row onto it.
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        elif missing_newline:
            with open(self.path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
        unique = unique_rows(rows, self.key)
        if len(unique) < len(rows):
            # duplicates (two runs appended at once): rewrite the file with each id once, atomically
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in unique)
            write_text_atomic(self.path, text)
        self.existing = unique

    def _key_of(self, row: Mapping[str, Any]) -> Any:
        return _key_of(row, self.key)

    def is_done(self, key: Any) -> bool:
        """Whether a row with this id (or tuple of ids) is already in the file."""
        if isinstance(self.key, str):
            return str(key) in self.done_ids
        return tuple(str(k) for k in key) in self.done_ids

    __contains__ = is_done

    def write(self, row: Mapping[str, Any] | BaseModel) -> None:
        """Append one row (a dict or pydantic model) and make it durable."""
        if self._file.closed:
            raise ValueError(f"{self.path} is closed; open a new JsonlWriter to append")
        obj = to_jsonable(row)
        if not isinstance(obj, dict):
            raise TypeError(f"a JSONL row must be a mapping, got {type(row).__name__}")
        k = self._key_of(obj)
        if k is None:
            raise ValueError(f"row has no {self.key!r}; every row needs it so a rerun can resume")
        if k in self.done_ids:
            raise ValueError(
                f"a row with {self.key!r} = {k!r} is already in {self.path}; skip done ids first"
            )
        self._file.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.done_ids.add(k)
        self.written += 1

    def write_many(self, rows: Iterable[Mapping[str, Any] | BaseModel]) -> None:
        """Append several rows, each made durable as it is written."""
        for row in rows:
            self.write(row)

    def __len__(self) -> int:
        return len(self.existing) + self.written

    def close(self) -> None:
        """Close the file (rows are already on disk)."""
        if not self._file.closed:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonlWriter({str(self.path)!r}, rows={len(self)})"


def set_seed(seed: int) -> int:
    """Seed python's ``random``, numpy's global generator and torch (all devices); returns the seed.

    Deterministic algorithms are deliberately not forced: that is a speed trade-off for the caller to make.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy only accepts 32-bit seeds
    try:
        import torch
    except ImportError:
        return seed
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed
