"""BigBird (book § 4.8; Zaheer et al. 2020, "Big Bird: Transformers for Longer Sequences"): BERT's encoder
whose self-attention is block-sparse, with Hugging Face's names — an HF ``BigBirdModel`` checkpoint opens here.

    from models.bigbird import BigBirdConfig, BigBirdModel
    model = BigBirdModel(BigBirdConfig(block_size=64, num_random_blocks=3))
    out = model(input_ids, attention_mask=mask)            # out.last_hidden_state (B, T, H)

Full attention costs O(T²). BigBird-ITC keeps, per query block of ``block_size`` tokens, 2 global blocks
(the first and the last: they see, and are seen by, everything), a 3-block sliding window and
``num_random_blocks`` random blocks, so the cost is linear in T (``minigrad.kernels.block_sparse``).

Everything but the self-attention is BERT's (``models.bert``): the layers are ``BertLayer``\\ s whose
``attention.self`` is ``BigBirdSelfAttention``, switched by ``config.attention_type``:

* ``"block_sparse"`` — the block-sparse attention, for inputs longer than (5 + 2r)·block_size tokens. Shorter
  inputs fall back to full attention, as HF does (HF then stays in full mode for good; here each call decides).
  Inputs are padded to a multiple of ``block_size`` (HF's rule) and the output is cut back.
* ``"original_full"`` — BERT's dense attention.

The random blocks ("plan"). Each layer draws its own, fixed per layer (seed = layer index, as HF seeds its
NumPy draws with the layer index), uniformly among the blocks not already attended: not the global
blocks, not the window. **HF's evaluation mode uses no random blocks**: its plan helpers return zeros, so
every middle query block sees block 0 another r times. ``random_blocks=None`` (the default) follows HF —
the seeded plan in training, the all-zero plan in evaluation — so checkpoints give HF's numbers;
``random_blocks="seeded"`` or ``"zeros"`` picks one in both modes, and a list of (heads, blocks − 2, r)
arrays (one per layer) gives any plan, e.g. HF's own training plan, which this module does not re-derive.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

import minigrad
from minigrad import nn
from minigrad.kernels.block_sparse import block_sparse_attention
from minigrad.random import Generator
from minigrad.tensor import Tensor

from models.bert.config import BertConfig
from models.bert.functional import check_inputs
from models.bert.heads import BertForSequenceClassification, FirstTokenClassificationHead
from models.bert.modeling import BertEmbeddings, BertEncoder, BertPreTrainedModel, BertSelfAttention, ModelOutput
from models.hf_checkpoint import CONFIG_NAME, checkpoint_folder, load_into, mismatch_report, read_weights, write_checkpoint

ATTENTION_TYPES = ("block_sparse", "original_full")


@dataclass
class BigBirdConfig(BertConfig):
    """BERT's fields plus BigBird's; defaults are google/bigbird-roberta-base (HF ``BigBirdConfig``)."""

    vocab_size: int = 50358
    hidden_act: str = "gelu_new"
    max_position_embeddings: int = 4096
    attention_type: str = "block_sparse"
    use_bias: bool = True  # biases of query, key, value
    rescale_embeddings: bool = False  # word embeddings × √H
    block_size: int = 64
    num_random_blocks: int = 3

    model_type = "big_bird"

    def __post_init__(self):
        super().__post_init__()
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"BigBirdConfig: attention_type must be one of {ATTENTION_TYPES}, "
                             f"got {self.attention_type!r}")
        for name, low in (("block_size", 1), ("num_random_blocks", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"BigBirdConfig: {name} must be an int >= {low}, got {value!r}")

    @property
    def max_tokens_to_attend(self) -> int:
        """HF's threshold: block-sparse attention needs more than (2 global + 3 window + 2r random)·block_size
        tokens; up to that many the model uses full attention."""
        return (5 + 2 * self.num_random_blocks) * self.block_size

    @classmethod
    def from_dict(cls, values: dict, **overrides) -> "BigBirdConfig":
        if not isinstance(values, dict):
            raise TypeError(f"BigBirdConfig.from_dict: expected a dict, got {type(values).__name__}")
        values = {**values, **overrides}
        if values.get("model_type", cls.model_type) != cls.model_type:
            raise ValueError(f"BigBirdConfig.from_dict: model_type is {values['model_type']!r}, "
                             f"expected {cls.model_type!r}")
        return super().from_dict({k: v for k, v in values.items() if k != "model_type"})

    def to_dict(self) -> dict:
        return {**super().to_dict(), "model_type": self.model_type}


# ----------------------------------------------------------------------------------------------
# The random blocks
# ----------------------------------------------------------------------------------------------
def random_block_plan(num_blocks: int, num_random_blocks: int, num_heads: int, generator: Generator) -> np.ndarray:
    """(heads, nb − 2, r): for each head and middle query block i, r distinct blocks drawn uniformly from
    those it does not attend already — not 0 or nb − 1 (global), not i − 1, i, i + 1 (window)."""
    fn = "random_block_plan"
    m, r = num_blocks - 2, num_random_blocks
    if r == 0:
        return np.zeros((num_heads, max(m, 0), 0), dtype=np.int64)
    if num_blocks - 5 < r:
        raise ValueError(f"{fn}: {num_blocks} blocks leave a middle block only {max(num_blocks - 5, 0)} blocks "
                         f"outside its window and the global blocks, fewer than num_random_blocks={r}; use a "
                         f"longer input or fewer random blocks")
    rows = np.arange(1, num_blocks - 1)[:, None]  # (m, 1)
    cols = np.arange(num_blocks)[None, :]  # (1, nb)
    attended = (np.abs(cols - rows) <= 1) | (cols == 0) | (cols == num_blocks - 1)  # (m, nb)
    keys = generator.np.random((num_heads, m, num_blocks))
    keys[:, attended] = np.inf  # never chosen
    return np.argsort(keys, axis=-1)[..., :r].astype(np.int64)  # the r smallest keys: uniform, no repeats


@dataclass
class BlockSparseInputs:
    """What the block-sparse layers need besides the hidden states (passed where BERT passes its mask)."""

    key_mask: np.ndarray | None  # (B, T) bool, True for real tokens; None: no padding
    random_blocks: object  # None | "seeded" | "zeros" | one (heads, blocks − 2, r) array per layer

    def plan(self, layer_index: int, training: bool, num_blocks: int, heads: int, r: int) -> np.ndarray:
        choice = self.random_blocks
        if choice is None:
            choice = "seeded" if training else "zeros"  # HF's evaluation mode: no random blocks
        if isinstance(choice, str):
            if choice == "zeros":
                return np.zeros((heads, num_blocks - 2, r), dtype=np.int64)
            return random_block_plan(num_blocks, r, heads, Generator(layer_index))
        return np.asarray(choice[layer_index])


# ----------------------------------------------------------------------------------------------
# Embeddings and self-attention
# ----------------------------------------------------------------------------------------------
class BigBirdEmbeddings(BertEmbeddings):
    """BERT's input representation with HF BigBird's order — dropout *before* the LayerNorm — and the
    optional √H scaling of the word embeddings:  E = LayerNorm(Dropout(c·W_tok[x] + W_seg[s] + W_pos[t]))."""

    def __init__(self, config: BigBirdConfig, dtype=None):
        super().__init__(config, dtype)
        self.scale = float(np.sqrt(config.hidden_size)) if config.rescale_embeddings else None

    def forward(self, input_ids: np.ndarray, token_type_ids: np.ndarray, packing=None) -> Tensor:
        x = self.word_embeddings(input_ids)  # (B, T, H)
        if self.scale is not None:
            x = x * self.scale
        x = x + self.token_type_embeddings(token_type_ids) + self.position_embeddings(np.arange(input_ids.shape[1]))
        return self.LayerNorm(self.dropout(x))


class BigBirdSelfAttention(BertSelfAttention):
    """BERT's self-attention (``query``/``key``/``value``, HF names) whose attention is block-sparse when the
    encoder hands it ``BlockSparseInputs`` instead of BERT's dense mask."""

    def __init__(self, config: BigBirdConfig, layer_index: int, dtype=None):
        super().__init__(config, dtype)
        if not config.use_bias:
            H = config.hidden_size
            self.query, self.key, self.value = (nn.Linear(H, H, bias=False, dtype=dtype) for _ in range(3))
        self.layer_index = layer_index
        self.block_size, self.num_random_blocks = config.block_size, config.num_random_blocks

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing=None):
        if not isinstance(key_mask, BlockSparseInputs):  # full attention: BERT's
            return super().forward(hidden, key_mask, output_attentions, packing)
        if output_attentions:
            raise ValueError("BigBirdSelfAttention: output_attentions is not available in block_sparse mode (the "
                             "(T, T) weights are never formed); use attention_type='original_full'")
        B, T, H = hidden.shape
        q, k, v = (self._heads(f(hidden), None) for f in (self.query, self.key, self.value))  # (B, A, T, d)
        plan = key_mask.plan(self.layer_index, self.training, T // self.block_size, self.num_attention_heads,
                             self.num_random_blocks)
        context = block_sparse_attention(q, k, v, plan, self.block_size, key_mask=key_mask.key_mask)  # (B, A, T, d)
        context = context.transpose(1, 2).reshape(B, T, H)  # (B, T, H)
        if key_mask.key_mask is not None:  # HF zeroes the context of padding queries
            context = context * key_mask.key_mask[:, :, None].astype(context.dtype)
        return context, None


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class BigBirdPreTrainedModel(BertPreTrainedModel):
    """HF's initialisation (BERT's) and checkpoints by name; subclasses name their ``head_roots``."""

    base_model_prefix = "bert"
    head_roots: tuple = ()
    config_class = BigBirdConfig

    def __init__(self, config: BigBirdConfig):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: config must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        super().__init__(config)

    @classmethod
    def from_pretrained(cls, directory, dtype=None, **config_overrides):
        """Load ``config.json`` + ``model.safetensors`` written by HF ``save_pretrained`` (or ours)."""
        return load_checkpoint(cls, directory, dtype=dtype, **config_overrides)

    def save_pretrained(self, directory) -> None:
        """Write ``config.json`` + ``model.safetensors`` that HF ``from_pretrained`` loads (atomic)."""
        config = self.config.to_dict()
        config.update(architectures=[type(self).__name__], dtype=str(next(iter(self.state_dict().values())).dtype))
        write_checkpoint(directory, self.state_dict(), config)


class BigBirdModel(BigBirdPreTrainedModel):
    """The BigBird encoder: ``last_hidden_state`` (B, T, H) and ``pooler_output`` = tanh(W_p h_[CLS] + b_p).

    ``attention_mask`` (B, T) is 1 for real tokens; ``token_type_ids`` the segments. ``random_blocks``:
    the plan (module docstring)."""

    def __init__(self, config: BigBirdConfig, add_pooling_layer: bool = True, dtype=None, generator=None,
                 initialize: bool = True):
        super().__init__(config)
        self.embeddings = BigBirdEmbeddings(config, dtype)
        self.encoder = BertEncoder(config, dtype)
        for i, layer in enumerate(self.encoder.layer):  # BERT's layers, BigBird's self-attention
            layer.attention.self = BigBirdSelfAttention(config, i, dtype)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size, dtype=dtype) if add_pooling_layer else None
        if initialize:
            self.init_weights(generator)

    def uses_block_sparse(self, seq_len: int) -> bool:
        """Block-sparse for ``attention_type='block_sparse'`` and inputs longer than ``max_tokens_to_attend``."""
        return self.config.attention_type == "block_sparse" and seq_len > self.config.max_tokens_to_attend

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False, random_blocks=None) -> ModelOutput:
        owner = type(self).__name__
        ids, types, dense_mask = check_inputs(self.config, input_ids, attention_mask, token_type_ids, owner)
        B, T = ids.shape
        if self.uses_block_sparse(T):
            pad = -T % self.config.block_size  # HF pads to a multiple of block_size with [PAD], mask 0
            if T + pad > self.config.max_position_embeddings:
                raise ValueError(f"{owner}: sequence length {T} padded to {T + pad} (a multiple of block_size="
                                 f"{self.config.block_size}) exceeds max_position_embeddings="
                                 f"{self.config.max_position_embeddings}")
            keys = np.ones((B, T), dtype=bool) if dense_mask is None else dense_mask[:, 0, 0]
            ids, types, keys = (np.pad(a, ((0, 0), (0, pad)), constant_values=c)
                                for a, c in ((ids, self.config.pad_token_id or 0), (types, 0), (keys, False)))
            mask = BlockSparseInputs(None if keys.all() else keys, random_blocks)
        else:
            pad, mask = 0, dense_mask
        hidden = self.embeddings(ids, types)  # (B, T + pad, H)
        hidden, all_hidden, all_weights = self.encoder(hidden, mask, output_attentions, output_hidden_states)
        pooled = self.pooler(hidden[:, 0]).tanh() if self.pooler is not None else None  # (B, H)
        cut = (lambda h: h[:, :T]) if pad else (lambda h: h)  # noqa: E731  (undo the padding)
        out = ModelOutput(last_hidden_state=cut(hidden), pooler_output=pooled)
        if output_hidden_states:
            out["hidden_states"] = tuple(cut(h) for h in all_hidden)
        if output_attentions:
            out["attentions"] = tuple(all_weights)
        return out


class BigBirdClassificationHead(FirstTokenClassificationHead):
    """HF's head (RoBERTa's): logits = W_o Dropout(act(W_d Dropout(h_[CLS]) + b_d)) + b_o, with ``act`` the
    config's ``hidden_act`` (HF's BigBird choice; RoBERTa fixes tanh)."""

    def __init__(self, config: BigBirdConfig, dtype=None):
        super().__init__(config, dtype)
        self.act = config.hidden_act


class BigBirdForSequenceClassification(BigBirdPreTrainedModel):
    """BigBird + ``classifier``; the loss follows HF's ``problem_type`` rules (BERT's, shared)."""

    head_roots = ("classifier",)

    def __init__(self, config: BigBirdConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BigBirdModel(config, dtype=dtype, initialize=False)
        self.classifier = BigBirdClassificationHead(config, dtype)
        if initialize:
            self.init_weights(generator)

    problem_type = BertForSequenceClassification.problem_type  # the same rules as BERT's head
    _loss = BertForSequenceClassification._loss

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states: bool = False, random_blocks=None) -> ModelOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states,
                        random_blocks=random_blocks)
        out["logits"] = self.classifier(out["last_hidden_state"])  # (B, num_labels)
        if labels is not None:
            out["loss"] = self._loss(out["logits"], labels)
        return out


# ----------------------------------------------------------------------------------------------
# Checkpoints (shared with models.reformer)
# ----------------------------------------------------------------------------------------------
def load_checkpoint(cls, directory, dtype=None, **config_overrides):
    """``cls.from_pretrained``: build ``cls`` from ``config.json`` and load ``model.safetensors`` by name.

    The expected names and shapes are those of the model built from the config. HF's rules: the
    ``base_model_prefix`` is added or removed as ``cls`` needs; a head (``cls.head_roots``) wholly absent
    from the file is freshly initialised, with a warning; any other mismatch is one error listing all."""

    owner = f"{cls.__name__}.from_pretrained"
    directory = checkpoint_folder(directory, owner)
    config = cls.config_class.from_json_file(directory / CONFIG_NAME, **config_overrides)
    prefix, heads = cls.base_model_prefix, tuple(cls.head_roots)
    raw = read_weights(directory, owner)
    with_head = any(name.startswith(prefix + ".") for name in raw)  # written by a class with a head
    state = {}
    for name, array in raw.items():
        if with_head and name.startswith(prefix + "."):
            name = name if heads else name[len(prefix) + 1:]  # the backbone, for a head class or the bare model
        elif with_head and name.split(".", 1)[0] not in heads:
            continue  # another class's head (HF skips it)
        elif not with_head and heads:
            name = f"{prefix}.{name}"  # a bare-model checkpoint under a head
        state[name] = array
    model = cls(config, dtype=dtype, generator=minigrad.Generator(0))
    expected = {k: v.shape for k, v in model.state_dict().items()}
    head_names = [k for k in expected if k.split(".", 1)[0] in heads]
    fresh = head_names if not any(k in state for k in head_names) else []
    summary = ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)
                        if f.name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                      "attn_layers", "intermediate_size", "feed_forward_size"))
    report = mismatch_report(state, expected, owner, summary, may_be_absent=fresh)
    if report:
        raise ValueError(report)
    return load_into(model, {k: state[k] for k in expected if k in state}, fresh, owner)


__all__ = ["BigBirdClassificationHead", "BigBirdConfig", "BigBirdEmbeddings", "BigBirdForSequenceClassification",
           "BigBirdModel", "BigBirdPreTrainedModel", "BigBirdSelfAttention", "BlockSparseInputs", "load_checkpoint",
           "random_block_plan"]
