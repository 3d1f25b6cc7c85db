"""RQ4 summary arithmetic on hand-made rows: the recovered fraction and its interval, the spread across runs."""

from __future__ import annotations

import numpy as np
import pytest

from visdepth.errors import ConfigError
from visdepth.experiments.recovery.decoding import parse_strategies
from visdepth.experiments.recovery.summary import fraction, spread, summarise_kind


def test_fraction_is_the_share_of_the_gap_with_an_interval_around_it():
    full = np.ones(40)
    trunc = np.zeros(40)
    rec = np.array([1.0, 0.0] * 20)  # half the gap comes back
    f = fraction(full, trunc, rec, seed=0)
    assert f.value == pytest.approx(0.5)
    assert f.low < 0.5 < f.high and f.n_boot == 1000
    same = fraction(full, full, rec, seed=0)
    assert same.value is None and "nothing to recover" in same.note


def _row(outputs, scores):
    return {
        "outputs": {"m": outputs},
        "scores": {"m": {k: [{"acc": v} for v in vs] for k, vs in scores.items()}},
    }


def test_spread_counts_runs_consistency_and_question_variance():
    rows = [
        _row({"greedy": ["a"], "sample": ["a", "a"]}, {"greedy": [1.0], "sample": [1.0, 1.0]}),
        _row({"greedy": ["b"], "sample": ["b", "c"]}, {"greedy": [1.0], "sample": [1.0, 0.0]}),
    ]
    s = spread(rows, "m", ["greedy", "sample"], "acc")
    assert s.runs == ["greedy", "sample#0", "sample#1"]
    assert s.scores == [1.0, 1.0, 0.5]
    assert s.range == pytest.approx(0.5) and s.std == pytest.approx(np.std([1.0, 1.0, 0.5]))
    assert s.consistency == 0.5  # the first question is answered the same in every run, the second is not
    assert s.question_variance == pytest.approx(np.mean([0.0, np.var([1.0, 1.0, 0.0])]))


def test_summarise_kind_reads_greedy_against_answers_and_teacher():
    def row(full, trunc, rec):
        models = {"full": full, "truncated@2": trunc, "recovered@2": rec}
        return {
            "outputs": {m: {"greedy": [str(v)]} for m, v in models.items()},
            "scores": {m: {"greedy": [{"accuracy": v}]} for m, v in models.items()},
            "teacher": {m: {"greedy": [{"agreement": float(v == full)}]} for m, v in models.items()},
        }

    rows = [row(1.0, 0.0, 1.0), row(1.0, 0.0, 0.0), row(1.0, 0.0, 1.0), row(0.0, 0.0, 0.0)]
    ks = summarise_kind("single_token", "accuracy", rows, [2], ["greedy"], seed=0)
    rec = ks.recovery["2"]
    assert (rec.full, rec.truncated, rec.recovered) == (0.75, 0.0, 0.5)
    assert rec.fraction.value == pytest.approx(2 / 3)
    assert rec.teacher_full == 1.0 and rec.teacher_truncated == 0.25 and rec.teacher_recovered == 0.75


def test_strategies_parse_with_greedy_first_and_refuse_unknown_names():
    assert [s.name for s in parse_strategies("sample,beam3")] == ["greedy", "sample", "beam3"]
    assert parse_strategies("beam4")[1].gen_kwargs["num_beams"] == 4
    with pytest.raises(ConfigError, match="beam<N>"):
        parse_strategies("beam1")
