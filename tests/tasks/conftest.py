"""Shared fixtures of the task tests: one sentence encoder per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def encoder():
    from visdepth.metrics.output import get_sentence_encoder

    return get_sentence_encoder()
