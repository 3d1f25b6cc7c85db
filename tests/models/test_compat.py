"""The transformers-release layer: the cache argument found from signatures, the structural check on load."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from torch import nn

from tests.conftest import tiny
from visdepth.errors import UnsupportedModelError
from visdepth.models import compat, tiny_names

ROOT = Path(__file__).resolve().parents[2]


def declared_range() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if d.startswith("transformers"))[len("transformers") :]


def test_the_supported_range_is_the_declared_one():
    declared = SpecifierSet(declared_range())
    assert SpecifierSet(compat.FALLBACK_RANGE) == declared
    assert SpecifierSet(compat.supported_transformers()) == declared
    assert compat.in_supported_range(), compat.version_sentence()
    assert not compat.in_supported_range("4.57.0")


@pytest.mark.parametrize("name", tiny_names())
def test_cache_argument_of_every_family_follows_the_release(name):
    adapter = tiny(name)
    expected = "cache" if Version(compat.transformers_version()) >= Version("5.24") else "past_key_values"
    for module in (adapter.layers[0], adapter.layers[-1], adapter.base_model, adapter.model):
        assert compat.cache_kwarg(module) == expected


def test_cache_is_read_under_either_name_and_written_under_the_modules_own():
    class New(nn.Module):
        def forward(self, hidden_states, cache=None, **kwargs):
            return hidden_states

    class Old(nn.Module):
        def forward(self, hidden_states, past_key_values=None, **kwargs):
            return hidden_states

    marker = object()
    for module, name in ((New(), "cache"), (Old(), "past_key_values")):
        assert compat.cache_kwarg(module) == name
        assert compat.get_cache(module, {name: marker}) is marker
        assert compat.get_cache(module, {"cache": marker}) is marker
        assert compat.get_cache(module, {"past_key_values": marker}) is marker
        assert compat.get_cache(module, {"use_cache": True}) is None
        out = compat.with_cache(module, {"cache": 1, "past_key_values": 2, "use_cache": True}, marker)
        assert out == {name: marker, "use_cache": True}


def test_a_forward_without_a_cache_argument_names_the_release():
    class NoCache(nn.Module):
        def forward(self, hidden_states):
            return hidden_states

    with pytest.raises(UnsupportedModelError, match=r"transformers .* is installed; visdepth supports"):
        compat.cache_kwarg(NoCache())


def test_output_cache_reads_either_field():
    class Out:
        cache = None
        past_key_values = "old"

    assert compat.output_cache(Out()) == "old"
    Out.cache = "new"
    assert compat.output_cache(Out()) == "new"


def test_structural_check_fails_in_one_sentence(monkeypatch):
    adapter = tiny("tiny:llava")
    compat.check_structure(adapter)  # a good model passes
    cfg = adapter.text_config
    monkeypatch.setattr(cfg, "num_hidden_layers", cfg.num_hidden_layers + 1)
    with pytest.raises(UnsupportedModelError) as err:
        compat.check_structure(adapter)
    message = str(err.value)
    assert "decoder layers" in message and "supports transformers" in message and "\n" not in message


def test_structural_check_catches_a_missing_part(monkeypatch):
    adapter = tiny("tiny:llava")
    monkeypatch.setattr(type(adapter), "norm", property(lambda self: self.language_model.no_such_norm))
    with pytest.raises(UnsupportedModelError, match="could not find the decoder's parts"):
        compat.check_structure(adapter)
    monkeypatch.setattr(type(adapter), "norm", property(lambda self: torch.zeros(1)))
    with pytest.raises(UnsupportedModelError, match="final norm is Tensor, not a module"):
        compat.check_structure(adapter)
