"""minigrad.nn core: Module registration and naming, containers, state_dict, modes, repr."""
import copy
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.nn import Linear, Module, ModuleDict, ModuleList, Parameter, Sequential


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class Block(Module):
    """Two linears, a buffer and a non-persistent buffer."""

    def __init__(self, d):
        super().__init__()
        self.fc1 = Linear(d, 2 * d)
        self.fc2 = Linear(2 * d, d)
        self.register_buffer("scale", np.full((d,), 2.0, dtype=np.float32))
        self.register_buffer("mask", np.ones((d,), dtype=bool), persistent=False)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu()) * self.scale


class Net(Module):
    def __init__(self):
        super().__init__()
        self.embed = Parameter(np.zeros((5, 3), dtype=np.float32))
        self.blocks = ModuleList([Block(3), Block(3)])
        self.heads = ModuleDict({"a": Linear(3, 2), "b": Linear(3, 1, bias=False)})
        self.register_buffer("position_ids", np.arange(4))


def names(pairs):
    return [name for name, _ in pairs]


# ----------------------------------------------------------------------------------------------
# Parameter
# ----------------------------------------------------------------------------------------------
def test_parameter_is_a_grad_requiring_leaf_sharing_the_array():
    arr = np.array([1.0, 2.0], dtype=np.float32)
    p = Parameter(arr)
    assert isinstance(p, mg.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is arr
    assert not Parameter(arr, requires_grad=False).requires_grad
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    (p * p).sum().backward()
    np.testing.assert_allclose(p.grad, [2.0, 4.0])
    with pytest.raises(TypeError, match="floating-point"):
        Parameter(np.arange(3))


# ----------------------------------------------------------------------------------------------
# Registration and naming
# ----------------------------------------------------------------------------------------------
def test_named_parameters_follow_registration_order_with_dotted_names():
    net = Net()
    expected = ["embed"]
    for i in range(2):
        expected += [f"blocks.{i}.fc1.weight", f"blocks.{i}.fc1.bias", f"blocks.{i}.fc2.weight", f"blocks.{i}.fc2.bias"]
    expected += ["heads.a.weight", "heads.a.bias", "heads.b.weight"]
    assert names(net.named_parameters()) == expected
    assert [p.shape for p in net.parameters()][:3] == [(5, 3), (6, 3), (6,)]
    assert names(net.named_parameters(prefix="model")) == ["model." + n for n in expected]
    assert names(net.named_parameters(recurse=False)) == ["embed"]
    assert names(net.named_buffers()) == ["position_ids", "blocks.0.scale", "blocks.0.mask",
                                          "blocks.1.scale", "blocks.1.mask"]
    assert names(net.named_children()) == ["blocks", "heads"]
    assert names(net.named_modules()) == ["", "blocks", "blocks.0", "blocks.0.fc1", "blocks.0.fc2", "blocks.1",
                                          "blocks.1.fc1", "blocks.1.fc2", "heads", "heads.a", "heads.b"]
    assert net.get_submodule("blocks.1.fc2") is net.blocks[1].fc2
    with pytest.raises(AttributeError, match="no submodule 'fc3'"):
        net.get_submodule("blocks.1.fc3")


def test_names_match_torch_for_the_same_structure():
    torch = pytest.importorskip("torch")

    class TBlock(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(d, 2 * d), torch.nn.Linear(2 * d, d)
            self.register_buffer("scale", torch.full((d,), 2.0))
            self.register_buffer("mask", torch.ones(d, dtype=torch.bool), persistent=False)

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Parameter(torch.zeros(5, 3))
            self.blocks = torch.nn.ModuleList([TBlock(3), TBlock(3)])
            self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 2), "b": torch.nn.Linear(3, 1, bias=False)})
            self.register_buffer("position_ids", torch.arange(4))

    ours, ref = Net(), TNet()
    assert names(ours.named_parameters()) == names(ref.named_parameters())
    assert names(ours.named_buffers()) == names(ref.named_buffers())
    assert names(ours.named_modules()) == names(ref.named_modules())
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def test_shared_parameters_are_listed_once_but_saved_under_every_name():
    shared = Linear(3, 3)
    model = Sequential(shared, ReLU(), shared)
    assert names(model.named_parameters()) == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, Linear (once), ReLU
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # like torch
    # tied weight, as in GPT-2's lm_head / wte
    tied = Sequential(Linear(4, 4), Linear(4, 4))
    tied[1].weight = tied[0].weight
    assert names(tied.named_parameters()) == ["0.weight", "0.bias", "1.bias"]


def test_setattr_getattr_delattr_and_dir():
    m = Linear(2, 3)
    with pytest.raises(AttributeError) as err:
        m.foo
    assert str(err.value) == "'Linear' object has no attribute 'foo'"
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.weight = mg.zeros(3, 2)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module"):
        s = Sequential(Linear(1, 1))
        setattr(s, "0", 5)
    assert m.bias is not None and "bias" in dir(m) and "weight" in dir(m)
    m.bias = None  # a declared-but-absent parameter
    assert m.bias is None and names(m.named_parameters()) == ["weight"]
    del m.weight
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'weight'"):
        m.weight
    m.note = "plain attribute"
    assert m.note == "plain attribute" and "note" not in m.state_dict()
    # as in torch, a registered parameter name only takes a Parameter or None ...
    with pytest.raises(TypeError, match="cannot assign 'Linear' as parameter 'bias'"):
        m.bias = Linear(1, 1)
    # ... while a Parameter assigned to a child-module name replaces the child
    m.sub = Linear(1, 1)
    m.sub = Parameter(np.zeros(1, dtype=np.float32))
    assert "sub" in m._parameters and "sub" not in m._modules


def test_registration_errors_are_clear():
    class Forgot(Module):
        def __init__(self):
            self.w = Parameter(np.zeros(2, dtype=np.float32))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Forgot()
    m = Module()
    with pytest.raises(KeyError, match="empty or contain"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(KeyError, match="attribute 'forward' already exists"):
        m.register_buffer("forward", np.zeros(1))
    with pytest.raises(TypeError, match="cannot assign 'list' object to buffer 'x'"):
        m.register_buffer("x", [1, 2])
    with pytest.raises(TypeError, match="cannot assign 'Tensor' object to parameter 'p'"):
        m.register_parameter("p", mg.zeros(2))
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        m(1)


def test_buffers_are_tensors_and_only_persistent_ones_are_saved():
    b = Block(3)
    assert isinstance(b.scale, mg.Tensor) and not b.scale.requires_grad
    # own parameters and buffers first, then children (PyTorch's order)
    assert list(b.state_dict()) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    b.scale = np.full((3,), 4.0, dtype=np.float32)  # assigning to a buffer name keeps it a buffer
    assert isinstance(b.scale, mg.Tensor)
    np.testing.assert_array_equal(b.state_dict()["scale"], [4, 4, 4])


# ----------------------------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------------------------
def test_module_list_behaves_like_a_list():
    a, b, c, d = (Linear(1, 1) for _ in range(4))
    ml = ModuleList([a, b])
    ml.append(c)
    ml.insert(1, d)
    assert list(ml) == [a, d, b, c] and len(ml) == 4
    assert ml[-1] is c and ml[1] is d
    assert list(ml._modules) == ["0", "1", "2", "3"]
    sliced = ml[1:3]
    assert isinstance(sliced, ModuleList) and list(sliced) == [d, b]
    del ml[1]
    assert list(ml) == [a, b, c] and list(ml._modules) == ["0", "1", "2"]
    ml.extend([d])
    ml[0] = b
    assert list(ml) == [b, b, c, d]
    with pytest.raises(IndexError, match="index 4 is out of range for ModuleList of length 4"):
        ml[4]
    with pytest.raises(TypeError, match="indices must be integers"):
        ml["0"]
    assert names(ModuleList([a, b]).named_parameters()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_module_dict_behaves_like_a_dict():
    a, b = Linear(1, 1), Linear(1, 2)
    md = ModuleDict([("x", a), ("y", b)])
    assert list(md) == ["x", "y"] and md["y"] is b and "x" in md and len(md) == 2
    assert list(md.values()) == [a, b] and list(md.keys()) == ["x", "y"]
    assert md.pop("x") is a and list(md) == ["y"]
    md.update({"z": a})
    assert list(md.items()) == [("y", b), ("z", a)]
    with pytest.raises(KeyError, match="no key 'q'"):
        md["q"]


def test_sequential_chains_forward_and_keeps_names():
    mg.manual_seed(0)
    l1, l2 = Linear(3, 4), Linear(4, 2)
    seq = Sequential(l1, ReLU(), l2)
    x = mg.randn(5, 3)
    expected = (np.maximum(x.data @ l1.weight.data.T + l1.bias.data, 0)) @ l2.weight.data.T + l2.bias.data
    np.testing.assert_allclose(seq(x).data, expected, rtol=1e-6)
    named = Sequential(OrderedDict([("enc", l1), ("act", ReLU()), ("dec", l2)]))
    assert names(named.named_parameters()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert named[0] is l1 and named[-1] is l2 and len(named) == 3
    head = named[:2]
    assert isinstance(head, Sequential) and list(head._modules) == ["enc", "act"]
    np.testing.assert_allclose(head(x).data, np.maximum(x.data @ l1.weight.data.T + l1.bias.data, 0), rtol=1e-6)
    with pytest.raises(TypeError, match="argument 1 is a int, not a Module"):
        Sequential(l1, 3)


# ----------------------------------------------------------------------------------------------
# state_dict / load_state_dict
# ----------------------------------------------------------------------------------------------
def test_state_dict_round_trip_gives_identical_outputs():
    mg.manual_seed(1)
    src, dst = Net(), Net()
    src.embed.data[...] = 1.5
    state = src.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["blocks.0.fc1.weight"][...] = 0  # copies: editing the dict leaves the model alone
    assert np.abs(src.blocks[0].fc1.weight.data).sum() > 0
    state = src.state_dict()
    params_before = list(dst.parameters())
    result = dst.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(p is q for p, q in zip(params_before, dst.parameters()))  # identity kept
    x = mg.randn(4, 3)
    for i in range(2):
        np.testing.assert_array_equal(dst.blocks[i](x).data, src.blocks[i](x).data)
    np.testing.assert_array_equal(dst.embed.data, 1.5)


def test_load_state_dict_reports_every_problem_by_name_and_changes_nothing():
    model = Sequential(Linear(3, 4), ReLU(), Linear(4, 2))
    before = model.state_dict()
    bad = {
        "0.weight": np.zeros((3, 4), dtype=np.float32),    # transposed
        "0.bias": np.zeros(4, dtype=np.float32),            # fine, but must not be applied
        "2.weight": np.zeros((2, 4), dtype=np.float32),
        "3.weight": np.zeros((1,), dtype=np.float32),       # unexpected
        "extra": np.zeros(1),                               # unexpected
    }                                                       # missing: 2.bias
    with pytest.raises(RuntimeError) as err:
        model.load_state_dict(bad)
    msg = str(err.value)
    assert msg.startswith("Error(s) in loading state_dict for Sequential:")
    assert 'Missing key(s) in state_dict: "2.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "3.weight", "extra".' in msg
    assert ("size mismatch for 0.weight: copying a param with shape (3, 4) from checkpoint, "
            "the shape in current model is (4, 3).") in msg
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # non-strict: missing/unexpected are returned, shape mismatches still raise
    bad["0.weight"] = np.ones((4, 3))
    result = model.load_state_dict(bad, strict=False)
    assert result == (["2.bias"], ["3.weight", "extra"])
    assert result.missing_keys == ["2.bias"]
    np.testing.assert_array_equal(model[0].weight.data, 1.0)
    with pytest.raises(RuntimeError, match="size mismatch for 2.weight"):
        model.load_state_dict({"2.weight": np.zeros((4, 2))}, strict=False)
    with pytest.raises(RuntimeError, match="value for 0.bias is a str"):
        model.load_state_dict({"0.bias": "zeros"}, strict=False)
    with pytest.raises(TypeError, match="expected a dict of arrays, got list"):
        model.load_state_dict([1, 2])


def test_load_state_dict_dtype_rules():
    m = Linear(2, 2)
    m.register_buffer("ids", np.arange(3))
    state = {k: v.astype(np.float64) for k, v in m.state_dict().items() if k != "ids"}
    state["weight"][...] = 0.25
    state["ids"] = np.array([5, 6, 7], dtype=np.int32)
    m.load_state_dict(state)  # float64 -> float32 and int32 -> int64 are same-kind casts
    assert m.weight.dtype == np.float32 and m.ids.dtype == np.int64
    np.testing.assert_array_equal(m.weight.data, 0.25)
    np.testing.assert_array_equal(m.ids.data, [5, 6, 7])
    with pytest.raises(RuntimeError, match="dtype mismatch for ids: cannot cast checkpoint dtype float64 to the model's int64"):
        m.load_state_dict(dict(state, ids=np.zeros(3)))
    m.load_state_dict(state, assign=True)  # keep the checkpoint's dtype
    assert m.weight.dtype == np.float64 and m.ids.dtype == np.int32
    # Tensors are accepted as values too
    m.load_state_dict({k: mg.Tensor(v) for k, v in state.items()})


def test_loading_a_torch_state_dict_gives_identical_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    ours = Sequential(Linear(5, 7), ReLU(), Linear(7, 3))
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(mg.Tensor(x)).data, ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # and in float64, to rounding error
    ref.double()
    ours.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(ours(mg.Tensor(x64)).data, ref(torch.from_numpy(x64)).detach().numpy(), rtol=1e-12)
    assert repr(ours) == repr(ref)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.booleans())
def test_sequential_of_linears_names_and_round_trip(sizes, bias):
    layers = [Linear(a, b, bias=bias, generator=mg.Generator(i)) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    model = Sequential(*layers)
    expected = [f"{i}.{p}" for i in range(len(layers)) for p in (("weight", "bias") if bias else ("weight",))]
    assert list(model.state_dict()) == expected
    twin = Sequential(*[Linear(a, b, bias=bias, generator=mg.Generator(99)) for a, b in zip(sizes, sizes[1:])])
    twin.load_state_dict(model.state_dict())
    x = mg.randn(2, sizes[0], generator=mg.Generator(5))
    np.testing.assert_array_equal(twin(x).data, model(x).data)


# ----------------------------------------------------------------------------------------------
# Modes and bulk edits
# ----------------------------------------------------------------------------------------------
def test_train_eval_zero_grad_requires_grad_and_apply():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="mode is expected to be a bool"):
        net.train("no")

    for p in net.parameters():
        p.grad = np.ones(p.shape, dtype=p.dtype)
    grad_arrays = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(net.parameters(), grad_arrays))
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())

    visited = []
    Sequential(Linear(1, 1), Sequential(ReLU())).apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Sequential", "Sequential"]  # children first, like torch


def test_to_dtype_casts_in_place_keeping_identity():
    net = Net()
    params = list(net.parameters())
    net.blocks[0].fc1.weight.grad = np.ones((6, 3), dtype=np.float32)
    assert net.double() is net
    assert all(p is q for p, q in zip(params, net.parameters()))
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.blocks[0].fc1.weight.grad.dtype == np.float64
    assert net.blocks[0].scale.dtype == np.float64
    assert net.position_ids.dtype == np.int64 and net.blocks[0].mask.dtype == bool  # non-float untouched
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.to("cpu") is net
    with pytest.raises(TypeError, match="only floating-point dtypes"):
        net.to(np.int32)


def test_repr_is_nested_like_torch():
    torch = pytest.importorskip("torch")
    ours = Sequential(Linear(3, 4), nn.Identity(), ModuleList([Linear(4, 4, bias=False), Sequential()]))
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Identity(),
                              torch.nn.ModuleList([torch.nn.Linear(4, 4, bias=False), torch.nn.Sequential()]))
    assert repr(ours) == repr(ref)


def test_module_list_repr_folds_repeated_layers_like_torch():
    torch = pytest.importorskip("torch")
    ours = Sequential(ModuleList([Linear(2, 2), Linear(2, 2), Linear(2, 3), Linear(2, 2)]), ModuleList([]))
    ref = torch.nn.Sequential(torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2),
                                                   torch.nn.Linear(2, 3), torch.nn.Linear(2, 2)]),
                              torch.nn.ModuleList([]))
    assert repr(ours) == repr(ref)
    assert "(0-1): 2 x Linear(in_features=2, out_features=2, bias=True)" in repr(ours)


def test_repr_without_torch():
    model = Sequential(Linear(3, 4), ModuleDict({"out": Linear(4, 1, bias=False)}))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "  (1): ModuleDict(\n"
        "    (out): Linear(in_features=4, out_features=1, bias=False)\n"
        "  )\n"
        ")"
    )


def test_deepcopy_gives_independent_parameters():
    model = Sequential(Linear(2, 2))
    twin = copy.deepcopy(model)
    assert isinstance(twin[0].weight, Parameter) and twin[0].weight is not model[0].weight
    twin[0].weight.data[...] = 0
    assert np.abs(model[0].weight.data).sum() > 0


# ----------------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------------
def test_linear_forward_init_and_errors():
    lin = Linear(4, 3, generator=mg.Generator(0))
    assert lin.weight.shape == (3, 4) and lin.bias.shape == (3,) and lin.weight.dtype == np.float32
    assert np.abs(lin.weight.data).max() <= 0.5 and np.abs(lin.bias.data).max() <= 0.5  # 1/sqrt(4)
    again = Linear(4, 3, generator=mg.Generator(0))
    np.testing.assert_array_equal(again.weight.data, lin.weight.data)
    x = mg.randn(2, 5, 4)
    np.testing.assert_allclose(lin(x).data, x.data @ lin.weight.data.T + lin.bias.data, rtol=1e-6)
    y = lin(x).sum()
    y.backward()
    np.testing.assert_allclose(lin.bias.grad, np.full(3, 10.0))
    np.testing.assert_allclose(lin.weight.grad, np.tile(x.data.sum(axis=(0, 1)), (3, 1)), rtol=1e-5)
    with pytest.raises(ValueError, match=r"Linear: expected input with last dimension in_features=4, got shape \(2, 3\)"):
        lin(mg.randn(2, 3))
    assert Linear(2, 2, dtype=np.float64).weight.dtype == np.float64
    with pytest.raises(TypeError, match="dtype must be floating-point"):
        Linear(2, 2, dtype=np.int64)
    ident = nn.Identity(7, foo=1)
    assert ident(x) is x and list(ident.parameters()) == []
