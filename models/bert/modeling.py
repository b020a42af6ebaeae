"""BERT's encoder (book ch. 4; Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding"), module for module as Hugging Face's ``BertModel``.

    input_ids, token_type_ids ─► BertEmbeddings ─► L × BertLayer ─► last_hidden_state (B, T, H)
                                                                   └► BertPooler([CLS]) (B, H)

Every attribute has HF's name, so ``state_dict()`` keys are HF's keys
(``encoder.layer.0.attention.self.query.weight`` …) and one checkpoint opens in both libraries.
Shapes: B batch, T tokens, H hidden size, A heads, d = H / A, I intermediate size.
"""
from __future__ import annotations

import numpy as np

import minigrad
from minigrad import nn
from minigrad.nn import init
from minigrad.nn.attention import scaled_dot_product_attention
from minigrad.nn.dropout import Dropout
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.sparse import Embedding
from minigrad.tensor import Tensor

from models.bert.config import BertConfig
from models.bert.functional import Packing, activation, check_inputs
from models.bert.hf_io import BERT_LAYOUT


class ModelOutput(dict):
    """A dict of outputs that also reads as attributes (``out.last_hidden_state``), as HF's."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this output has no {name!r} (it has {sorted(self)})") from None


# ----------------------------------------------------------------------------------------------
# Input representation (book § 4.2, Devlin et al. Figure 2)
# ----------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """The input representation: the sum of token, segment and position embeddings.

        E = LayerNorm(W_tok[x_t] + W_pos[t] + W_seg[s_t]),  then dropout     (Devlin et al. §3.1)

    A config with ``type_vocab_size == 0`` (DistilBERT, book § 4.7) has no segment embeddings:
    E = LayerNorm(W_tok[x_t] + W_pos[t]). A config with an ``embedding_size`` E (ALBERT's factorized
    embedding, ELECTRA's small embeddings, book §§ 4.5–4.6) makes the three tables E wide instead of H;
    the model projects E → H. ``position_ids`` says which position each token has (RoBERTa overrides it).
    """

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        E = getattr(config, "embedding_size", config.hidden_size)  # E = H unless the config factorizes
        self.word_embeddings = Embedding(config.vocab_size, E, padding_idx=config.pad_token_id, dtype=dtype)
        self.position_embeddings = Embedding(config.max_position_embeddings, E, dtype=dtype)
        if config.type_vocab_size:  # DistilBERT (type_vocab_size 0) has no token_type_embeddings at all
            self.token_type_embeddings = Embedding(config.type_vocab_size, E, dtype=dtype)
        self.LayerNorm = LayerNorm(E, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def position_ids(self, input_ids: np.ndarray) -> np.ndarray:
        """(T,) absolute positions 0 … T-1, the same for every sequence of the batch."""
        return np.arange(input_ids.shape[1])

    def forward(self, input_ids: np.ndarray, token_type_ids: np.ndarray | None,
                packing: Packing | None = None) -> Tensor:
        B, T = input_ids.shape
        segments = "token_type_embeddings" in self._modules
        positions = self.position_ids(input_ids)  # (T,) or (B, T)
        if packing is not None:  # only the N real tokens: (N,) ids, types and positions
            input_ids = input_ids.reshape(-1)[packing.index]
            token_type_ids = token_type_ids.reshape(-1)[packing.index] if segments else None
            positions = np.broadcast_to(positions, (B, T)).reshape(-1)[packing.index]
        x = self.word_embeddings(input_ids)  # (B, T, H) or packed (N, H)
        if segments:
            x = x + self.token_type_embeddings(token_type_ids)  # (B, T, H)
        x = x + self.position_embeddings(positions)  # (T, E) broadcast over the batch, or (B, T, E)
        return self.dropout(self.LayerNorm(x))  # (B, T, E)


# ----------------------------------------------------------------------------------------------
# One encoder layer (Vaswani et al. 2017 §3.1, post-LayerNorm as in BERT)
# ----------------------------------------------------------------------------------------------
class BertSelfAttention(nn.Module):
    """Multi-head self-attention with separate ``query``/``key``/``value`` projections (HF names).

        head_i = softmax(Q_i K_iᵀ / √d + M) V_i,   Q = X W_Qᵀ + b_Q, …      (Vaswani et al. eq. 1)

    M is 0 where a key is a real token and −∞ at padding, so no token attends to ``[PAD]``.
    """

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.add_projections(config.hidden_size, dtype)
        self.dropout = Dropout(config.attention_probs_dropout_prob)  # on the attention weights

    def add_projections(self, H: int, dtype) -> None:
        """W_Q, W_K, W_V under HF BERT's names (``models.distilbert`` keeps DistilBERT's: q_lin, k_lin, v_lin)."""
        self.query = nn.Linear(H, H, dtype=dtype)
        self.key = nn.Linear(H, H, dtype=dtype)
        self.value = nn.Linear(H, H, dtype=dtype)

    def projections(self, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q = X W_Qᵀ + b_Q, K = X W_Kᵀ + b_K, V = X W_Vᵀ + b_V."""
        return self.query(hidden), self.key(hidden), self.value(hidden)

    def _heads(self, x: Tensor, packing: Packing | None) -> Tensor:
        if packing is not None:
            x = packing.pad(x)  # (N, H) -> (B, T, H): attention needs the batch layout
        B, T, _ = x.shape
        return x.reshape(B, T, self.num_attention_heads, self.attention_head_size).transpose(1, 2)  # (B, A, T, d)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, key_mask, need_weights: bool = False):
        p = self.dropout.p if self.training else 0.0
        return scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p, return_weights=need_weights,
                                            generator=self.dropout.generator)

    def forward(self, hidden: Tensor, key_mask: np.ndarray | None, output_attentions: bool = False,
                packing: Packing | None = None):
        q, k, v = self.projections(hidden)  # (B, T, H) or packed (N, H)
        if packing is not None and not output_attentions:  # sequences grouped by length
            return packing.attention(q, k, v, self.num_attention_heads, self._attend), None
        q, k, v = self._heads(q, packing), self._heads(k, packing), self._heads(v, packing)  # (B, A, T, d)
        result = self._attend(q, k, v, key_mask, output_attentions)
        context, weights = result if output_attentions else (result, None)  # (B, A, T, d), (B, A, T, T)
        B, A, T, d = context.shape
        context = context.transpose(1, 2).reshape(B, T, A * d)  # (B, T, H): heads concatenated
        return (context if packing is None else packing.unpad(context)), weights


class BertSelfOutput(nn.Module):
    """Attention output: Add & Norm.   y = LayerNorm(x + Dropout(context W_Oᵀ + b_O))"""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, context: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(context)) + residual)  # (B, T, H)


class BertAttention(nn.Module):
    """``attention.self`` (multi-head attention) followed by ``attention.output`` (Add & Norm)."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.self = BertSelfAttention(config, dtype)
        self.output = BertSelfOutput(config, dtype)

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing=None):
        context, weights = self.self(hidden, key_mask, output_attentions, packing)
        return self.output(context, hidden), weights


class BertIntermediate(nn.Module):
    """First half of the position-wise feed-forward network:  h = act(x W_1ᵀ + b_1)  (I = 4H wide)."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size, dtype=dtype)
        self.hidden_act = config.hidden_act

    def forward(self, x: Tensor) -> Tensor:
        return activation(self.dense(x), self.hidden_act)  # (B, T, I)


class BertOutput(nn.Module):
    """Second half of the feed-forward network, then Add & Norm:  y = LayerNorm(x + Dropout(h W_2ᵀ + b_2))"""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)  # (B, T, H)


class BertLayer(nn.Module):
    """One Transformer encoder block: self-attention sub-layer, then feed-forward sub-layer."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.attention = BertAttention(config, dtype)
        self.intermediate = BertIntermediate(config, dtype)
        self.output = BertOutput(config, dtype)

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing=None):
        attended, weights = self.attention(hidden, key_mask, output_attentions, packing)  # (B, T, H)
        return self.output(self.intermediate(attended), attended), weights  # (B, T, H)


def run_layers(layers, hidden: Tensor, key_mask, output_attentions=False, output_hidden_states=False, packing=None):
    """Apply the encoder blocks ``layers`` in turn:  h_{l+1} = Layer_l(h_l).

    Returns the encoder triple every BERT-style encoder returns: the last hidden state, every hidden state
    when asked (h_0 first, padded back to (B, T, H) when packed) and every attention map when asked.
    ALBERT's encoder passes the same shared layer again and again (``models.albert.AlbertTransformer``).
    """
    unpacked = (lambda h: h) if packing is None else packing.pad  # noqa: E731
    all_hidden = [unpacked(hidden)] if output_hidden_states else None
    all_weights = [] if output_attentions else None
    for layer in layers:
        hidden, weights = layer(hidden, key_mask, output_attentions, packing)  # (B, T, H) or (N, H)
        if output_hidden_states:
            all_hidden.append(unpacked(hidden))
        if output_attentions:
            all_weights.append(weights)
    return hidden, all_hidden, all_weights


class BertEncoder(nn.Module):
    """L encoder blocks in a row; ``block`` is the block's class (DistilBERT's has other names)."""

    def __init__(self, config: BertConfig, dtype=None, block: type = BertLayer):
        super().__init__()
        self.layer = nn.ModuleList([block(config, dtype) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden: Tensor, key_mask, output_attentions=False, output_hidden_states=False, packing=None):
        return run_layers(self.layer, hidden, key_mask, output_attentions, output_hidden_states, packing)


class BertPooler(nn.Module):
    """The sentence representation for NSP and classification:  pooled = tanh(h_[CLS] W_pᵀ + b_p)"""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, dtype=dtype)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.dense(hidden[:, 0]).tanh()  # (B, H): the [CLS] token's final state


# ----------------------------------------------------------------------------------------------
# The model and the shared machinery of every BERT class
# ----------------------------------------------------------------------------------------------
class BertPreTrainedModel(nn.Module):
    """Base of every BERT class: HF's initialisation, ``from_pretrained`` and ``save_pretrained``.

    Subclasses set ``head`` (the name ``config.head_shapes`` knows) and build their modules.
    """

    head = "model"
    base_model_prefix = "bert"
    config_class = BertConfig
    checkpoint_layout = BERT_LAYOUT  # how HF names the tensors (models.bert.hf_io)

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: config must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config

    def init_weights(self, generator=None) -> "BertPreTrainedModel":
        """HF's initialisation: Linear and Embedding weights ~ N(0, initializer_range²), biases 0,
        the padding row 0, LayerNorm γ = 1 and β = 0 (Devlin et al.: "truncated normal, 0.02")."""
        std = self.config.initializer_range
        modules = list(self.modules())
        for module in modules:
            if isinstance(module, nn.Linear):
                init.normal_(module.weight, 0.0, std, generator=generator)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, LayerNorm):
                module.reset_parameters()
        for module in modules:  # after the Linears: the tied MLM decoder shares the word embeddings
            if isinstance(module, Embedding):
                init.normal_(module.weight, 0.0, std, generator=generator)
                if module.padding_idx is not None:
                    module.weight.data[module.padding_idx] = 0.0
        for name, param in self.named_parameters():
            if name.endswith("predictions.bias"):
                init.zeros_(param)
        return self

    def num_parameters(self) -> int:
        """Trainable parameters, each shared (tied) array counted once."""
        return sum(p.data.size for p in self.parameters())

    @classmethod
    def from_pretrained(cls, directory, dtype=None, **config_overrides):
        """Load ``config.json`` + ``model.safetensors`` written by HF ``save_pretrained`` (or ours)."""
        from models.bert.hf_io import load_pretrained

        return load_pretrained(cls, directory, dtype=dtype, **config_overrides)

    def save_pretrained(self, directory) -> None:
        """Write ``config.json`` + ``model.safetensors`` that HF ``from_pretrained`` loads (atomic)."""
        from models.bert.hf_io import save_pretrained

        save_pretrained(self, directory)


class BertModel(BertPreTrainedModel):
    """The bare encoder: ``last_hidden_state`` (B, T, H) and ``pooler_output`` (B, H).

    ``attention_mask`` (B, T) is 1 for real tokens and 0 for padding; ``token_type_ids`` (B, T)
    are the segment ids (0 for sentence A, 1 for B). ``output_attentions`` returns the (B, A, T, T)
    weights of every layer and ``output_hidden_states`` the L + 1 hidden states, for plots.

    ``skip_padding=True`` runs the token-wise layers on the real tokens only (see ``Packing``):
    the same numbers at every real position, zeros at the padding, and much less work for a
    batch of sentences of mixed lengths. (The default keeps HF's values at padded positions.)

    BERT's successors (book §§ 4.4–4.6) are this model with other parts: ``embeddings_class``,
    ``encoder_class`` and ``pooler_class`` name them (RoBERTa's positions, ALBERT's shared layers),
    and ``embed`` is where the input representation is made (ELECTRA projects it from E to H).
    """

    embeddings_class = BertEmbeddings
    encoder_class = BertEncoder
    pooler_class = BertPooler

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, dtype=None, generator=None,
                 initialize: bool = True):
        super().__init__(config)
        self.embeddings = self.embeddings_class(config, dtype)
        self.encoder = self.encoder_class(config, dtype)
        self.pooler = self.pooler_class(config, dtype) if add_pooling_layer else None
        if initialize:
            self.init_weights(generator)

    def embed(self, ids: np.ndarray, types: np.ndarray, packing: Packing | None) -> Tensor:
        """The input representation the encoder reads: (B, T, H), or (N, H) packed."""
        return self.embeddings(ids, types, packing)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions: bool = False,
                output_hidden_states: bool = False, skip_padding: bool = False) -> ModelOutput:
        ids, types, key_mask = check_inputs(self.config, input_ids, attention_mask, token_type_ids,
                                            type(self).__name__)
        packing = Packing(key_mask[:, 0, 0]) if skip_padding and key_mask is not None else None
        hidden = self.embed(ids, types, packing)  # (B, T, H), or (N, H) packed
        hidden, all_hidden, all_weights = self.encoder(hidden, key_mask, output_attentions, output_hidden_states,
                                                       packing)
        if packing is not None:
            hidden = packing.pad(hidden)  # (N, H) -> (B, T, H), zeros at the padding
        out = ModelOutput(last_hidden_state=hidden,
                          pooler_output=self.pooler(hidden) if self.pooler is not None else None)
        if output_hidden_states:
            out["hidden_states"] = tuple(all_hidden)
        if output_attentions:
            out["attentions"] = tuple(all_weights)
        return out


def mean_pooling(last_hidden_state: Tensor, attention_mask) -> Tensor:
    """Sentence embedding of Sentence-BERT (Reimers & Gurevych 2019): the mean of the token vectors
    over the real tokens,  e = Σ_t m_t h_t / Σ_t m_t   (B, H)."""
    mask = np.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
    mask = mask.astype(last_hidden_state.dtype)[:, :, None]  # (B, T, 1)
    counts = np.maximum(mask.sum(axis=1), 1e-9)  # (B, 1), HF's clamp
    return (last_hidden_state * mask).sum(axis=1) / counts  # (B, H)


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(‖x‖₂, eps) row-wise (torch.nn.functional.normalize)."""
    norm = (x * x).sum(axis=-1, keepdims=True).sqrt()  # (B, 1)
    return x / minigrad.maximum(norm, eps)
