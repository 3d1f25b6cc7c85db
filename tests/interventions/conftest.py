"""Interventions run many small forward passes: one intra-op thread each is faster than two contending ones."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    # tiny models are bound by Python overhead; a second intra-op thread only adds spinning on shared cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
