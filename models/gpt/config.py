"""The configs of GPT (book § 4.3; Radford et al. 2018) and GPT-2 (§ 5.3; Radford et al. 2019), with
Hugging Face's field names, so that one ``config.json`` opens in ``transformers`` and here.

The two models are one decoder. What differs is written in the config and read by the shared
block (``models.gpt.modeling``):

| | GPT (``OpenAIGPTConfig``) | GPT-2 (``GPT2Config``) |
|---|---|---|
| LayerNorm | after each sub-block (post-LN, as the 2017 Transformer) | before each sub-block, plus a final ``ln_f`` |
| activation (``afn`` / ``activation_function``) | ``gelu`` = GELU's tanh approximation | ``gelu_new`` = the same tanh approximation |
| defaults | 40,478 BPE tokens, 512 positions | 50,257 byte-level BPE tokens, 1,024 positions |
| names | ``tokens_embed``, ``positions_embed`` | ``wte``, ``wpe``, ``ln_f`` |

Both: learned positions, 12 layers × 768 wide × 12 heads by default, a 4 × 768 feed-forward layer,
the output layer tied to the token embeddings. ``parameter_shapes`` lists every tensor of a model
from the config alone — ``count_parameters`` gives GPT-2's 124,439,808 and GPT's 116,534,784.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from models.hf_config import HFConfig

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh")
# HF's keys that change nothing in what we build (generation defaults, bookkeeping): read and dropped.
_IGNORED_KEYS = {"architectures", "model_type", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                 "use_cache", "output_attentions", "output_hidden_states", "return_dict", "gradient_checkpointing"}
# HF's alias -> field (its ``attribute_map``): ``config.hidden_size`` is ``n_embd``.
ALIASES = {"hidden_size": "n_embd", "max_position_embeddings": "n_positions", "num_attention_heads": "n_head",
           "num_hidden_layers": "n_layer"}


@dataclass
class DecoderConfig(HFConfig):
    """The fields GPT and GPT-2 share. Use ``GPT2Config`` or ``OpenAIGPTConfig``."""

    model_type: ClassVar[str] = ""
    ignored_keys: ClassVar[frozenset] = _IGNORED_KEYS
    aliases: ClassVar[dict] = ALIASES
    pre_layer_norm: ClassVar[bool] = True  # LayerNorm before (GPT-2) or after (GPT) each sub-block

    vocab_size: int = 50257
    n_positions: int = 1024  # the longest sequence: one learned position vector each
    n_embd: int = 768  # d_model
    n_layer: int = 12
    n_head: int = 12
    resid_pdrop: float = 0.1  # dropout on each sub-block's output
    embd_pdrop: float = 0.1  # dropout on token + position embeddings
    attn_pdrop: float = 0.1  # dropout on the attention weights
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | list | None = None
    pad_token_id: int | None = None
    tie_word_embeddings: bool = True  # the output layer is the token-embedding matrix (Press & Wolf 2017)
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # other HF keys, kept for round trips

    def __post_init__(self):
        owner = type(self).__name__
        for name, low in (("vocab_size", 1), ("n_positions", 1), ("n_embd", 1), ("n_layer", 0), ("n_head", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"{owner}: n_embd={self.n_embd} is not a multiple of n_head={self.n_head}")
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"{owner}: {name} must be a probability in [0, 1), got {p!r}")
        if not (isinstance(self.layer_norm_epsilon, (int, float)) and self.layer_norm_epsilon > 0):
            raise ValueError(f"{owner}: layer_norm_epsilon must be positive, got {self.layer_norm_epsilon!r}")
        if not (isinstance(self.initializer_range, (int, float)) and self.initializer_range >= 0):
            raise ValueError(f"{owner}: initializer_range must be >= 0, got {self.initializer_range!r}")
        for name in ("bos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{owner}: {name} must be None or a token id >= 0, got {value!r}")
        eos = self.eos_token_id
        eos_ids = [] if eos is None else (eos if isinstance(eos, list) else [eos])
        if any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in eos_ids):
            raise ValueError(f"{owner}: eos_token_id must be None, a token id or a list of them, got {eos!r}")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ValueError(f"{owner}: tie_word_embeddings must be True or False, got {self.tie_word_embeddings!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"{owner}: the activation must be one of {ACTIVATIONS}, got {self.hidden_act!r}")

    # -- what the model reads ----------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.n_embd

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def num_attention_heads(self) -> int:
        return self.n_head

    @property
    def max_position_embeddings(self) -> int:
        return self.n_positions

    @property
    def head_dim(self) -> int:
        """d_k = d_model / heads, the width of one attention head."""
        return self.n_embd // self.n_head

    @property
    def inner_size(self) -> int:
        """The feed-forward width (4 · d_model in both papers)."""
        return 4 * self.n_embd

    @property
    def hidden_act(self) -> str:
        """The feed-forward activation, by the names of ``models.bert.functional.activation``."""
        raise NotImplementedError

    def attention_scale(self, layer_idx: int) -> float:
        """s in softmax(Q Kᵀ · s): 1/√d_k (Vaswani et al. eq. 1)."""
        return 1.0 / math.sqrt(self.head_dim)



@dataclass
class GPT2Config(DecoderConfig):
    """GPT-2 (Radford et al. 2019). Defaults are the 124 M ``gpt2`` (12 layers, d 768, 12 heads)."""

    model_type: ClassVar[str] = "gpt2"
    pre_layer_norm: ClassVar[bool] = True

    bos_token_id: int | None = 50256  # <|endoftext|>
    eos_token_id: int | list | None = 50256
    n_inner: int | None = None  # feed-forward width; None: 4 · n_embd
    activation_function: str = "gelu_new"
    scale_attn_weights: bool = True  # divide the scores by √d_k
    scale_attn_by_inverse_layer_idx: bool = False  # and by layer_idx + 1 (a later HF option)
    reorder_and_upcast_attn: bool = False  # a mixed-precision trick; float32 throughout here: same numbers

    def __post_init__(self):
        super().__post_init__()
        if self.n_inner is not None and (isinstance(self.n_inner, bool) or not isinstance(self.n_inner, int)
                                         or self.n_inner < 1):
            raise ValueError(f"GPT2Config: n_inner must be None or an int >= 1, got {self.n_inner!r}")
        if self.extra.get("add_cross_attention"):
            raise ValueError("GPT2Config: add_cross_attention=True (GPT-2 as an encoder-decoder's decoder) is not "
                             "implemented; this is the decoder-only GPT-2 of § 5.3")

    @property
    def inner_size(self) -> int:
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    @property
    def hidden_act(self) -> str:
        return self.activation_function

    def attention_scale(self, layer_idx: int) -> float:
        scale = 1.0 / math.sqrt(self.head_dim) if self.scale_attn_weights else 1.0
        return scale / (layer_idx + 1) if self.scale_attn_by_inverse_layer_idx else scale


@dataclass
class OpenAIGPTConfig(DecoderConfig):
    """GPT (Radford et al. 2018, "Improving Language Understanding by Generative Pre-Training"), HF's
    ``openai-gpt``: 12 layers, d 768, 12 heads, 512 positions, 40,478 BPE tokens."""

    model_type: ClassVar[str] = "openai-gpt"
    pre_layer_norm: ClassVar[bool] = False

    vocab_size: int = 40478
    n_positions: int = 512
    afn: str = "gelu"  # HF maps GPT's "gelu" to the tanh approximation (``gelu_new``), as the paper's code

    @property
    def hidden_act(self) -> str:
        return {"gelu": "gelu_new", "swish": "silu"}.get(self.afn, self.afn)


CONFIG_CLASSES = {cls.model_type: cls for cls in (GPT2Config, OpenAIGPTConfig)}


# ----------------------------------------------------------------------------------------------
# Shapes without allocation
# ----------------------------------------------------------------------------------------------
def _conv1d(prefix: str, n_in: int, n_out: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (n_in, n_out), f"{prefix}.bias": (n_out,)}  # HF's Conv1D: weight (in, out)


def _layer_norm(prefix: str, n: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,)}


def embedding_names(config: DecoderConfig) -> tuple[str, str]:
    """The token and position embedding names of the family (HF's)."""
    return ("wte", "wpe") if config.pre_layer_norm else ("tokens_embed", "positions_embed")


def parameter_shapes(config: DecoderConfig, lm_head: bool = False) -> dict[str, tuple]:
    """``{HF name: shape}`` of every parameter of the bare model (``GPT2Model`` / ``OpenAIGPTModel``),
    with the ``transformer.`` prefix and an untied ``lm_head.weight`` when ``lm_head`` is set."""
    C, I = config.n_embd, config.inner_size
    tokens, positions = embedding_names(config)
    shapes = {f"{tokens}.weight": (config.vocab_size, C), f"{positions}.weight": (config.n_positions, C)}
    for i in range(config.n_layer):
        p = f"h.{i}"
        shapes.update(_layer_norm(f"{p}.ln_1", C))
        shapes.update(_conv1d(f"{p}.attn.c_attn", C, 3 * C))  # Q, K and V side by side
        shapes.update(_conv1d(f"{p}.attn.c_proj", C, C))
        shapes.update(_layer_norm(f"{p}.ln_2", C))
        shapes.update(_conv1d(f"{p}.mlp.c_fc", C, I))
        shapes.update(_conv1d(f"{p}.mlp.c_proj", I, C))
    if config.pre_layer_norm:
        shapes.update(_layer_norm("ln_f", C))
    if not lm_head:
        return shapes
    shapes = {"transformer." + k: v for k, v in shapes.items()}
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, C)
    return shapes


def count_parameters(config: DecoderConfig) -> int:
    """Parameters of the model, the tied output layer counted once, from shapes only.

    GPT-2: V·C + P·C + L·(12C² + 13C) + 2C = 124,439,808 for V 50,257, P 1,024, C 768, L 12."""
    return sum(math.prod(s) for s in parameter_shapes(config, lm_head=True).values())
