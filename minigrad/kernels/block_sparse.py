"""Block-sparse attention (book § 4.8, BigBird; Zaheer et al. 2020, "Big Bird: Transformers for Longer
Sequences", Appendix D "BigBird-ITC"): global tokens, a sliding window and random blocks, as gathered
block matmuls — the (T, T) score matrix is never formed.

The sequence of T = nb · bs tokens is cut into nb blocks of ``block_size`` bs. Query block i attends to

    i = 0 and i = nb − 1 (the global blocks):   every key block                       (2·bs rows × T keys)
    1 ≤ i ≤ nb − 2:                             blocks 0 and nb − 1 (global), i − 1, i, i + 1 (window),
                                                and r random blocks R[h, i − 1] of its head h

so the cost is (2·T + (nb − 2)·(5 + r)·bs) · bs per head: linear in T. Each middle query block attends to
its 5 + r key blocks ("slots", in the order 0, i − 1, i, i + 1, nb − 1, R…) as one small dense attention,

    O_i = softmax(Q_i K_[slots(i)]ᵀ · s + M_i) V_[slots(i)]                          (Vaswani et al. eq. 1)

M_i is −inf at padding keys and at the slot that repeats a global block (the left window of block 1 is
block 0, the right window of block nb − 2 is block nb − 1). A random block that repeats another slot is
*kept*: its keys are counted twice in the softmax, as in Hugging Face (whose evaluation mode uses the
all-zero plan, so every middle row sees block 0 another r times). ``dense_equivalent_mask`` writes the
same attention as a dense (T, T) mask, log(count) — for tests and plots only.

The reference gathers the 5 + r slot blocks of every row into one (5 + r)·bs × d matrix. The kernel gathers
only the random blocks: the windows of neighbouring rows overlap, so all of them are one strided *view* of
the keys, and the two global blocks are shared by every row; one softmax runs over the three parts' scores
without joining them. Backward of each row is the standard one (see ``attention.py``),

    dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dO ⊙ O)),  dQ = s·dS K,  dK = s·dSᵀ Q,  dV = Pᵀ dO,

part by part, each part's dK and dV added into their blocks before the next part is made: the window by
three shifted slices, the global blocks summed over the rows in one product, the random blocks by one
one-hot matrix product per head (a scatter-add without ``np.add.at``'s per-row loop).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minigrad.function import Function, enable_grad, is_grad_enabled
from minigrad.kernels import using_reference
from minigrad.kernels.attention import _safe_softmax_, masked_softmax_reference

STRUCTURAL_SLOTS = 5  # first global, window left, own block, window right, last global


def block_layout(random_blocks: np.ndarray, num_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """The key blocks of every middle query block: ``(layout, repeated)``.

    ``layout`` (A, nb − 2, 5 + r): for query block i (row i − 1) the blocks 0, i − 1, i, i + 1, nb − 1 and
    its r random blocks. ``repeated`` (nb − 2, 5 + r) bool: the window slots that repeat a global block
    (masked, so that block counts once)."""
    A, m, r = random_blocks.shape
    rows = np.arange(1, num_blocks - 1)
    structural = np.stack([np.zeros_like(rows), rows - 1, rows, rows + 1, np.full_like(rows, num_blocks - 1)], 1)
    layout = np.concatenate([np.broadcast_to(structural, (A, m, STRUCTURAL_SLOTS)), random_blocks], axis=2)
    repeated = np.zeros((m, STRUCTURAL_SLOTS + r), dtype=bool)
    repeated[0, 1] = True  # block 1's left neighbour is the first global block
    repeated[-1, 3] = True  # block nb − 2's right neighbour is the last global block
    return layout.astype(np.intp), repeated


def _middle_mask(layout, repeated, key_mask, block_size: int, dtype) -> np.ndarray:
    """Additive mask (B | 1, A, nb − 2, 1, (5 + r)·bs) of the gathered keys: −inf at repeated slots and padding."""
    A, m, S = layout.shape
    keep = np.broadcast_to(~repeated[:, :, None], (m, S, block_size))[None, None]  # (1, 1, m, S, bs)
    if key_mask is not None:
        B = key_mask.shape[0]
        blocks = key_mask.reshape(B, -1, block_size)  # (B, nb, bs)
        keep = keep & blocks[:, layout]  # (B, A, m, S, bs)
    mask = np.where(keep, 0.0, -np.inf).astype(dtype)
    return mask.reshape(mask.shape[:3] + (1, S * block_size))


def dense_equivalent_mask(random_blocks: np.ndarray, num_blocks: int, block_size: int) -> np.ndarray:
    """The block-sparse pattern as an additive dense mask (A, T, T): log(how often key j is in query i's slots),
    −inf where never. Dense attention with this mask equals ``block_sparse_attention`` (O(T²): tests, plots)."""
    layout, repeated = block_layout(np.asarray(random_blocks), num_blocks)
    A, m, S = layout.shape
    counts = np.zeros((A, num_blocks, num_blocks))
    counts[:, [0, -1], :] = 1.0  # the global query blocks see everything
    rows = np.broadcast_to(np.arange(1, num_blocks - 1)[None, :, None], layout.shape)
    heads = np.broadcast_to(np.arange(A)[:, None, None], layout.shape)
    np.add.at(counts, (heads, rows, layout), np.broadcast_to(~repeated, layout.shape).astype(float))
    counts = counts.repeat(block_size, axis=1).repeat(block_size, axis=2)  # (A, T, T)
    with np.errstate(divide="ignore"):
        return np.log(counts)


def _key_padding(key_mask, dtype):
    """(B, 1, 1, T) additive mask of the keys, or None."""
    return None if key_mask is None else np.where(key_mask, 0.0, -np.inf).astype(dtype)[:, None, None, :]


# ----------------------------------------------------------------------------------------------
# Reference: the same gathered-block attention in Tensor ops
# ----------------------------------------------------------------------------------------------
def block_sparse_attention_reference(q, k, v, layout, repeated, block_size: int, scale: float, key_mask=None):
    """O = block-sparse attention in plain Tensor ops: gather the slot blocks, softmax per row of blocks."""
    from minigrad.tensor import Tensor, cat

    B, A, T, d = q.shape
    bs, nb = block_size, T // block_size
    m, S = nb - 2, layout.shape[-1]
    heads = np.arange(A)[:, None, None]
    qb, kb, vb = (t.reshape(B, A, nb, bs, d) for t in (q, k, v))  # (B, A, nb, bs, d)
    k_slots = kb[:, heads, layout].reshape(B, A, m, S * bs, d)  # (B, A, m, S·bs, d)
    v_slots = vb[:, heads, layout].reshape(B, A, m, S * bs, d)
    mask = Tensor._wrap(_middle_mask(layout, repeated, key_mask, bs, q.dtype))
    P = masked_softmax_reference((qb[:, :, 1:-1] * scale) @ k_slots.swapaxes(-1, -2), mask)  # (B, A, m, bs, S·bs)
    middle = (P @ v_slots).reshape(B, A, m * bs, d)
    padding = _key_padding(key_mask, q.dtype)
    q_global = cat([qb[:, :, 0], qb[:, :, -1]], dim=2)  # (B, A, 2·bs, d)
    P_global = masked_softmax_reference((q_global * scale) @ k.swapaxes(-1, -2),
                                        None if padding is None else Tensor._wrap(padding))  # (B, A, 2·bs, T)
    out_global = P_global @ v  # (B, A, 2·bs, d)
    return cat([out_global[:, :, :bs], middle, out_global[:, :, bs:]], dim=2)  # (B, A, T, d)


# ----------------------------------------------------------------------------------------------
# Kernel
# ----------------------------------------------------------------------------------------------
class BlockSparseAttention(Function):
    """Block-sparse attention in one node (module docstring). The keys of the middle query blocks come in three
    parts, none a copy of the sequence: the two global blocks, the 3-block windows — a strided view, since the
    windows of neighbouring blocks overlap — and the r random blocks (gathered). One softmax runs over the
    three parts' scores without joining them."""

    def forward(self, q, k, v, *, layout, repeated, block_size, scale, key_mask):
        self.layout, self.repeated, self.bs, self.scale, self.key_mask = layout, repeated, block_size, scale, key_mask
        B, A, T, d = q.shape
        bs, nb = block_size, T // block_size
        plan = layout[:, :, STRUCTURAL_SLOTS:]
        sc = q.dtype.type(scale)
        # contiguous keys and values: the gathers copy whole blocks, the window views read them row after row
        self.k, self.v = k, v = np.ascontiguousarray(k), np.ascontiguousarray(v)
        qb = q.reshape(B, A, nb, bs, d)
        q_mid = qb[:, :, 1:-1] * sc  # (B, A, m, bs, d), scaled on the small side
        parts = range(3 if plan.shape[-1] else 2)  # global, window, random
        scores = [np.matmul(q_mid, _key_part(k, i, plan, bs).swapaxes(-1, -2)) for i in parts]  # (B, A, m, bs, ·)
        _mask_parts_(scores, key_mask, plan, nb, bs)
        self.P = _softmax_over_parts_(scores)
        out = np.empty((B, A, T, d), dtype=np.result_type(q, v))
        ob = out.reshape(B, A, nb, bs, d)
        ob[:, :, 1:-1] = sum(np.matmul(P, _key_part(v, i, plan, bs)) for i, P in zip(parts, self.P))
        q_global = qb[:, :, [0, nb - 1]].reshape(B, A, 2 * bs, d)
        s_global = np.matmul(q_global * sc, k.swapaxes(-1, -2))  # (B, A, 2·bs, T)
        padding = _key_padding(key_mask, q.dtype)
        if padding is not None:
            s_global += padding
        self.P_global = _safe_softmax_(s_global, padding is not None)
        ob[:, :, [0, nb - 1]] = np.matmul(self.P_global, v).reshape(B, A, 2, bs, d)
        return self.save_output(out)

    def backward(self, g):
        if is_grad_enabled():  # create_graph: differentiate the reference (twice differentiable)
            return _reference_backward(self, g)
        q = self.args()[0]
        k, v, out = self.k, self.v, self.output()
        bs, sc = self.bs, q.dtype.type(self.scale)
        plan = self.layout[:, :, STRUCTURAL_SLOTS:]
        B, A, T, d = q.shape
        nb = T // bs
        qb, gb, ob = (a.reshape(B, A, nb, bs, d) for a in (q, g, out))
        q_mid, g_mid = qb[:, :, 1:-1], np.ascontiguousarray(gb[:, :, 1:-1])
        D = (g_mid * ob[:, :, 1:-1]).sum(axis=-1, keepdims=True)  # rowsum(dO ⊙ O)
        dq = np.empty((B, A, T, d), dtype=q.dtype)
        dqb = dq.reshape(B, A, nb, bs, d)
        dq_mid = 0
        dk = np.zeros((B, A, nb, bs, d), dtype=k.dtype)
        dv = np.zeros((B, A, nb, bs, d), dtype=v.dtype)
        for part, P in enumerate(self.P):  # one part at a time: its gradients go home before the next
            dS = np.matmul(g_mid, _key_part(v, part, plan, bs).swapaxes(-1, -2))  # dP = dO Vᵀ
            dS -= D
            dS *= P  # dS = P ⊙ (dP − D)
            dq_mid = dq_mid + np.matmul(dS, _key_part(k, part, plan, bs))
            _part_back(dk, part, _transposed_product(dS, q_mid, part == 0), plan)  # dK = dSᵀ Q (scaled below)
            del dS
            _part_back(dv, part, _transposed_product(P, g_mid, part == 0), plan)  # dV = Pᵀ dO
        dqb[:, :, 1:-1] = dq_mid * sc
        del dq_mid
        dk, dv = dk.reshape(B, A, T, d), dv.reshape(B, A, T, d)
        dk *= sc
        # the two global query blocks: dense rows over all T keys
        q_global = qb[:, :, [0, nb - 1]].reshape(B, A, 2 * bs, d)
        g_global = gb[:, :, [0, nb - 1]].reshape(B, A, 2 * bs, d)
        o_global = ob[:, :, [0, nb - 1]].reshape(B, A, 2 * bs, d)
        dS_global = np.matmul(g_global, v.swapaxes(-1, -2))  # (B, A, 2·bs, T)
        dS_global -= (g_global * o_global).sum(axis=-1, keepdims=True)
        dS_global *= self.P_global
        dqb[:, :, [0, nb - 1]] = (np.matmul(dS_global, k) * sc).reshape(B, A, 2, bs, d)
        dk += np.matmul(dS_global.swapaxes(-1, -2), q_global * sc).reshape(dk.shape)
        dv += np.matmul(self.P_global.swapaxes(-1, -2), g_global).reshape(dv.shape)
        return dq, dk, dv


def _key_part(x: np.ndarray, part: int, plan: np.ndarray, bs: int) -> np.ndarray:
    """The keys (or values) of the middle query blocks 1 … nb − 2, part 0: the global blocks 0 and nb − 1, shared by
    every row (B, A, 1, 2·bs, d); part 1: the window, blocks i − 1, i, i + 1 (B, A, m, 3·bs, d), a read-only
    strided view; part 2: the r random blocks (B, A, m, r·bs, d), gathered."""
    B, A, T, d = x.shape
    nb, r = T // bs, plan.shape[-1]
    blocks = x.reshape(B, A, nb, bs, d)
    if part == 0:
        return blocks[:, :, [0, nb - 1]].reshape(B, A, 1, 2 * bs, d)
    if part == 1:
        sB, sA, sT, sd = x.strides
        return as_strided(x, (B, A, nb - 2, 3 * bs, d), (sB, sA, bs * sT, sT, sd), writeable=False)
    return blocks[:, np.arange(A)[:, None, None], plan].reshape(B, A, nb - 2, r * bs, d)


def _mask_parts_(scores: list[np.ndarray], key_mask, plan: np.ndarray, nb: int, bs: int) -> None:
    """−inf, in place, at the window blocks that repeat a global block (block 1's left neighbour, block nb − 2's
    right neighbour) and at padding keys of every part."""
    window = scores[1]
    window[:, :, 0, :, :bs] = -np.inf
    window[:, :, -1, :, 2 * bs:] = -np.inf
    if key_mask is None:
        return
    B, m, r = key_mask.shape[0], nb - 2, plan.shape[-1]
    pad = np.where(key_mask, 0.0, -np.inf).astype(window.dtype)  # (B, T)
    blocks = pad.reshape(B, nb, bs)
    scores[0] += blocks[:, [0, nb - 1]].reshape(B, 1, 1, 1, 2 * bs)
    window += as_strided(pad, (B, m, 3 * bs), (pad.strides[0], bs * pad.strides[1], pad.strides[1]))[:, None, :, None]
    if r:
        scores[2] += blocks[:, plan].reshape(B, plan.shape[0], m, 1, r * bs)


def _softmax_over_parts_(scores: list[np.ndarray]) -> list[np.ndarray]:
    """softmax over the concatenated last axes of ``scores``, in place, without concatenating (a row with every
    key masked becomes 0)."""
    top = scores[0].max(axis=-1, keepdims=True)
    for s in scores[1:]:
        np.maximum(top, s.max(axis=-1, keepdims=True), out=top)
    top[np.isneginf(top)] = 0.0
    total = 0
    for s in scores:
        s -= top
        np.exp(s, out=s)
        total = total + s.sum(axis=-1, keepdims=True)
    total[total == 0] = 1.0
    for s in scores:
        s /= total
    return scores


def _transposed_product(S: np.ndarray, x: np.ndarray, shared: bool) -> np.ndarray:
    """Sᵀ x per row of blocks: (B, A, m, bs, n) and (B, A, m, bs, d) → (B, A, m, n, d); for a part every row
    shares (the global blocks), summed over the rows in one product → (B, A, 1, n, d)."""
    if not shared:
        return np.matmul(S.swapaxes(-1, -2), x)
    B, A, m, bs, n = S.shape
    return np.matmul(S.reshape(B, A, m * bs, n).swapaxes(-1, -2), x.reshape(B, A, m * bs, -1))[:, :, None]


def _part_back(out: np.ndarray, part: int, grad: np.ndarray, plan: np.ndarray) -> None:
    """The adjoint of ``_key_part``: add a part's gradient (B, A, m | 1, n·bs, d) into the key blocks ``out``
    (B, A, nb, bs, d), in place."""
    B, A, nb, bs, d = out.shape
    m = nb - 2
    if part == 0:  # the global blocks, from every row
        glob = grad.reshape(B, A, 2, bs, d)
        out[:, :, 0] += glob[:, :, 0]
        out[:, :, nb - 1] += glob[:, :, 1]
    elif part == 1:
        window = grad.reshape(B, A, m, 3, bs, d)
        out[:, :, 0:m] += window[:, :, :, 0]  # the row of block i → block i − 1
        out[:, :, 1:m + 1] += window[:, :, :, 1]  # the block itself
        out[:, :, 2:m + 2] += window[:, :, :, 2]  # block i + 1
    else:  # random blocks may repeat: out[h] += onehot(h) @ gradients, one product per head
        r = plan.shape[-1]
        onehot = np.zeros((A, nb, m * r), dtype=out.dtype)
        onehot[np.arange(A)[:, None], plan.reshape(A, m * r), np.arange(m * r)] = 1.0
        out += np.matmul(onehot, grad.reshape(B, A, m * r, bs * d)).reshape(B, A, nb, bs, d)


def _reference_backward(node: Function, g):
    """Gradients by differentiating the reference on the node's Tensor inputs (for ``create_graph``)."""
    from minigrad.autograd import grad

    with enable_grad():
        q, k, v = (t.clone() for t in node.args())  # own nodes: partial derivatives, even if k depends on q
        out = block_sparse_attention_reference(q, k, v, node.layout, node.repeated, node.bs, node.scale,
                                               node.key_mask)
        wanted = [t for t, need in zip((q, k, v), node.needs_input_grad) if need]
        grads = iter(grad((out * g).sum(), wanted, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in node.needs_input_grad)


# ----------------------------------------------------------------------------------------------
# The function layers call
# ----------------------------------------------------------------------------------------------
def block_sparse_attention(q, k, v, random_blocks, block_size: int, key_mask=None, scale: float | None = None):
    """BigBird-ITC block-sparse attention (module docstring) of ``q``, ``k``, ``v`` (B, A, T, d) → (B, A, T, d).

    ``random_blocks`` (A, T/bs − 2, r) integer: the random key blocks of each middle query block per head
    (r may be 0). ``key_mask`` (B, T) bool, True for real tokens, or None. ``scale`` defaults to 1/√d.
    T must be a multiple of ``block_size`` with at least 3 blocks (pad first, as BigBird's model does)."""
    from minigrad.functional.attention import check_float

    fn = "block_sparse_attention"
    check_float(fn, q=q, k=k, v=v)
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"{fn}: q, k and v must share the shape (batch, heads, seq_len, head_dim), got "
                         f"{q.shape}, {k.shape} and {v.shape}")
    B, A, T, d = q.shape
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"{fn}: block_size must be a positive int, got {block_size!r}")
    if T % block_size:
        raise ValueError(f"{fn}: seq_len {T} is not a multiple of block_size {block_size}; pad the input to "
                         f"{-(-T // block_size) * block_size} tokens (BigBirdModel pads automatically)")
    nb = T // block_size
    if nb < 3:
        raise ValueError(f"{fn}: the layout needs at least 3 blocks (2 global + 1 middle), got seq_len {T} = "
                         f"{nb} block(s) of {block_size}; use full attention for such short inputs")
    plan = np.asarray(random_blocks)
    if plan.ndim != 3 or plan.shape[:2] != (A, nb - 2) or (plan.size and plan.dtype.kind not in "iu"):
        raise ValueError(f"{fn}: random_blocks must be integers of shape (heads={A}, blocks − 2={nb - 2}, r), "
                         f"got shape {plan.shape} dtype {plan.dtype}")
    if plan.size and (plan.min() < 0 or plan.max() >= nb):
        raise ValueError(f"{fn}: random_blocks must lie in [0, {nb}), got min {plan.min()} and max {plan.max()}")
    mask = None
    if key_mask is not None:
        mask = np.asarray(key_mask.data if hasattr(key_mask, "data") and not isinstance(key_mask, np.ndarray)
                          else key_mask)
        if mask.dtype != np.bool_ or mask.shape != (B, T):
            raise ValueError(f"{fn}: key_mask must be bool of shape (batch, seq_len)={(B, T)}, got "
                             f"{mask.dtype} {mask.shape}")
    layout, repeated = block_layout(plan.astype(np.intp), nb)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if using_reference():
        return block_sparse_attention_reference(q, k, v, layout, repeated, block_size, scale, mask)
    return BlockSparseAttention.apply(q, k, v, layout=layout, repeated=repeated, block_size=int(block_size),
                                      scale=scale, key_mask=mask)


__all__ = ["BlockSparseAttention", "block_layout", "block_sparse_attention", "block_sparse_attention_reference",
           "dense_equivalent_mask"]
