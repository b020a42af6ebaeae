"""The long-sequence kernels (book §§ 4.8–4.9) equal their plain-ops references — outputs, first derivatives and
second derivatives, in float64 on hypothesis inputs — and pass float64 gradient checks: block-sparse attention
(``minigrad/kernels/block_sparse.py``), LSH and local chunked attention (``lsh.py``), reversible layers
(``reversible.py``). The pattern is ``tests/test_kernels.py``'s."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_kernels import SETTINGS, _assert_paths_equal, _paths

import minigrad
from minigrad import nn
from minigrad.kernels import block_sparse, lsh, reversible


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------- block-sparse
@SETTINGS
@given(B=st.integers(1, 2), A=st.integers(1, 2), nb=st.integers(3, 6), bs=st.integers(1, 3), d=st.integers(1, 3),
       r=st.integers(0, 2), padded=st.booleans(), seed=st.integers(0, 999))
@example(B=1, A=1, nb=3, bs=1, d=1, r=0, padded=False, seed=0)  # a single middle block: both window slots repeat
def test_block_sparse_attention(B, A, nb, bs, d, r, padded, seed):
    r_ = _rng(seed)
    T = nb * bs
    arrays = [r_.standard_normal((B, A, T, d)) for _ in range(3)]
    plan = r_.integers(0, nb, (A, nb - 2, r))  # any blocks, repeats included (HF's evaluation plan is all 0)
    mask = None
    if padded:
        mask = np.ones((B, T), dtype=bool)
        mask[-1, T - max(1, T // 3):] = False
    _assert_paths_equal(_paths(lambda q, k, v: block_sparse.block_sparse_attention(q, k, v, plan, bs, mask),
                               arrays))


# ---------------------------------------------------------------------------------------------- LSH and local
@SETTINGS
@given(B=st.integers(1, 2), A=st.integers(1, 2), chunks=st.integers(1, 4), c=st.integers(1, 3), d=st.integers(1, 3),
       n_hashes=st.integers(1, 3), before=st.integers(0, 1), after=st.integers(0, 1), causal=st.booleans(),
       padded=st.booleans(), dropout=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 999))
def test_lsh_attention(B, A, chunks, c, d, n_hashes, before, after, causal, padded, dropout, seed):
    r_ = _rng(seed)
    T = chunks * c
    qk, v = r_.standard_normal((B, A, T, d)), r_.standard_normal((B, A, T, d))
    mask = None
    if padded:
        mask = np.ones((B, T), dtype=bool)
        mask[-1, -1] = False
    buckets = lsh.hash_buckets(qk, r_.standard_normal((A, d, n_hashes, 2)), 4, mask)
    gen = minigrad.Generator(seed)

    def build(qk, v):
        gen.manual_seed(seed)  # the same dropout masks on both paths
        return lsh.lsh_attention(qk, v, buckets, c, before, after, causal, mask, dropout, gen)
    _assert_paths_equal(_paths(build, [qk, v]), atol=1e-9)  # HF's −1e5 self score: rounding of terms that large


@SETTINGS
@given(B=st.integers(1, 2), chunks=st.integers(1, 4), c=st.integers(1, 3), d=st.integers(1, 3),
       before=st.integers(0, 2), after=st.integers(0, 1), causal=st.booleans(), padded=st.booleans(),
       seed=st.integers(0, 999))
def test_local_attention(B, chunks, c, d, before, after, causal, padded, seed):
    r_ = _rng(seed)
    T = chunks * c
    arrays = [r_.standard_normal((B, 2, T, d)) for _ in range(3)]
    mask = None
    if padded:
        mask = np.ones((B, T), dtype=bool)
        mask[0, -1] = False
    _assert_paths_equal(_paths(lambda q, k, v: lsh.local_attention(q, k, v, c, before, after, causal, mask), arrays),
                        atol=1e-9)


# ---------------------------------------------------------------------------------------------- reversible
def _reversible_steps(H: int, layers: int, p: float, seed: int):
    gen = minigrad.Generator(seed)
    blocks = [(nn.Linear(H, H, dtype=np.float64, generator=gen), nn.Linear(H, H, dtype=np.float64, generator=gen))
              for _ in range(layers)]
    drop = nn.Dropout(p)
    steps = [(lambda x, memo, f=f: drop(f(x).tanh()), lambda x, memo, g=g: g(x).gelu()) for f, g in blocks]
    return steps, [p for f, g in blocks for p in (*f.parameters(), *g.parameters())]


@SETTINGS
@given(layers=st.integers(1, 3), H=st.integers(1, 4), p=st.sampled_from([0.0, 0.4]), seed=st.integers(0, 999))
def test_reversible_layers(layers, H, p, seed):
    steps, params = _reversible_steps(H, layers, p, seed)
    x1, x2 = _rng(seed).standard_normal((2, 3, H)), _rng(seed + 1).standard_normal((2, 3, H))
    _assert_paths_equal(_paths(lambda a, b: reversible.reversible_layers(a, b, steps, params), [x1, x2], seed=seed))
    # parameter gradients: kernel (returned by its backward) against the stored-activation stack
    grads = []
    for reference in (False, True):
        with minigrad.kernels.reference(reference):
            minigrad.manual_seed(seed)
            y = reversible.reversible_layers(minigrad.Tensor(x1), minigrad.Tensor(x2), steps, params)
            grads.append(minigrad.grad((y * y).sum(), params))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------- gradcheck
def test_gradcheck_float64():
    r_ = _rng(3)
    B, A, nb, bs, d = 1, 2, 5, 2, 3
    T = nb * bs
    mask = np.ones((B, T), dtype=bool)
    mask[0, -3:] = False
    plan = r_.integers(0, nb, (A, nb - 2, 2))
    q, k, v = (minigrad.Tensor(r_.standard_normal((B, A, T, d)), requires_grad=True) for _ in range(3))
    assert minigrad.gradcheck(lambda q, k, v: block_sparse.block_sparse_attention(q, k, v, plan, bs, mask), [q, k, v])
    buckets = lsh.hash_buckets(q.data, r_.standard_normal((A, d, 2, 3)), [2, 4], mask)
    for causal in (False, True):
        assert minigrad.gradcheck(lambda qk, v: lsh.lsh_attention(qk, v, buckets, 2, 1, 1, causal, mask), [q, v])
        assert minigrad.gradcheck(lambda q, k, v: lsh.local_attention(q, k, v, 2, 1, 0, causal, mask), [q, k, v])
    steps, params = _reversible_steps(3, 2, 0.0, 0)
    assert minigrad.gradcheck(lambda a: reversible.reversible_layers(a, a * 0.5, steps, params), [q])


def test_a_wrong_kernel_is_caught():
    """The comparison can fail: a block-sparse backward off by 1 % in dK differs from the reference."""
    original = block_sparse.BlockSparseAttention.backward

    def wrong(self, g):
        dq, dk, dv = original(self, g)
        return dq, dk * 1.01, dv
    block_sparse.BlockSparseAttention.backward = wrong
    try:
        r_ = _rng(0)
        arrays = [r_.standard_normal((1, 1, 8, 2)) for _ in range(3)]
        plan = np.zeros((1, 2, 1), dtype=np.int64)
        with pytest.raises(AssertionError, match="gradient 1"):
            _assert_paths_equal(_paths(lambda q, k, v: block_sparse.block_sparse_attention(q, k, v, plan, 2), arrays,
                                       second_order=False))
    finally:
        block_sparse.BlockSparseAttention.backward = original


# ---------------------------------------------------------------------------------------------- the recipe
def test_long_attention_recipe_writes_its_curves(tmp_path, capsys):
    from models.cli import main

    out = tmp_path / "run"
    code = main(["long-attention", "--lengths", "512,1024", "--dense-max", "512", "--heads", "2", "--head-dim", "16",
                 "--repeats", "1", "--layers", "1,2", "--reversible-length", "256", "--out", str(out),
                 "--default-malloc"])  # no process-wide malloc setting inside the test session
    assert code == 0
    printed = capsys.readouterr().out
    assert "not run: needs" in printed and "crossover" in printed
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["curves"]) == {"dense", "bigbird", "lsh"} and "1024" not in metrics["curves"]["dense"]["peak MiB"]
    assert [r["layers"] for r in metrics["reversible_memory"]] == [1, 2]
    assert all((out / f).stat().st_size > 1000 for f in ("cost_time.png", "cost_memory.png", "reversible_memory.png"))
    assert main(["long-attention", "--lengths", "500", "--out", str(out)]) == 2
    assert "error: --lengths: 500 is not a multiple of --block-size 64" in capsys.readouterr().err
