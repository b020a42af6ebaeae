"""The Reformer (book § 4.9; Kitaev et al. 2020, "Reformer: The Efficient Transformer") with Hugging Face's
names — an HF ``ReformerModel`` / ``ReformerModelWithLMHead`` checkpoint opens here.

    from models.reformer import ReformerConfig, ReformerModelWithLMHead
    model = ReformerModelWithLMHead(ReformerConfig(attn_layers=["local", "lsh"], is_decoder=True))
    out = model(input_ids, labels=input_ids)               # out.logits (B, T, V), out.loss

Three ideas make long sequences affordable:

* **LSH attention** (``minigrad.kernels.lsh.lsh_attention``): queries = keys, hashed into buckets by random
  rotations, sorted, attended within chunks — O(T·c) instead of O(T²) — in ``"lsh"`` layers; ``"local"``
  layers attend within neighbouring chunks of the unsorted sequence.
* **Reversible layers** (``minigrad.kernels.reversible.reversible_layers``): each ``ReformerLayer`` is
  y₁ = x₁ + Attention(x₂), y₂ = x₂ + FeedForward(y₁); the backward pass reconstructs the inputs, so
  activations are not stored per layer. The encoder's output is [y₁ ; y₂] (2H wide), as HF's.
* **Chunked feed-forward** (``chunk_size_feed_forward``) and **axial position embeddings**: positions
  t = (t₀, t₁) on a P₀ × P₁ grid get the concatenation of one vector per axis, e₀[t₀] ⊕ e₁[t₁].

The rotations are drawn afresh each call from the global random stream (``minigrad.manual_seed``; an LSH
layer's ``generator`` attribute can give it its own);
``hash_seed`` in the config makes every call use the same ones (as HF — but from minigrad's generator,
not torch's: pass ``rotations=`` to use given ones, e.g. HF's). ``num_buckets=None`` follows HF's rule
(2·T/chunk_length buckets, factorised when large) per call; HF stores the first value in its config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minigrad import nn
from minigrad.kernels.lsh import bucket_factors, hash_buckets, local_attention, lsh_attention, rotation_size
from minigrad.kernels.reversible import reversible_layers, reversible_layers_reference
from minigrad.nn import init
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import cross_entropy
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.parameter import Parameter
from minigrad.nn.sparse import Embedding
from minigrad.random import Generator, _rng
from minigrad.tensor import Tensor, cat

from models.bert.functional import activation
from models.bert.modeling import ModelOutput
from models.bigbird import load_checkpoint
from models.hf_checkpoint import write_checkpoint
from models.hf_config import HFConfig

ATTENTION_LAYERS = ("lsh", "local")
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "tanh")
_IGNORED_KEYS = {"architectures", "model_type", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                 "use_cache", "bos_token_id", "eos_token_id", "output_attentions", "output_hidden_states",
                 "return_dict", "num_hidden_layers"}


@dataclass
class ReformerConfig(HFConfig):
    """HF ``ReformerConfig``'s fields and defaults (``num_hidden_layers`` = len(attn_layers))."""

    attention_head_size: int = 64
    attn_layers: tuple = ("local", "lsh", "local", "lsh", "local", "lsh")
    axial_norm_std: float = 1.0
    axial_pos_embds: bool = True
    axial_pos_shape: tuple = (64, 64)
    axial_pos_embds_dim: tuple = (64, 192)
    chunk_size_lm_head: int = 0
    chunk_size_feed_forward: int = 0
    feed_forward_size: int = 512
    hash_seed: int | None = None
    hidden_act: str = "relu"
    hidden_dropout_prob: float = 0.05
    hidden_size: int = 256
    initializer_range: float = 0.02
    is_decoder: bool = False  # causal attention
    layer_norm_eps: float = 1e-12
    local_num_chunks_before: int = 1
    local_num_chunks_after: int = 0
    local_attention_probs_dropout_prob: float = 0.05
    local_attn_chunk_length: int = 64
    lsh_attn_chunk_length: int = 64
    lsh_attention_probs_dropout_prob: float = 0.0
    lsh_num_chunks_before: int = 1
    lsh_num_chunks_after: int = 0
    max_position_embeddings: int = 4096
    num_attention_heads: int = 12
    num_buckets: int | list | None = None
    num_hashes: int = 1
    vocab_size: int = 320
    pad_token_id: int = 0
    tie_word_embeddings: bool = False
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # other HF keys, kept for round trips

    model_type = "reformer"
    ignored_keys = _IGNORED_KEYS

    def __post_init__(self):
        fn = "ReformerConfig"
        self.attn_layers = tuple(self.attn_layers)
        self.axial_pos_shape, self.axial_pos_embds_dim = tuple(self.axial_pos_shape), tuple(self.axial_pos_embds_dim)
        if not self.attn_layers or any(t not in ATTENTION_LAYERS for t in self.attn_layers):
            raise ValueError(f"{fn}: attn_layers must be a non-empty list of {ATTENTION_LAYERS}, got {self.attn_layers!r}")
        ints = {"attention_head_size": 1, "feed_forward_size": 1, "hidden_size": 1, "local_num_chunks_before": 0,
                "local_num_chunks_after": 0, "local_attn_chunk_length": 1, "lsh_attn_chunk_length": 1,
                "lsh_num_chunks_before": 0, "lsh_num_chunks_after": 0, "max_position_embeddings": 1,
                "num_attention_heads": 1, "num_hashes": 1, "vocab_size": 1, "chunk_size_lm_head": 0,
                "chunk_size_feed_forward": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
        if self.num_buckets is not None:
            try:
                bucket_factors(self.num_buckets)
            except ValueError as err:
                raise ValueError(f"{fn}: {err}") from None
            if not isinstance(self.num_buckets, int):
                self.num_buckets = list(self.num_buckets)
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"{fn}: hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "local_attention_probs_dropout_prob", "lsh_attention_probs_dropout_prob"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"{fn}: {name} must be a probability in [0, 1), got {p!r}")
        if self.axial_pos_embds:
            if len(self.axial_pos_shape) != 2 or len(self.axial_pos_embds_dim) != 2:
                raise ValueError(f"{fn}: axial position embeddings need 2 axes (as HF's evaluation mode), got "
                                 f"axial_pos_shape={self.axial_pos_shape}, axial_pos_embds_dim={self.axial_pos_embds_dim}")
            if sum(self.axial_pos_embds_dim) != self.hidden_size:
                raise ValueError(f"{fn}: axial_pos_embds_dim {self.axial_pos_embds_dim} must add up to hidden_size="
                                 f"{self.hidden_size}")
        if self.tie_word_embeddings:
            raise ValueError(f"{fn}: tie_word_embeddings=True cannot work: the LM head reads the 2·hidden_size "
                             "concatenated streams, the embeddings are hidden_size wide")

    @property
    def num_hidden_layers(self) -> int:
        return len(self.attn_layers)

    @property
    def chunk_length_multiple(self) -> int:
        """Sequence lengths must be multiples of this (the lcm of the chunk lengths in use; HF's rule)."""
        return math.lcm(*(self._chunk(t) for t in set(self.attn_layers)))

    @property
    def min_chunk_length(self) -> int:
        return min(self._chunk(t) for t in set(self.attn_layers))

    def _chunk(self, kind: str) -> int:
        return self.lsh_attn_chunk_length if kind == "lsh" else self.local_attn_chunk_length

    def _to_hf(self, out: dict) -> dict:
        for key in ("attn_layers", "axial_pos_shape", "axial_pos_embds_dim"):
            out[key] = list(out[key])
        out["num_hidden_layers"] = self.num_hidden_layers
        return out


def default_num_buckets(seq_len: int, chunk_length: int, max_position_embeddings: int):
    """HF's choice when ``num_buckets`` is None: the power of 2 nearest below 2·T/c (about two buckets per
    chunk, Reformer § 2), factorised into two when above 2·max(√(max_positions/c), c)."""
    power = (2 * (seq_len // chunk_length)).bit_length() - 1
    limit = 2 * max(int((max_position_embeddings // chunk_length) ** 0.5), chunk_length)
    return 2 ** power if 2 ** power <= limit else [2 ** (power // 2), 2 ** (power - power // 2)]


# ----------------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------------
class AxialWeights(nn.Module):
    """HF's ``weights`` ParameterList: ``weights.0`` (P₀, 1, d₀) and ``weights.1`` (1, P₁, d₁)."""

    def __init__(self, shape: tuple, dims: tuple, dtype=None):
        super().__init__()
        for axis, (size, dim) in enumerate(zip(shape, dims)):
            grid = [1, 1]
            grid[axis] = size
            self.register_parameter(str(axis), Parameter(np.ones(tuple(grid) + (dim,), dtype=dtype or np.float32)))

    def __getitem__(self, axis: int) -> Parameter:
        return self._parameters[str(axis)]


class AxialPositionEmbeddings(nn.Module):
    """Position t = t₀·P₁ + t₁ on the P₀ × P₁ grid gets e₀[t₀] ⊕ e₁[t₁] (Reformer § 5 "axial"): P₀·d₀ + P₁·d₁
    parameters instead of P₀·P₁·H. In training, with dropout, whole (batch, t₁) columns are dropped (HF)."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.shape, self.dims = config.axial_pos_shape, config.axial_pos_embds_dim
        self.weights = AxialWeights(self.shape, self.dims, dtype)
        self.p = config.hidden_dropout_prob

    def forward(self, positions: np.ndarray) -> Tensor:
        P0, P1 = self.shape
        B, T = positions.shape
        if self.training and T != P0 * P1:
            raise ValueError(f"AxialPositionEmbeddings: in training the sequence length must equal the axial grid "
                             f"axial_pos_shape={self.shape} (P₀·P₁ = {P0 * P1}), got {T}; pad the input or change "
                             "axial_pos_shape")
        if int(positions.max()) >= P0 * P1:
            raise ValueError(f"AxialPositionEmbeddings: position {int(positions.max())} is outside the axial grid "
                             f"axial_pos_shape={self.shape} ({P0 * P1} positions)")
        rows = int(positions.max()) // P1 + 1  # grid rows in use (HF cuts to them)
        w0, w1 = self.weights[0][:rows], self.weights[1]  # (rows, 1, d₀), (1, P₁, d₁)
        grid = cat([w0.expand(rows, P1, self.dims[0]), w1.expand(rows, P1, self.dims[1])], dim=-1)  # (rows, P₁, H)
        if self.training and self.p > 0:  # dropout2d over (batch, t₁) columns, as HF
            keep = (_rng(None).random((B, 1, P1, 1)) >= self.p).astype(grid.dtype) / (1.0 - self.p)
            return (grid[None] * keep).reshape(B, rows * P1, -1)  # (B, T, H)
        return grid.reshape(rows * P1, -1)[positions]  # (B, T, H)


class PositionEmbeddings(nn.Module):
    """Learned absolute positions (``axial_pos_embds=False``), dropout applied to them (HF)."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.embedding = Embedding(config.max_position_embeddings, config.hidden_size, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, positions: np.ndarray) -> Tensor:
        return self.dropout(self.embedding(positions))


class ReformerEmbeddings(nn.Module):
    """x = Dropout(W_tok[ids]) + position encoding (no LayerNorm, no segments)."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size, dtype=dtype)
        self.position_embeddings = (AxialPositionEmbeddings(config, dtype) if config.axial_pos_embds
                                    else PositionEmbeddings(config, dtype))
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.max_position_embeddings = config.max_position_embeddings

    def forward(self, input_ids: np.ndarray, positions: np.ndarray) -> Tensor:
        if positions.shape[-1] > self.max_position_embeddings:
            raise ValueError(f"ReformerEmbeddings: sequence length {positions.shape[-1]} exceeds "
                             f"max_position_embeddings={self.max_position_embeddings}")
        return self.dropout(self.word_embeddings(input_ids)) + self.position_embeddings(positions)  # (B, T, H)


# ----------------------------------------------------------------------------------------------
# Attention (the F of a reversible layer)
# ----------------------------------------------------------------------------------------------
def _split_heads(x: Tensor, heads: int, size: int) -> Tensor:
    B, T, _ = x.shape
    return x.reshape(B, T, heads, size).transpose(1, 2)  # (B, A, T, d)


def _merge_heads(x: Tensor) -> Tensor:
    B, A, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, A * d)  # (B, T, A·d)


class LSHSelfAttention(nn.Module):
    """Shared-QK LSH attention: ``query_key`` and ``value`` projections (no bias), hashing, ``lsh_attention``."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = config.num_attention_heads, config.attention_head_size
        width = self.num_attention_heads * self.attention_head_size
        self.query_key = nn.Linear(config.hidden_size, width, bias=False, dtype=dtype)
        self.value = nn.Linear(config.hidden_size, width, bias=False, dtype=dtype)
        self.chunk_length, self.num_hashes, self.num_buckets = (config.lsh_attn_chunk_length, config.num_hashes,
                                                                config.num_buckets)
        self.before, self.after = config.lsh_num_chunks_before, config.lsh_num_chunks_after
        self.causal, self.p, self.hash_seed = config.is_decoder, config.lsh_attention_probs_dropout_prob, config.hash_seed
        self.max_position_embeddings = config.max_position_embeddings
        self.generator: Generator | None = None  # the rotations' stream; None: the global one (minigrad.manual_seed)

    def rotations(self, num_buckets, num_hashes: int, dtype) -> np.ndarray:
        """Random rotations R (A, d, n_hashes, Σ b_i/2) ~ N(0, 1); the same every call when ``hash_seed`` is set."""
        gen = Generator(self.hash_seed) if self.hash_seed is not None else self.generator
        shape = (self.num_attention_heads, self.attention_head_size, num_hashes, rotation_size(num_buckets))
        return _rng(gen).standard_normal(shape).astype(dtype)

    def forward(self, hidden: Tensor, key_mask, memo: dict, rotations=None, num_hashes=None) -> Tensor:
        A, d = self.num_attention_heads, self.attention_head_size
        qk = _split_heads(self.query_key(hidden), A, d)  # (B, A, T, d)
        v = _split_heads(self.value(hidden), A, d)
        T = hidden.shape[1]
        buckets = None
        if T > self.chunk_length:  # else: one chunk, plain attention over all T (HF)
            buckets = memo.get("buckets")  # the reversible backward re-uses the forward pass's buckets
            if buckets is None:
                n = num_hashes or self.num_hashes
                nb = self.num_buckets or default_num_buckets(T, self.chunk_length, self.max_position_embeddings)
                R = self.rotations(nb, n, qk.dtype) if rotations is None else np.asarray(rotations, dtype=qk.dtype)
                buckets = hash_buckets(qk.data, R, nb, key_mask)  # (B, A, n_hashes, T)
                memo["buckets"] = buckets
        out = lsh_attention(qk, v, buckets, self.chunk_length, self.before, self.after, self.causal, key_mask,
                            self.p if self.training else 0.0)  # (B, A, T, d)
        return _merge_heads(out)


class LocalSelfAttention(nn.Module):
    """Chunked local attention: ``query``, ``key``, ``value`` projections (no bias), ``local_attention``."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = config.num_attention_heads, config.attention_head_size
        width = self.num_attention_heads * self.attention_head_size
        self.query, self.key, self.value = (nn.Linear(config.hidden_size, width, bias=False, dtype=dtype)
                                            for _ in range(3))
        self.chunk_length = config.local_attn_chunk_length
        self.before, self.after = config.local_num_chunks_before, config.local_num_chunks_after
        self.causal, self.p = config.is_decoder, config.local_attention_probs_dropout_prob

    def forward(self, hidden: Tensor, key_mask, memo: dict, rotations=None, num_hashes=None) -> Tensor:
        A, d = self.num_attention_heads, self.attention_head_size
        q, k, v = (_split_heads(f(hidden), A, d) for f in (self.query, self.key, self.value))  # (B, A, T, d)
        out = local_attention(q, k, v, self.chunk_length, self.before, self.after, self.causal, key_mask,
                              self.p if self.training else 0.0)
        return _merge_heads(out)


class ReformerSelfOutput(nn.Module):
    """Dropout(context W_Oᵀ) — no bias, no residual here (the reversible layer adds it)."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.num_attention_heads * config.attention_head_size, config.hidden_size,
                               bias=False, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, context: Tensor) -> Tensor:
        return self.dropout(self.dense(context))


class ReformerAttention(nn.Module):
    """F(x) = Output(SelfAttention(LayerNorm(x))) — pre-LayerNorm; LSH or local by ``attn_layers``."""

    def __init__(self, config: ReformerConfig, kind: str, dtype=None):
        super().__init__()
        self.layer_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        attention = LSHSelfAttention if kind == "lsh" else LocalSelfAttention
        self.self_attention = attention(config, dtype)
        self.output = ReformerSelfOutput(config, dtype)

    def forward(self, x: Tensor, key_mask, memo: dict, rotations=None, num_hashes=None) -> Tensor:
        return self.output(self.self_attention(self.layer_norm(x), key_mask, memo, rotations, num_hashes))


# ----------------------------------------------------------------------------------------------
# Feed-forward (the G of a reversible layer)
# ----------------------------------------------------------------------------------------------
class ReformerFeedForwardDense(nn.Module):
    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.feed_forward_size, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.hidden_act = config.hidden_act

    def forward(self, x: Tensor) -> Tensor:
        return activation(self.dropout(self.dense(x)), self.hidden_act)  # HF: dropout before the activation


class ReformerFeedForwardOutput(nn.Module):
    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.feed_forward_size, config.hidden_size, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h: Tensor) -> Tensor:
        return self.dropout(self.dense(h))


class ChunkReformerFeedForward(nn.Module):
    """G(x) = W₂ act(W₁ LayerNorm(x) + b₁) + b₂, position-wise, so it can run ``chunk_size_feed_forward``
    positions at a time: the (B, T, feed_forward_size) activation never exists at once (Reformer § 3)."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.layer_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dense = ReformerFeedForwardDense(config, dtype)
        self.output = ReformerFeedForwardOutput(config, dtype)
        self.chunk_size = config.chunk_size_feed_forward

    def forward_chunk(self, x: Tensor) -> Tensor:
        return self.output(self.dense(self.layer_norm(x)))

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[1]
        if not self.chunk_size or self.chunk_size >= T:
            return self.forward_chunk(x)
        if T % self.chunk_size:
            raise ValueError(f"ChunkReformerFeedForward: seq_len {T} is not a multiple of chunk_size_feed_forward="
                             f"{self.chunk_size} (as HF's apply_chunking_to_forward)")
        return cat([self.forward_chunk(x[:, i:i + self.chunk_size]) for i in range(0, T, self.chunk_size)], dim=1)


class ReformerLayer(nn.Module):
    """The reversible layer: y₁ = x₁ + Attention(x₂), y₂ = x₂ + FeedForward(y₁) (run by the encoder)."""

    def __init__(self, config: ReformerConfig, kind: str, dtype=None):
        super().__init__()
        self.attention = ReformerAttention(config, kind, dtype)
        self.feed_forward = ChunkReformerFeedForward(config, dtype)


class ReformerEncoder(nn.Module):
    """The reversible stack on [x ; x], then LayerNorm over the 2H concatenated streams and dropout."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.layers = nn.ModuleList([ReformerLayer(config, kind, dtype) for kind in config.attn_layers])
        self.layer_norm = LayerNorm(2 * config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.reversible = True  # False: the same stack keeping every activation (to measure what reversing saves)

    def steps(self, key_mask, rotations=None, num_hashes=None, record: list | None = None):
        """One (F, G) pair per layer for ``reversible_layers``; ``record`` collects each layer's x₂ input."""
        per_layer = rotations if isinstance(rotations, (list, tuple)) else [rotations] * len(self.layers)
        if len(per_layer) != len(self.layers):
            raise ValueError(f"ReformerEncoder: rotations must be one array or one per layer ({len(self.layers)}), "
                             f"got {len(per_layer)}")
        steps = []
        for layer, R in zip(self.layers, per_layer):
            def f(x, memo, layer=layer, R=R):
                if record is not None and not memo.get("recorded"):  # the forward pass, not a recomputation
                    record.append(x)
                    memo["recorded"] = True
                return layer.attention(x, key_mask, memo, R, num_hashes)
            steps.append((f, lambda x, memo, layer=layer: layer.feed_forward(x)))
        return steps

    def forward(self, hidden: Tensor, key_mask, rotations=None, num_hashes=None, output_hidden_states=False):
        record = [] if output_hidden_states else None
        steps = self.steps(key_mask, rotations, num_hashes, record)
        gens = [m.generator for m in self.layers.modules() if isinstance(getattr(m, "generator", None), Generator)]
        if self.reversible:
            y = reversible_layers(hidden, hidden, steps, list(self.layers.parameters()), gens)  # (B, T, 2H)
        else:
            y = reversible_layers_reference(hidden, hidden, steps, gens)
        if record is not None:
            record.append(y[..., y.shape[-1] // 2:])
        return self.dropout(self.layer_norm(y)), record


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class ReformerPreTrainedModel(nn.Module):
    """HF's initialisation and checkpoints by name (``reformer.`` prefix under a head)."""

    base_model_prefix = "reformer"
    head_roots: tuple = ()
    config_class = ReformerConfig

    def __init__(self, config: ReformerConfig):
        super().__init__()
        if not isinstance(config, ReformerConfig):
            raise TypeError(f"{type(self).__name__}: config must be a ReformerConfig, got {type(config).__name__}")
        self.config = config

    def init_weights(self, generator=None):
        """HF's: Linear and Embedding weights ~ N(0, initializer_range²), biases 0, LayerNorm 1/0, axial
        weights ~ N(0, axial_norm_std²)."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init.normal_(module.weight, 0.0, std, generator=generator)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, Embedding):
                init.normal_(module.weight, 0.0, std, generator=generator)
            elif isinstance(module, LayerNorm):
                module.reset_parameters()
            elif isinstance(module, AxialWeights):
                for p in module.parameters():
                    init.normal_(p, 0.0, self.config.axial_norm_std, generator=generator)
        return self

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    @classmethod
    def from_pretrained(cls, directory, dtype=None, **config_overrides):
        """Load ``config.json`` + ``model.safetensors`` written by HF ``save_pretrained`` (or ours)."""
        return load_checkpoint(cls, directory, dtype=dtype, **config_overrides)

    def save_pretrained(self, directory) -> None:
        """Write ``config.json`` + ``model.safetensors`` that HF ``from_pretrained`` loads (atomic)."""
        state = self.state_dict()
        config = self.config.to_dict()
        config.update(architectures=[type(self).__name__], dtype=str(next(iter(state.values())).dtype))
        write_checkpoint(directory, state, config)


class ReformerModel(ReformerPreTrainedModel):
    """Embeddings and the reversible encoder → ``last_hidden_state`` (B, T, 2H).

    In evaluation an input whose length is not a multiple of ``config.chunk_length_multiple`` is padded
    (``pad_token_id``, mask 0) and the output cut back, as HF; in training that is an error (HF's rule).
    ``rotations``: LSH rotations for every LSH layer (one array) or per layer (a list); ``num_hashes``
    overrides the config's."""

    def __init__(self, config: ReformerConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.embeddings = ReformerEmbeddings(config, dtype)
        self.encoder = ReformerEncoder(config, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, position_ids=None, num_hashes=None, rotations=None,
                output_hidden_states: bool = False) -> ModelOutput:
        owner = type(self).__name__
        ids, key_mask = _check_ids(self.config, input_ids, attention_mask, owner)
        B, T = ids.shape
        positions = np.broadcast_to(np.arange(T), (B, T)) if position_ids is None else _positions(position_ids, ids, owner)
        multiple = self.config.chunk_length_multiple
        pad = -T % multiple if T > self.config.min_chunk_length else 0
        if pad:
            if self.training:
                raise ValueError(f"{owner}: in training the sequence length must be a multiple of the chunk lengths' "
                                 f"lcm {multiple}, got {T}; pad the input to {T + pad}")
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=self.config.pad_token_id)
            key_mask = np.pad(np.ones((B, T), bool) if key_mask is None else key_mask, ((0, 0), (0, pad)))
            positions = np.concatenate([positions, np.broadcast_to(np.arange(T, T + pad), (B, pad))], axis=1)
        hidden = self.embeddings(ids, positions)  # (B, T, H)
        hidden, record = self.encoder(hidden, key_mask, rotations, num_hashes, output_hidden_states)
        out = ModelOutput(last_hidden_state=hidden[:, :T] if pad else hidden)  # (B, T, 2H)
        if output_hidden_states:
            out["hidden_states"] = tuple(h[:, :T] if pad else h for h in record)
        return out


class ReformerOnlyLMHead(nn.Module):
    """logits = [y₁ ; y₂] W_decᵀ + b (2H → V). HF keeps a second, unused ``bias`` (kept for its checkpoints)."""

    def __init__(self, config: ReformerConfig, dtype=None):
        super().__init__()
        self.decoder = nn.Linear(2 * config.hidden_size, config.vocab_size, dtype=dtype)
        self.bias = Parameter(np.zeros(config.vocab_size, dtype=self.decoder.weight.dtype))
        self.chunk_size = config.chunk_size_lm_head

    def forward(self, hidden: Tensor) -> Tensor:
        T = hidden.shape[1]
        if not self.chunk_size or self.chunk_size >= T or T % self.chunk_size:
            return self.decoder(hidden)
        return cat([self.decoder(hidden[:, i:i + self.chunk_size]) for i in range(0, T, self.chunk_size)], dim=1)


class ReformerModelWithLMHead(ReformerPreTrainedModel):
    """The causal Reformer language model (``is_decoder=True``): ``logits`` (B, T, V) and, with ``labels``,
    the next-token loss  −mean_t log p(x_{t+1} | x_{≤t})  over labels ≠ −100 (HF's shift)."""

    head_roots = ("lm_head",)

    def __init__(self, config: ReformerConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        if not config.is_decoder:
            raise ValueError("ReformerModelWithLMHead: config.is_decoder must be True (a causal language model)")
        if ("local" in config.attn_layers and config.local_num_chunks_after) or \
                ("lsh" in config.attn_layers and config.lsh_num_chunks_after):
            raise ValueError("ReformerModelWithLMHead: causal attention needs local_num_chunks_after = "
                             "lsh_num_chunks_after = 0 (a chunk must not see later chunks)")
        self.reformer = ReformerModel(config, dtype=dtype, generator=generator, initialize=False)
        self.lm_head = ReformerOnlyLMHead(config, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, position_ids=None, labels=None, num_hashes=None,
                rotations=None, output_hidden_states: bool = False) -> ModelOutput:
        out = self.reformer(input_ids, attention_mask, position_ids, num_hashes, rotations, output_hidden_states)
        logits = self.lm_head(out["last_hidden_state"])  # (B, T, V)
        out["logits"] = logits
        if labels is not None:
            labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
            if labels.shape != logits.shape[:2]:
                raise ValueError(f"ReformerModelWithLMHead: labels must have shape (batch, seq_len)="
                                 f"{logits.shape[:2]}, got {labels.shape}")
            V = logits.shape[-1]
            out["loss"] = cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))
        return out


def _check_ids(config: ReformerConfig, input_ids, attention_mask, owner: str):
    ids = np.asarray(input_ids.data if isinstance(input_ids, Tensor) else input_ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] == 0:
        raise ValueError(f"{owner}: input_ids must be integers of shape (batch, seq_len), got {ids.dtype} {ids.shape}")
    if ids.min() < 0 or ids.max() >= config.vocab_size:
        raise ValueError(f"{owner}: input_ids must lie in [0, vocab_size={config.vocab_size}), got min {ids.min()} "
                         f"and max {ids.max()}")
    if attention_mask is None:
        return ids, None
    mask = np.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
    if mask.shape != ids.shape or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"{owner}: attention_mask must hold 0 (padding) and 1 (token) in the shape of input_ids "
                         f"{ids.shape}, got shape {mask.shape}")
    return ids, mask.astype(bool)


def _positions(position_ids, ids, owner: str) -> np.ndarray:
    pos = np.asarray(position_ids.data if isinstance(position_ids, Tensor) else position_ids)
    pos = np.broadcast_to(pos, ids.shape) if pos.ndim == 1 else pos
    if pos.shape != ids.shape or pos.dtype.kind not in "iu" or pos.min() < 0:
        raise ValueError(f"{owner}: position_ids must be non-negative integers of shape {ids.shape}, got "
                         f"{pos.dtype} {pos.shape}")
    return pos


__all__ = ["AxialPositionEmbeddings", "ChunkReformerFeedForward", "LSHSelfAttention", "LocalSelfAttention",
           "ReformerAttention", "ReformerConfig", "ReformerEncoder", "ReformerLayer", "ReformerModel",
           "ReformerModelWithLMHead", "default_num_buckets"]
