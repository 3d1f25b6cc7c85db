"""Where a checkpoint's files are, checked before transformers reads them: one sentence for a missing folder, a
hub id that cannot be fetched offline, or a weights file cut short, instead of the hub's repo-id rules or a
safetensors traceback.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from visdepth.errors import UnsupportedModelError

_PATH_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _hub_offline() -> bool:
    import huggingface_hub

    if os.environ.get("TRANSFORMERS_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return True
    return bool(huggingface_hub.is_offline_mode())


def check_model_source(
    model_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    known: Iterable[str] = (),
) -> None:
    """Raise :class:`~visdepth.errors.UnsupportedModelError` when ``model_id`` cannot be a loadable checkpoint.

    A local folder must exist, hold ``config.json`` and whole safetensors files; a name written as a path
    (``./x``, ``/x``, ``~/x``, ``a/b/c``) that is no folder is refused as a missing folder; a hub id is refused
    when the hub is offline and the id is not in the local cache. ``known`` names (built-in and tiny models) are
    offered when one is close to ``model_id``. Anything else is left to transformers.
    """
    path = Path(model_id).expanduser()
    if path.exists():
        check_folder(path, model_id)
        return
    close = difflib.get_close_matches(model_id, list(known), n=1, cutoff=0.8)
    hint = f"did you mean {close[0]!r}? otherwise " if close else ""
    if not _is_repo_id(model_id) or model_id.startswith(_PATH_PREFIXES):
        raise UnsupportedModelError(
            f"model folder {model_id!r} does not exist (looked in {path.absolute()}); {hint}fix the path, or give "
            "a hub id or a built-in name (see `visdepth models`)."
        )
    if not _hub_offline():
        return  # transformers downloads it, or says why it cannot
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, "config.json", cache_dir=cache_dir, revision=revision)
    if not isinstance(cached, str):
        where = cache_dir or constants.HF_HUB_CACHE
        raise UnsupportedModelError(
            f"{model_id!r} is not a folder here and not in the local hub cache ({where}), and the hub is offline "
            f"(HF_HUB_OFFLINE=1); {hint}download it where there is a network (`hf download {model_id}`) and "
            "copy the cache over, or give a local folder or a built-in name (see `visdepth models`)."
        )
    check_safetensors(Path(cached).parent)


def check_folder(path: Path, shown: str) -> None:
    """A checkpoint folder: it is a folder, it holds ``config.json``, its safetensors files are whole."""
    if not path.is_dir():
        raise UnsupportedModelError(
            f"--model {shown!r} is a file, not a folder; give the folder that holds config.json and the weights "
            f"(for example {str(path.parent)!r})."
        )
    if not (path / "config.json").is_file():
        raise UnsupportedModelError(
            f"model folder {shown!r} has no config.json; give the folder that save_pretrained wrote (config.json "
            "beside the weights), a hub id, or a built-in name."
        )
    check_safetensors(path)


def check_safetensors(folder: Path) -> None:
    """Refuse a safetensors file that is shorter (or longer) than its header says, or a missing shard.

    The header (8 bytes of length, then JSON) gives every tensor's byte range, so a download cut short or a copy
    that ran out of disk is found by its size alone, without reading the weights.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UnsupportedModelError(_damaged(index, "its JSON cannot be read")) from None
        for shard in sorted(shards):
            if not (folder / shard).is_file():
                raise UnsupportedModelError(
                    f"{folder / shard} is missing (listed in {index.name}); the model is incomplete: re-download "
                    "it, or re-save it with save_pretrained."
                )
    for file in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(file)
        if problem is not None:
            raise UnsupportedModelError(_damaged(file, problem))


def _damaged(file: Path, problem: str) -> str:
    return (
        f"weights file {file} is damaged or incomplete ({problem}); re-download the model, or re-save it with "
        "save_pretrained."
    )


def _safetensors_problem(file: Path) -> str | None:
    size = file.stat().st_size
    with file.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, too short to hold a header"
        length = int.from_bytes(head, "little")
        if 8 + length > size:
            return f"{size} bytes, shorter than its {length}-byte header"
        try:
            header = json.loads(f.read(length))
            end = max(
                (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "its header is not valid safetensors JSON"
    expected = 8 + length + end
    if size != expected:
        return f"{size:,} bytes where its header describes {expected:,}"
    return None
