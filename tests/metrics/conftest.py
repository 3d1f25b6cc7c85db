"""Shared fixtures of the metric tests: one sentence encoder per session (loading it is the slow part)."""

from __future__ import annotations

import pytest

from visdepth.metrics import output as om


@pytest.fixture(scope="session")
def encoder() -> om.SentenceEncoder:
    return om.get_sentence_encoder()
