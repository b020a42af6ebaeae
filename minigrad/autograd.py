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

from minigrad.function import Function, _set_grad_enabled
from minigrad.ops import sum_to_array
from minigrad.tensor import Tensor

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


def _input_grads(node: Function, g, create_graph: bool):
    """The chain rule at one node: (input, gradient) for each input that needs one, each gradient
    summed back to its input's shape (this undoes broadcasting, once, for every op)."""
    in_grads = node.backward(g)
    if type(in_grads) is not tuple:
        in_grads = (in_grads,)
    for inp, ig, need in zip(node.inputs, in_grads, node.needs_input_grad):
        if ig is None or not need:
            continue
        if ig.shape != inp.data.shape:
            ig = ig.sum_to(inp.shape) if create_graph else sum_to_array(ig, inp.data.shape)
        yield inp, ig


def _add(sums: dict, key, g) -> None:
    """sums[key] += g, out of place (g may be an array someone else holds)."""
    sums[key] = sums[key] + g if key in sums else g


def _start(outputs, root_grads) -> tuple[dict, dict]:
    """(pending, leaf_grads): the output gradients sorted into the nodes that made the outputs
    and the outputs that are themselves leaves."""
    pending: dict[Function, object] = {}  # node -> gradient of its output, summed so far
    leaf_grads: dict[Tensor, object] = {}
    for out, g in zip(outputs, root_grads):
        if out.grad_fn is None:
            _add(leaf_grads, out, g)
        else:
            _add(pending, out.grad_fn, g)
    return pending, leaf_grads


def _retain(node: Function, g) -> None:
    for ref in node.retainers:
        t = ref()
        if t is not None:
            arr = _array(g)
            t.grad = arr.copy() if t.grad is None else t.grad + arr


def _array(g) -> np.ndarray:
    return g.data if isinstance(g, Tensor) else g


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
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of every leaf they depend on.

    Each node, in reverse topological order, receives the sum of the gradients its output got
    from later nodes, applies its chain rule, and passes the results on; gradients flow as NumPy
    arrays. Nodes release what they saved unless ``retain_graph``."""
    tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    if isinstance(grad_tensors, (Tensor, np.ndarray)):
        grad_tensors = (grad_tensors,)
    root_grads = _root_grads(tensors, grad_tensors, "backward")
    pending, leaf_grads = _start(tensors, root_grads)
    leaf_grads = {leaf: g for leaf, g in leaf_grads.items() if leaf.requires_grad}
    previous = _set_grad_enabled(False)  # backward rules run on arrays
    try:
        for node in reversed(_topological_order(list(pending))):
            g = pending.pop(node)
            if node.retainers:
                _retain(node, g)
            for inp, ig in _input_grads(node, g, create_graph=False):
                if inp.grad_fn is not None:
                    _add(pending, inp.grad_fn, ig)
                elif inp.requires_grad:
                    _add(leaf_grads, inp, ig)
            if not retain_graph:
                node.release()
    finally:
        _set_grad_enabled(previous)
    _accumulate_into_leaves(leaf_grads, {id(g) for g in root_grads})


def _masked_input_grads(node: Function, g, mask: tuple, create_graph: bool) -> list:
    """``_input_grads`` with the node told (``needs_input_grad``) that only ``mask``'s inputs are needed."""
    needs = node.needs_input_grad
    node.needs_input_grad = mask
    try:
        return list(_input_grads(node, g, create_graph))
    finally:
        node.needs_input_grad = needs


def _leading_to(order: Sequence[Function], wanted_nodes, wanted_leaves) -> dict[Function, tuple]:
    """The nodes of ``order`` (inputs first) from which a wanted input is reached walking back
    towards the leaves, each with the mask of its inputs that lead there — what ``grad`` must
    run. Without it, the inner gradients of an unrolled loop (MAML) would each walk back through
    every earlier step's graph, work that grows with the step and is all thrown away."""
    useful: dict[Function, tuple] = {}
    for node in order:
        mask = tuple(need and (t in wanted_leaves if t.grad_fn is None else t.grad_fn in useful)
                     for t, need in zip(node.inputs, node.needs_input_grad))
        if any(mask) or node in wanted_nodes:
            useful[node] = mask
    return useful


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool = False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated), with the
    meaning of ``torch.autograd.grad``. With ``create_graph=True`` the backward rules run with
    graph recording on, on Tensors, so the results can be differentiated again (Hessian-vector
    products, second-order MAML). Nothing touches any ``.grad``."""
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
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
    root_grads = _root_grads(outputs, grad_outputs, "grad")
    if create_graph:
        root_grads = [Tensor._wrap(g) for g in root_grads]
    pending, leaf_grads = _start(outputs, root_grads)
    # a non-leaf input's gradient is its node's output gradient once every later node has added to it
    wanted_nodes: dict[Function, list[Tensor]] = {}
    for t in inputs:
        if t.grad_fn is not None:
            wanted_nodes.setdefault(t.grad_fn, []).append(t)
    wanted_leaves = {t for t in inputs if t.grad_fn is None}
    found: dict[Tensor, object] = {t: g for t, g in leaf_grads.items() if t in wanted_leaves}
    order = _topological_order(list(pending))
    useful = _leading_to(order, wanted_nodes, wanted_leaves)
    previous = _set_grad_enabled(create_graph)
    try:
        for node in reversed(order):
            g = pending.pop(node, None)
            mask = useful.get(node)
            if mask is not None and g is not None:
                for t in wanted_nodes.get(node, ()):
                    found[t] = g
                if any(mask):  # only the inputs on a path to a wanted input: the rest would be dropped
                    for inp, ig in _masked_input_grads(node, g, mask, create_graph):
                        if inp.grad_fn is not None:
                            _add(pending, inp.grad_fn, ig)
                        else:  # a wanted leaf: the mask lets no other leaf through
                            _add(found, inp, ig)
            if not retain_graph:
                node.release()
    finally:
        _set_grad_enabled(previous)
    result = []
    for i, t in enumerate(inputs):
        g = found.get(t)
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not isinstance(g, Tensor):
            g = Tensor._wrap(g)
        result.append(g)
    return tuple(result)
