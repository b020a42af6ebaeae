"""GPT (book § 4.3) and GPT-2 (§ 5.3): one decoder-only Transformer, two configs, Hugging Face's names.

    input_ids ─► token + position embeddings ─► L × Block (masked self-attention, MLP) ─► [ln_f] ─► lm_head

A language model predicts each token from the ones before it,

    P(x) = Π_t P(x_t | x_<t),      loss = −(1/N) Σ_t log P(x_{t+1} | x_≤t)     (Radford et al. 2018, eq. 1)

so the self-attention is *masked*: position t attends to positions ≤ t only, and one forward pass
scores every position of a sequence at once. GPT (2018) puts LayerNorm after each sub-block, as
the 2017 Transformer; GPT-2 (2019) moves it to each sub-block's input and adds a final one
(``config.pre_layer_norm``). Everything else is shared, so the two are one ``Block`` and one
``DecoderStack`` here.

Every attribute has HF's name — ``transformer.h.0.attn.c_attn.weight``, ``transformer.wte.weight``
— so ``state_dict()`` keys are HF's keys and one checkpoint opens in both libraries. Shapes: B
batch, T new tokens, P cached positions, S = P + T keys, C = n_embd, nh heads, hd = C / nh.
"""
from __future__ import annotations

import numpy as np

from minigrad import functional as F
from minigrad import nn
from minigrad.functional.attention import causal_mask, dropout_keep
from minigrad.kernels import attention as attention_kernel
from minigrad.kernels.attention import HeadLayout
from minigrad.nn import init
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import cross_entropy
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.parameter import Parameter
from minigrad.nn.sparse import Embedding
from minigrad.tensor import Tensor

from models.bert.functional import activation
from models.bert.modeling import ModelOutput
from models.generation import DecoderCache, generate
from models.gpt import checkpoint
from models.gpt.config import DecoderConfig, GPT2Config, OpenAIGPTConfig

IGNORE_INDEX = -100  # label of positions that are not predicted (HF / PyTorch convention)
# heads stored (B, T, nh, hd) — the c_attn output reshaped, no copy — read as (B, nh, T, hd) by the kernel
_HEADS = HeadLayout(axes=(0, 2, 1, 3))
_PACKED_QKV = HeadLayout(axes=(0, 2, 1, 3), packed=True)  # (B, T, 3, nh, hd): q, k and v in one array


class Conv1D(nn.Module):
    """HF's ``Conv1D``: a linear layer whose weight is stored (in, out), the layout of OpenAI's
    checkpoints:   y = x W + b,   W (n_in, n_out), b (n_out,)."""

    def __init__(self, n_in: int, n_out: int, dtype=None):
        super().__init__()
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.zeros((n_in, n_out), dtype=dtype))
        self.bias = Parameter(np.zeros(n_out, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.T, self.bias)  # (…, n_out); Wᵀ is a free view

    def extra_repr(self) -> str:
        return f"n_in={self.weight.shape[0]}, n_out={self.weight.shape[1]}"


# ----------------------------------------------------------------------------------------------
# One decoder block
# ----------------------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention (HF's ``GPT2Attention`` / ``Attention``):

        [Q K V] = x W_attn + b_attn,    head_i = softmax(Q_i K_iᵀ · s + M) V_i,    y = [head_1 … head_nh] W_proj + b

    M (an additive mask from ``DecoderStack``) is −∞ where key j comes after query i or is padding,
    so a token never sees the future (Radford et al. 2018 §3.1: "masked self-attention"). With a
    layer cache the keys and values of earlier positions are read from it instead of recomputed.
    """

    def __init__(self, config: DecoderConfig, layer_idx: int, dtype=None):
        super().__init__()
        C = config.n_embd
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.scale = config.attention_scale(layer_idx)
        self.c_attn = Conv1D(C, 3 * C, dtype)
        self.c_proj = Conv1D(C, C, dtype)
        self.attn_dropout = Dropout(config.attn_pdrop)
        self.resid_dropout = Dropout(config.resid_pdrop)

    def forward(self, x: Tensor, mask: Tensor | None, layer_cache=None, need_weights: bool = False):
        B, T, C = x.shape
        qkv = self.c_attn(x).reshape(B, T, 3, self.n_head, self.head_dim)  # (B, T, 3, nh, hd)
        if layer_cache is None:  # one array for q, k and v: the kernel takes it apart as views
            q, k, v, layout, S = qkv, None, None, _PACKED_QKV, T
        else:
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, nh, hd) each
            k, v = layer_cache.append(k, v, seq_axis=1, batch_axis=0)  # (B, S, nh, hd): past and new
            layout, S = _HEADS, k.shape[1]
        p = self.attn_dropout.p if self.training else 0.0
        keep = dropout_keep((B, self.n_head, T, S), p, self.attn_dropout.generator, x.dtype)
        heads = attention_kernel.attention(q, k, v, mask, self.scale, keep, layout, need_weights)
        heads, weights = heads if need_weights else (heads, None)  # (B, T, nh, hd), (B, nh, T, S)
        y = self.c_proj(heads.reshape(B, T, C))  # (B, T, C): the heads side by side, projected
        return self.resid_dropout(y), weights


class MLP(nn.Module):
    """The position-wise feed-forward network:  y = act(x W_fc + b_fc) W_proj + b_proj   (4C wide)."""

    def __init__(self, config: DecoderConfig, dtype=None):
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, config.inner_size, dtype)
        self.c_proj = Conv1D(config.inner_size, config.n_embd, dtype)
        self.hidden_act = config.hidden_act
        self.dropout = Dropout(config.resid_pdrop)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(activation(self.c_fc(x), self.hidden_act)))  # (B, T, C)


class Block(nn.Module):
    """One decoder block: masked self-attention, then the MLP, each with a residual connection.

        GPT-2 (pre-LN):   x = x + Attn(LN_1(x));   x = x + MLP(LN_2(x))      (Radford et al. 2019 §2.3)
        GPT   (post-LN):  x = LN_1(x + Attn(x));   x = LN_2(x + MLP(x))      (Radford et al. 2018 §3.1)
    """

    def __init__(self, config: DecoderConfig, layer_idx: int, dtype=None):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.pre_layer_norm = config.pre_layer_norm
        self.ln_1 = LayerNorm(config.n_embd, eps=eps, dtype=dtype)
        self.attn = CausalSelfAttention(config, layer_idx, dtype)
        self.ln_2 = LayerNorm(config.n_embd, eps=eps, dtype=dtype)
        self.mlp = MLP(config, dtype)

    def forward(self, x: Tensor, mask, layer_cache=None, need_weights: bool = False):
        if self.pre_layer_norm:
            attended, weights = self.attn(self.ln_1(x), mask, layer_cache, need_weights)
            x = x + attended
            return x + self.mlp(self.ln_2(x)), weights  # (B, T, C)
        attended, weights = self.attn(x, mask, layer_cache, need_weights)
        x = self.ln_1(x + attended)
        return self.ln_2(x + self.mlp(x)), weights  # (B, T, C)


# ----------------------------------------------------------------------------------------------
# Inputs and masks
# ----------------------------------------------------------------------------------------------
def _integers(owner: str, name: str, value) -> np.ndarray:
    arr = np.asarray(value.data if isinstance(value, Tensor) else value)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{owner}: {name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_inputs(config: DecoderConfig, owner: str, input_ids, attention_mask, position_ids, past: int):
    """Validate the integer inputs; returns (ids (B, T), mask (B, P+T) or None, positions (T,) or (B, T)).

    Default positions are P … P+T−1 (HF's forward); ``generate`` passes them from the mask for
    left-padded prompts."""
    ids = _integers(owner, "input_ids", input_ids)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"{owner}: input_ids must have shape (batch, seq_len) with seq_len >= 1, got {ids.shape}")
    B, T = ids.shape
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= config.vocab_size:
        raise ValueError(f"{owner}: input_ids must lie in [0, vocab_size={config.vocab_size}), got min {lo} and "
                         f"max {hi} — is the tokenizer's vocabulary the model's?")
    mask = None
    if attention_mask is not None:
        mask = _integers(owner, "attention_mask", attention_mask)
        if mask.shape != (B, past + T):
            raise ValueError(f"{owner}: attention_mask must have shape (batch, cached + new tokens) = "
                             f"{(B, past + T)}, got {mask.shape}")
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{owner}: attention_mask must hold only 0 (padding) and 1 (token)")
    if position_ids is None:
        positions = np.arange(past, past + T)
    else:
        positions = _integers(owner, "position_ids", position_ids)
        if positions.shape not in ((B, T), (1, T), (T,)):
            raise ValueError(f"{owner}: position_ids must have shape (batch, seq_len) = {(B, T)}, got "
                             f"{positions.shape}")
    if positions.min() < 0 or positions.max() >= config.n_positions:
        raise ValueError(f"{owner}: positions {int(positions.min())}…{int(positions.max())} do not fit n_positions="
                         f"{config.n_positions}; shorten the prompt (it has {past} cached + {T} new tokens)")
    return ids, mask, positions


def attention_bias(mask: np.ndarray | None, T: int, past: int, dtype) -> Tensor | None:
    """The additive mask M (B or 1, 1, T, S) of every layer: query i (position P + i) sees key j
    iff j ≤ P + i and key j is not padding. None when nothing is masked (one new token, no padding)."""
    S = past + T
    bias = causal_mask(T, S, offset=past, dtype=dtype)[None, None] if T > 1 else None  # (1, 1, T, S)
    if mask is not None and not mask.all():
        padding = np.where(mask.astype(bool), 0.0, -np.inf).astype(dtype)[:, None, None, :]  # (B, 1, 1, S)
        bias = padding if bias is None else bias + padding
    return None if bias is None else Tensor._wrap(bias)


# ----------------------------------------------------------------------------------------------
# The shared machinery and the decoder stack
# ----------------------------------------------------------------------------------------------
class GPTPreTrainedModel(nn.Module):
    """Base of every GPT class: HF's initialisation, ``from_pretrained`` / ``save_pretrained``, ``generate``.

    Subclasses set ``config_class`` and ``has_lm_head``."""

    config_class: type = GPT2Config
    has_lm_head = False

    def __init__(self, config: DecoderConfig | None):
        super().__init__()
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: config must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config

    def init_weights(self, generator=None) -> "GPTPreTrainedModel":
        """HF's initialisation: Conv1D, Linear and Embedding weights ~ N(0, initializer_range²), biases 0,
        LayerNorm γ = 1, β = 0. GPT-2 also scales the weights of the layers that write into the
        residual stream (each block's two ``c_proj``) by 1/√(2L), "to account for the accumulation on
        the residual path with model depth" (Radford et al. 2019 §2.3)."""
        std = self.config.initializer_range
        for name, module in self.named_modules():
            if isinstance(module, (Conv1D, nn.Linear, Embedding)):
                scaled = self.config.pre_layer_norm and name.endswith("c_proj")
                init.normal_(module.weight, 0.0, std / np.sqrt(2 * self.config.n_layer) if scaled else std,
                             generator=generator)
                if getattr(module, "bias", None) is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, LayerNorm):
                module.reset_parameters()
        return self

    def num_parameters(self) -> int:
        """Trainable parameters, the tied output layer counted once."""
        return sum(p.data.size for p in self.parameters())

    @classmethod
    def from_pretrained(cls, directory, dtype=None, **config_overrides):
        """Load ``config.json`` + ``model.safetensors`` written by HF ``save_pretrained`` (or ours)."""
        return checkpoint.load_pretrained(cls, directory, dtype=dtype, **config_overrides)

    def save_pretrained(self, directory) -> None:
        """Write ``config.json`` + ``model.safetensors`` that HF ``from_pretrained`` loads (atomic)."""
        checkpoint.save_pretrained(self, directory)


class DecoderStack(GPTPreTrainedModel):
    """The decoder without the output layer: ``last_hidden_state`` (B, T, C).

    ``forward(input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
    token_type_ids=None, output_attentions=False, output_hidden_states=False)``, HF's arguments:
    ``attention_mask`` (B, P + T) is 1 at tokens and 0 at padding; ``past_key_values`` a
    ``DecoderCache`` (P cached positions) that this call extends in place (``use_cache=True``
    starts one); ``token_type_ids`` are embedded with the token matrix and added, as HF does.
    Subclasses give the embeddings their family's names (``token_embedding`` and friends).
    """

    token_embedding: Embedding
    position_embedding: Embedding
    final_norm: LayerNorm | None

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values: DecoderCache | None = None,
                use_cache: bool = False, token_type_ids=None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> ModelOutput:
        owner = type(self).__name__
        cache, past = DecoderCache.for_forward(past_key_values, use_cache, self.config.n_layer, owner)
        ids, mask, positions = check_inputs(self.config, owner, input_ids, attention_mask, position_ids, past)
        T = ids.shape[1]
        x = self.token_embedding(ids) + self.position_embedding(positions)  # (B, T, C)
        if token_type_ids is not None:
            types = _integers(owner, "token_type_ids", token_type_ids)
            if types.shape != ids.shape:
                raise ValueError(f"{owner}: token_type_ids has shape {types.shape}, input_ids has {ids.shape}")
            x = x + self.token_embedding(types)
        x = self.drop(x)
        bias = attention_bias(mask, T, past, x.dtype)  # (B | 1, 1, T, S) or None
        hidden, weights = [], []
        for i, block in enumerate(self.h):
            if output_hidden_states:
                hidden.append(x)
            x, w = block(x, bias, None if cache is None else cache.layers[i], output_attentions)  # (B, T, C)
            weights.append(w)
        if self.final_norm is not None:
            x = self.final_norm(x)
        out = ModelOutput(last_hidden_state=x)
        if cache is not None:
            out["past_key_values"] = cache
        if output_hidden_states:
            out["hidden_states"] = tuple(hidden + [x])  # the embeddings, each block's input, the output
        if output_attentions:
            out["attentions"] = tuple(weights)  # (B, nh, T, S) per layer
        return out

    @property
    def max_positions(self) -> int:
        return self.config.n_positions


class GPT2Model(DecoderStack):
    """GPT-2's decoder (HF ``GPT2Model``): ``wte``, ``wpe``, ``drop``, blocks ``h``, final ``ln_f``."""

    config_class = GPT2Config

    def __init__(self, config: GPT2Config | None = None, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        c = self.config
        self.wte = Embedding(c.vocab_size, c.n_embd, dtype=dtype)  # token embeddings, also the output layer
        self.wpe = Embedding(c.n_positions, c.n_embd, dtype=dtype)  # learned positions
        self.drop = Dropout(c.embd_pdrop)
        self.h = nn.ModuleList([Block(c, i, dtype) for i in range(c.n_layer)])
        self.ln_f = LayerNorm(c.n_embd, eps=c.layer_norm_epsilon, dtype=dtype)
        if initialize:
            self.init_weights(generator)

    token_embedding = property(lambda self: self.wte)
    position_embedding = property(lambda self: self.wpe)
    final_norm = property(lambda self: self.ln_f)


class OpenAIGPTModel(DecoderStack):
    """GPT's decoder (HF ``OpenAIGPTModel``): ``tokens_embed``, ``positions_embed``, ``drop``, blocks ``h``;
    post-LN blocks need no final LayerNorm."""

    config_class = OpenAIGPTConfig

    def __init__(self, config: OpenAIGPTConfig | None = None, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        c = self.config
        self.tokens_embed = Embedding(c.vocab_size, c.n_embd, dtype=dtype)
        self.positions_embed = Embedding(c.n_positions, c.n_embd, dtype=dtype)
        self.drop = Dropout(c.embd_pdrop)
        self.h = nn.ModuleList([Block(c, i, dtype) for i in range(c.n_layer)])
        if initialize:
            self.init_weights(generator)

    token_embedding = property(lambda self: self.tokens_embed)
    position_embedding = property(lambda self: self.positions_embed)
    final_norm = None


# ----------------------------------------------------------------------------------------------
# The language model
# ----------------------------------------------------------------------------------------------
def causal_lm_loss(logits: Tensor, labels, vocab_size: int) -> Tensor:
    """The next-token loss, labels shifted inside as HF does (``labels = input_ids`` is right):

        loss = −(1/N) Σ_{t: y_{t+1} ≠ −100} log softmax(logits_t)[y_{t+1}]

    The shift is done on the labels (a −100 appended, the first dropped), so the (B, T, V) logits
    are used in place — no shifted copy of the largest array of the model."""
    y = _integers("causal_lm_loss", "labels", labels)
    B, T, V = logits.shape
    if y.shape != (B, T):
        raise ValueError(f"causal_lm_loss: labels must have shape (batch, seq_len) = {(B, T)}, got {y.shape}")
    targets = np.concatenate([y[:, 1:], np.full((B, 1), IGNORE_INDEX, dtype=y.dtype)], axis=1)  # (B, T)
    kept = targets[targets != IGNORE_INDEX]
    if kept.size and (kept.min() < 0 or kept.max() >= vocab_size):
        raise ValueError(f"causal_lm_loss: labels must be -100 or lie in [0, vocab_size={vocab_size}), got min "
                         f"{kept.min()} and max {kept.max()}")
    return cross_entropy(logits.reshape(B * T, V), targets.reshape(-1), ignore_index=IGNORE_INDEX)


class CausalLM(GPTPreTrainedModel):
    """A decoder with its output layer, ``lm_head``, tied to the token embeddings:

        logits = h E_tokᵀ   (B, T, V)      (the same V × C matrix reads tokens in and writes them out)

    ``forward(input_ids, …, labels=None, logits_to_keep=0)``: the decoder's arguments, plus
    ``labels`` → ``loss`` (``causal_lm_loss``) and ``logits_to_keep`` = k > 0 → logits of the last
    k positions only (generation needs the last one). Returns ``logits``, ``loss``,
    ``past_key_values``, ``hidden_states``, ``attentions`` (those asked for). ``generate(…)`` is
    ``models.generation.generate`` on this model.
    """

    base_class: type = DecoderStack
    has_lm_head = True

    def __init__(self, config=None, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.transformer = self.base_class(self.config, dtype=dtype, initialize=False)
        c = self.config
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False, dtype=dtype)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.transformer.token_embedding.weight  # one Parameter, two names
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache: bool = False,
                token_type_ids=None, labels=None, logits_to_keep: int = 0, output_attentions: bool = False,
                output_hidden_states: bool = False) -> ModelOutput:
        out = self.transformer(input_ids, attention_mask, position_ids, past_key_values, use_cache, token_type_ids,
                               output_attentions, output_hidden_states)
        hidden = out.pop("last_hidden_state")  # (B, T, C)
        if logits_to_keep:
            if labels is not None:
                raise ValueError(f"{type(self).__name__}: labels need the logits of every position; "
                                 f"pass logits_to_keep=0")
            hidden = hidden[:, -int(logits_to_keep):]
        out["logits"] = self.lm_head(hidden)  # (B, T, V)
        if labels is not None:
            out["loss"] = causal_lm_loss(out["logits"], labels, self.config.vocab_size)
        return out

    @property
    def max_positions(self) -> int:
        return self.config.n_positions

    def generate(self, input_ids, attention_mask=None, **options):
        """Greedy, beam or sampled continuation of ``input_ids`` (``models.generation.generate``)."""
        return generate(self, input_ids, attention_mask, **options)


class GPT2LMHeadModel(CausalLM):
    """GPT-2 with its language-model head (HF ``GPT2LMHeadModel``): ``transformer`` + ``lm_head``."""

    config_class = GPT2Config
    base_class = GPT2Model


class OpenAIGPTLMHeadModel(CausalLM):
    """GPT with its language-model head (HF ``OpenAIGPTLMHeadModel``): ``transformer`` + ``lm_head``."""

    config_class = OpenAIGPTConfig
    base_class = OpenAIGPTModel
