"""Sampling helpers: greedy, temperature, top-k, nucleus (top-p)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.decoding import filter_logits, greedy, probabilities, sample

P4 = np.array([0.5, 0.2, 0.2, 0.1])
Z4 = np.log(P4)


def test_greedy():
    assert greedy(np.array([0.1, 3.0, -1.0])) == 1
    assert greedy(np.array([2.0, 2.0, 1.0])) == 0                     # ties -> lowest id
    assert greedy(np.array([[0.0, 1.0], [5.0, -np.inf]])).tolist() == [1, 0]
    assert isinstance(greedy(np.array([1, 2, 3])), int)               # int logits accepted


@pytest.mark.parametrize("top_p, kept", [
    (0.05, [0]), (0.5, [0]), (0.51, [0, 1]), (0.7, [0, 1]), (0.75, [0, 1, 2]), (0.9, [0, 1, 2]), (1.0, [0, 1, 2, 3]),
])
def test_nucleus_hand_cases(top_p, kept):
    p = probabilities(Z4, top_p=top_p)
    assert np.flatnonzero(p).tolist() == kept
    np.testing.assert_allclose(p[kept], P4[kept] / P4[kept].sum())


def test_top_k_keeps_exactly_k():
    z = np.random.default_rng(0).standard_normal((5, 50))
    for k in (1, 7, 50):
        p = probabilities(z, top_k=k)
        assert (np.count_nonzero(p, axis=1) == k).all()
        top = np.argsort(-z, axis=1)[:, :k]
        assert (np.take_along_axis(p, top, axis=1) > 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # top-k then top-p: 2 best of (0.5, 0.2, 0.2, 0.1) renormalise to (5/7, 2/7); p=0.7 keeps 1
    assert np.flatnonzero(probabilities(Z4, top_k=2, top_p=0.7)).tolist() == [0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=12), st.floats(0.01, 1.0))
def test_nucleus_is_the_smallest_set_with_mass_at_least_p(logits, top_p):
    z = np.array(logits)
    full = probabilities(z)
    kept = probabilities(z, top_p=top_p) > 0
    order = np.argsort(-z, kind="stable")
    k = int(kept.sum())
    assert kept[order[:k]].all()                                     # a prefix of the ranking
    assert full[order[:k]].sum() >= top_p - 1e-9                      # mass >= p
    assert k == 1 or full[order[:k - 1]].sum() < top_p                # and no smaller prefix


def test_temperature():
    z = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(probabilities(z, temperature=2.0), np.exp(z / 2) / np.exp(z / 2).sum())
    assert probabilities(z, temperature=0).tolist() == [0.0, 1.0, 0.0]
    batch = np.random.default_rng(1).standard_normal((64, 30))
    for t in (0, 1e-4):
        assert np.array_equal(sample(batch, temperature=t, rng=0), greedy(batch))


def test_fixed_seed_is_reproducible():
    z = np.random.default_rng(2).standard_normal((8, 100))
    a = sample(z, top_p=0.9, rng=123)
    assert np.array_equal(a, sample(z, top_p=0.9, rng=np.random.default_rng(123)))
    assert not np.array_equal(a, sample(z, top_p=0.9, rng=124))
    assert a.dtype == np.int64 and a.shape == (8,)
    assert isinstance(sample(z[0], rng=0), int)


@pytest.mark.parametrize("kwargs", [{}, {"temperature": 0.7}, {"top_k": 3}, {"top_p": 0.8}])
def test_empirical_frequencies_match_distribution(kwargs):
    n = 20_000
    z = np.log(np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]))
    target = probabilities(z, **kwargs)
    draws = sample(np.broadcast_to(z, (n, 6)), rng=7, **kwargs)
    freq = np.bincount(draws, minlength=6) / n
    assert np.abs(freq - target).max() < 0.015
    assert (freq[target == 0] == 0).all()


def test_rows_sample_from_their_own_distribution():
    z = np.full((2, 3), -np.inf)
    z[0, 2] = 0.0
    z[1, 0] = 0.0
    assert sample(z, rng=0).tolist() == [2, 0]


@pytest.mark.parametrize("logits, kwargs, error, message", [
    (np.zeros((2, 2, 2)), {}, ValueError, r"shape \(V,\) or \(B, V\)"),
    (np.zeros(0), {}, ValueError, "shape"),
    (np.array([1.0, np.nan]), {}, ValueError, "NaN"),
    (np.array([-np.inf, -np.inf]), {}, ValueError, "all -inf"),
    (np.array(["a", "b"]), {}, TypeError, "float"),
    (Z4, {"temperature": -1.0}, ValueError, "temperature"),
    (Z4, {"top_k": 0}, ValueError, r"top_k must be an int in \[1, V=4\]"),
    (Z4, {"top_k": 5}, ValueError, "top_k"),
    (Z4, {"top_p": 0.0}, ValueError, r"top_p must be in \(0, 1\]"),
    (Z4, {"top_p": 1.5}, ValueError, "top_p"),
    (Z4, {"rng": "seed"}, TypeError, "rng"),
])
def test_errors(logits, kwargs, error, message):
    with pytest.raises(error, match=message):
        sample(logits, **kwargs)


def test_filter_logits_marks_removed_tokens():
    out = filter_logits(Z4, top_k=2)
    assert np.isneginf(out[2:]).all() and np.array_equal(out[:2], Z4[:2])
