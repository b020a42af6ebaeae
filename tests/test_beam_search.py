"""Beam search and greedy decoding on hand-made distributions whose best answers are known."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.beam_search import beam_search, greedy_search, length_penalty_factor, reorder_state

BOS, EOS, A, B = 0, 1, 2, 3
V = 4


def table_step(table: dict, vocab: int = V, calls: list | None = None):
    """A step function from {prefix (tuple, without <s>): {token: probability}}. Its state is
    the list of the prefixes each hypothesis has consumed, so a wrong ``reorder`` is caught:
    on every call hypothesis k's state must equal its tokens but the newest one."""

    def step(tokens: np.ndarray, state):
        assert tokens.ndim == 2 and tokens[:, 0].tolist() == [BOS] * len(tokens)
        assert [tuple(s) for s in state] == [tuple(t[1:-1]) for t in tokens.tolist()]
        if calls is not None:
            calls.append(tokens.copy())
        lp = np.full((len(tokens), vocab), -np.inf)
        for k, row in enumerate(tokens.tolist()):
            for token, p in table[tuple(row[1:])].items():
                lp[k, token] = math.log(p)
        return lp, [list(t[1:]) for t in tokens.tolist()]

    return step


def run_table(table, **kw):
    """beam_search on ``table`` (list state, reordered by list indexing); also returns the calls."""
    calls: list = []
    results = beam_search(table_step(table, calls=calls), [[]], bos_id=BOS, eos_id=EOS,
                          reorder=lambda s, idx: [s[i] for i in idx], **kw)
    return results, calls


# Three steps: first a or b, then a or b, then </s> for sure.
#   greedy:  a (0.6) -> a (0.55) -> </s>  = 0.33
#   best:    b (0.4) -> a (0.9)  -> </s>  = 0.36
THREE_STEP = {
    (): {A: 0.6, B: 0.4},
    (A,): {A: 0.55, B: 0.45},
    (B,): {A: 0.9, B: 0.1},
    **{(x, y): {EOS: 1.0} for x in (A, B) for y in (A, B)},
}


def all_sequences(table, max_len: int):
    """Every complete sequence with its probability (ended by </s> or cut at max_len)."""
    out = {}

    def walk(prefix, p):
        if (prefix and prefix[-1] == EOS) or len(prefix) == max_len:
            out[prefix] = p
            return
        for token, q in table[prefix].items():
            walk(prefix + (token,), p * q)

    walk((), 1.0)
    return out


def test_three_step_greedy_is_not_the_optimum_but_beam_is():
    best = max(all_sequences(THREE_STEP, 5).items(), key=lambda kv: kv[1])
    assert best == ((B, A, EOS), pytest.approx(0.36))
    tokens, score = greedy_search(table_step(THREE_STEP), [[]], bos_id=BOS, eos_id=EOS, max_len=5)
    assert tokens == [A, A, EOS] and score == pytest.approx(math.log(0.33))
    results, _ = run_table(THREE_STEP, beam_size=2, max_len=5)
    assert results[0][0] == [B, A, EOS]
    assert results[0][1] == pytest.approx(math.log(0.36))
    # the runner-up is the greedy answer's rival a-a (0.33): scores sorted best first
    assert results[1] == ([A, A, EOS], pytest.approx(math.log(0.33)))


def test_beam_size_one_equals_greedy_on_the_toy():
    results, _ = run_table(THREE_STEP, beam_size=1, max_len=5)
    greedy = greedy_search(table_step(THREE_STEP), [[]], bos_id=BOS, eos_id=EOS, max_len=5)
    assert results == [(greedy[0], pytest.approx(greedy[1]))]


# </s> right away (0.45) beats "a </s>" (0.55 * 0.75 = 0.4125) on total log-probability,
# but not once scores are divided by GNMT's lp(|Y|) = ((5 + |Y|) / 6) ** alpha.
SHORT_VS_LONG = {(): {EOS: 0.45, A: 0.55}, (A,): {EOS: 0.75, A: 0.25}, (A, A): {EOS: 1.0}}


def test_length_penalty_changes_the_choice():
    plain, _ = run_table(SHORT_VS_LONG, beam_size=2, max_len=4)
    assert plain[0] == ([EOS], pytest.approx(math.log(0.45)))
    penalised, _ = run_table(SHORT_VS_LONG, beam_size=2, max_len=4, length_penalty=1.0)
    assert penalised[0][0] == [A, EOS]
    assert penalised[0][1] == pytest.approx(math.log(0.4125) / (7 / 6))
    assert penalised[1][1] == pytest.approx(math.log(0.45) / 1.0)
    # the crossover: log(.45)/lp(1) = log(.4125)/lp(2)  <=>  alpha = log(ratio of logs)/log(7/6)
    alpha_star = math.log(math.log(0.4125) / math.log(0.45)) / math.log(7 / 6 / 1)
    below, _ = run_table(SHORT_VS_LONG, beam_size=2, max_len=4, length_penalty=alpha_star - 0.05)
    above, _ = run_table(SHORT_VS_LONG, beam_size=2, max_len=4, length_penalty=alpha_star + 0.05)
    assert below[0][0] == [EOS] and above[0][0] == [A, EOS]


def test_length_penalty_factor_is_gnmt():
    assert length_penalty_factor(7, 0.0) == 1.0
    assert length_penalty_factor(1, 1.0) == pytest.approx(1.0)
    assert length_penalty_factor(7, 0.6) == pytest.approx((12 / 6) ** 0.6)


def test_max_len_returns_unfinished_hypotheses():
    never_ends = {(): {A: 0.7, B: 0.3}, (A,): {A: 0.7, B: 0.3}, (B,): {A: 0.7, B: 0.3},
                  **{(x, y): {A: 1.0} for x in (A, B) for y in (A, B)}}
    results, log = run_table(never_ends, beam_size=2, max_len=2)
    assert [r[0] for r in results] == [[A, A], [A, B]]
    assert results[0][1] == pytest.approx(math.log(0.49))
    assert len(log) == 2  # exactly max_len calls of step
    tokens, score = greedy_search(table_step(never_ends), [[]], bos_id=BOS, eos_id=EOS, max_len=2)
    assert tokens == [A, A] and score == pytest.approx(math.log(0.49))


def random_markov_step(seed: int, vocab: int):
    """log p(next | last token, position) from a random table: a tiny 'language model'."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(8, vocab, vocab)) * 2.0

    def step(tokens, state):
        t = tokens.shape[1] - 1
        z = logits[t, tokens[:, -1]]  # (K, V)
        z = z - z.max(-1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return lp, {"hidden": np.repeat(tokens[:, -1:], 2, axis=1).astype(float)}

    return step


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(3, 6), max_len=st.integers(1, 6),
       alpha=st.sampled_from([0.0, 0.6, 2.0]))
def test_beam_one_equals_greedy_on_random_models(seed, vocab, max_len, alpha):
    step = random_markov_step(seed, vocab)
    greedy = greedy_search(step, {"hidden": np.zeros((1, 2))}, bos_id=0, eos_id=1, max_len=max_len)
    beam = beam_search(step, {"hidden": np.zeros((1, 2))}, bos_id=0, eos_id=1, beam_size=1, max_len=max_len,
                       length_penalty=alpha)
    assert len(beam) == 1 and beam[0][0] == greedy[0]
    if alpha == 0.0:
        assert beam[0][1] == pytest.approx(greedy[1])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), max_len=st.integers(1, 4))
def test_a_wide_beam_finds_the_exhaustive_optimum(seed, max_len):
    vocab = 3
    step = random_markov_step(seed, vocab)
    best_score, best = -np.inf, None
    for n in range(1, max_len + 1):  # every sequence: ends with </s> (id 1), or is cut at max_len
        for seq in itertools.product(range(vocab), repeat=n):
            if (1 in seq[:-1]) or (seq[-1] != 1 and n < max_len):
                continue
            lp, tokens = 0.0, np.array([[0]])
            for tok in seq:
                lp += step(tokens, None)[0][0, tok]
                tokens = np.concatenate([tokens, [[tok]]], axis=1)
            if lp > best_score + 1e-12:
                best_score, best = lp, list(seq)
    results = beam_search(step, {"hidden": np.zeros((1, 2))}, bos_id=0, eos_id=1, beam_size=vocab ** max_len,
                          max_len=max_len)
    assert results[0][0] == best and results[0][1] == pytest.approx(best_score)
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True)


def test_default_reorder_indexes_nested_arrays_along_axis_0():
    state = {"h": np.arange(6).reshape(3, 2), "pair": (np.array([10, 11, 12]), None), "n": 5}
    out = reorder_state(state, np.array([2, 2, 0]))
    assert out["h"].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert out["pair"][0].tolist() == [12, 12, 10] and out["pair"][1] is None and out["n"] == 5


def test_bad_input_gives_clear_errors():
    step = table_step(THREE_STEP)
    with pytest.raises(ValueError, match="beam_search: beam_size"):
        beam_search(step, [[]], bos_id=BOS, eos_id=EOS, beam_size=0)
    with pytest.raises(ValueError, match="greedy_search: max_len"):
        greedy_search(step, [[]], bos_id=BOS, eos_id=EOS, max_len=0)
    with pytest.raises(ValueError, match=r"log_probs of shape \(K=1, V\)"):
        beam_search(lambda t, s: (np.zeros(4), s), None, bos_id=BOS, eos_id=EOS)
    with pytest.raises(TypeError, match="pair"):
        greedy_search(lambda t, s: np.zeros((1, 4)), None, bos_id=BOS, eos_id=EOS)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(step, [[]], bos_id=BOS, eos_id=EOS, length_penalty=float("nan"))
