"""Reverse-mode differentiation over the graph of `Function` nodes.

    backward: visit nodes from the output back to the leaves (reverse topological order);
              each node turns the gradient of its output into gradients of its inputs
              (chain rule), which are summed where a tensor is used more than once.

The order is found with an explicit stack, not recursion, so a 20,000-op chain (a long RNN
unroll) does not hit Python's recursion limit. With ``create_graph=True`` the backward rules run
with graph recording on, so the returned gradients can be differentiated again.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from minigrad.ops import sum_to_array
from minigrad.tensor import Function, Tensor, _set_grad_enabled

_FREED = (
    "backward through a graph that has already been freed: a node's saved values are released "
    "after backward; pass retain_graph=True to the first backward (or grad) call to keep them"
)


def _topological_order(roots: Sequence[Function]) -> list[Function]:
    """Nodes reachable from ``roots``, every node after all nodes it depends on.

    Depth-first with an explicit stack of (node, iterator over its inputs): a node is emitted
    once all its inputs' nodes have been, without recursion."""
    order: list[Function] = []
    visited: set[Function] = set()
    for root in roots:
        if root in visited:
            continue
        if root.inputs is None:
            raise RuntimeError(_FREED)
        visited.add(root)
        stack = [(root, iter(root.inputs))]
        while stack:
            node, inputs = stack[-1]
            for t in inputs:
                parent = t.grad_fn
                if parent is not None and parent not in visited:
                    if parent.inputs is None:
                        raise RuntimeError(_FREED)
                    visited.add(parent)
                    stack.append((parent, iter(parent.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _root_grads(outputs: Sequence[Tensor], grads, fn_name: str) -> list[np.ndarray]:
    if grads is None:
        grads = [None] * len(outputs)
    if len(grads) != len(outputs):
        raise ValueError(f"{fn_name}: got {len(outputs)} outputs but {len(grads)} gradients")
    result = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if not isinstance(out, Tensor):
            raise TypeError(f"{fn_name}: output {i} is a {type(out).__name__}, not a Tensor")
        if not out.requires_grad:
            raise RuntimeError(
                f"{fn_name}: output {i} does not require grad and has no grad_fn "
                "(was it computed inside no_grad(), or from tensors without requires_grad=True?)"
            )
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"{fn_name}: grad can be implicitly created only for scalar outputs; "
                    f"output {i} has shape {out.shape} — pass a gradient of that shape"
                )
            g = np.ones(out.shape, dtype=out.dtype)
        else:
            g = np.asarray(g.data if isinstance(g, Tensor) else g, dtype=out.dtype)
            if g.shape != out.shape:
                raise ValueError(f"{fn_name}: gradient {i} has shape {g.shape}, output has shape {out.shape}")
        result.append(g)
    return result


def _run(outputs, grad_outputs, retain_graph, create_graph, capture, fn_name):
    """The backward pass. ``capture`` maps id(input tensor) -> tensor for ``grad``; with
    ``capture=None`` the gradients accumulate into the leaves' ``.grad`` instead.

    Gradients flow as NumPy arrays, or as Tensors when ``create_graph`` (see ``Function``)."""
    root_arrays = _root_grads(outputs, grad_outputs, fn_name)
    root_grads = [Tensor._wrap(g) for g in root_arrays] if create_graph else root_arrays
    captured: dict[int, object] = {}  # grad(): id(input) -> its gradient
    leaves: dict[Tensor, object] = {}  # backward(): leaf -> its gradient, summed out of place
    pending: dict[Function, object] = {}  # node -> gradient of its output, summed so far
    for out, g in zip(outputs, root_grads):
        if out.grad_fn is None:  # an output that is itself a leaf
            _collect_leaf(out, g, capture, captured, leaves)
        else:
            node = out.grad_fn
            pending[node] = pending[node] + g if node in pending else g
    order = _topological_order(list(pending))
    capture_nodes: dict[Function, list[Tensor]] = {}  # non-leaf inputs of grad()
    for t in (capture or {}).values():
        if t.grad_fn is not None:
            capture_nodes.setdefault(t.grad_fn, []).append(t)

    previous = _set_grad_enabled(create_graph)
    try:
        for node in reversed(order):
            g = pending.pop(node, None)
            if g is None:
                continue
            if node.retainers:
                _retain(node, g)
            if capture_nodes and node in capture_nodes:
                for t in capture_nodes[node]:
                    captured[id(t)] = g
            in_grads = node.backward(g)
            if type(in_grads) is not tuple:
                in_grads = (in_grads,)
            for inp, ig, need in zip(node.inputs, in_grads, node.needs_input_grad):
                if ig is None or not need:
                    continue
                if ig.shape != inp.data.shape:
                    ig = ig.sum_to(inp.shape) if create_graph else sum_to_array(ig, inp.data.shape)
                parent = inp.grad_fn
                if parent is None:
                    _collect_leaf(inp, ig, capture, captured, leaves)
                elif parent in pending:
                    pending[parent] = pending[parent] + ig
                else:
                    pending[parent] = ig
            if not retain_graph:
                node.release()
    finally:
        _set_grad_enabled(previous)
    _accumulate_into_leaves(leaves, {id(g) for g in root_arrays})
    return captured


def _retain(node: Function, g) -> None:
    for ref in node.retainers:
        t = ref()
        if t is not None:
            arr = _array(g)
            t.grad = arr.copy() if t.grad is None else t.grad + arr


def _array(g) -> np.ndarray:
    return g.data if isinstance(g, Tensor) else g


def _collect_leaf(leaf, g, capture, captured, leaves):
    if capture is not None:  # grad(): only the requested inputs, nothing touches .grad
        key = id(leaf)
        if key in capture:
            captured[key] = captured[key] + g if key in captured else g
    elif leaf.requires_grad:  # backward(): every leaf
        leaves[leaf] = leaves[leaf] + g if leaf in leaves else g


def _accumulate_into_leaves(leaves: dict, foreign: set[int]) -> None:
    """Add each leaf's gradient into ``leaf.grad``. A leaf must own its ``.grad`` array
    (optimizers and clip_grad_norm_ update it in place), so an array that is a view, read-only,
    the caller's own, or already given to another leaf is copied first."""
    given: set[int] = set(foreign)
    for leaf, g in leaves.items():
        arr = _array(g)
        if leaf.grad is None:
            if arr.base is not None or not arr.flags.writeable or id(arr) in given:
                arr = arr.copy()
            leaf.grad = arr
            given.add(id(arr))
        else:
            leaf.grad += arr


def backward(tensors, grad_tensors=None, retain_graph: bool = False) -> None:
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of every leaf they depend on."""
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    if isinstance(grad_tensors, (Tensor, np.ndarray)):
        grad_tensors = (grad_tensors,)
    _run(tensors, grad_tensors, retain_graph, False, None, "backward")


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool = False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated), with the
    meaning of ``torch.autograd.grad``. With ``create_graph=True`` the results are part of a new
    graph and can be differentiated again (Hessian-vector products, second-order MAML)."""
    single_out = isinstance(outputs, Tensor)
    outputs = (outputs,) if single_out else tuple(outputs)
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = (grad_outputs,)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: input {i} is a {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    capture = {id(t): t for t in inputs}
    captured = _run(outputs, grad_outputs, retain_graph, create_graph, capture, "grad")
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not isinstance(g, Tensor):
            g = Tensor._wrap(g)
        result.append(g)
    return tuple(result)
