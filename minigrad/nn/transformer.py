"""The Transformer (Vaswani et al., 2017, "Attention Is All You Need"; book ch. 3) with
torch.nn's constructor arguments, submodule names and masks, so a torch ``state_dict`` loads by
name (``encoder.layers.0.self_attn.in_proj_weight``, ``…linear1.weight``, ``…norm1.bias``).

Every block is a stack of residual sub-layers, one implementation for encoder and decoder:

    Post-LN (the paper, default):   x ← LayerNorm(x + Dropout(Sublayer(x)))
    Pre-LN  (``norm_first=True``):  x ← x + Dropout(Sublayer(LayerNorm(x)))   (Xiong et al., 2020)

    encoder layer: self-attention, feed-forward
    decoder layer: masked self-attention, cross-attention over the encoder memory, feed-forward
    feed-forward:  FFN(x) = W₂ · Dropout(activation(W₁ x + b₁)) + b₂

Masks follow ``MultiheadAttention`` (bool True = ignore, float = added). Incremental decoding:
pass ``cache=decoder.new_cache()`` (one ``LayerCache`` per layer) and feed the new target
tokens each step; self-attention keys/values accumulate, the memory's keys/values for
cross-attention are projected once. The result equals one causal pass over the whole sequence.
"""
from __future__ import annotations

import copy

import numpy as np

from minigrad.nn import init
from minigrad.nn.attention import KVCache, MultiheadAttention
from minigrad.nn.dropout import Dropout
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module, ModuleList
from minigrad.nn.normalization import LayerNorm
from minigrad.tensor import Tensor

_ACTIVATIONS = {"relu": lambda x: x.relu(), "gelu": lambda x: x.gelu()}


class LayerCache:
    """Decoding state of one layer: the self-attention ``KVCache`` (grows by the new tokens
    each step) and the cross-attention one (``static``: the memory's keys and values)."""

    def __init__(self):
        self.self_attn = KVCache()
        self.cross_attn = KVCache(static=True)

    def __len__(self) -> int:
        return len(self.self_attn)

    def reorder_(self, index) -> None:
        """Keep batch entries ``index`` (beam search), in place."""
        self.self_attn.reorder_(index)
        self.cross_attn.reorder_(index)


def _activation(fn: str, activation):
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{fn}: activation should be 'relu' or 'gelu' (or a callable), got {activation!r}")
        return _ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"{fn}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


class _TransformerLayer(Module):
    """What encoder and decoder layers share: attention, feed-forward, norms, residuals."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                 norm_first, bias, cross_attention: bool, dtype, generator):
        super().__init__()
        fn = type(self).__name__
        if d_model <= 0 or nhead <= 0 or dim_feedforward <= 0:
            raise ValueError(f"{fn}: d_model, nhead and dim_feedforward must be positive, "
                             f"got {d_model}, {nhead}, {dim_feedforward}")
        mha = dict(dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype, generator=generator)
        self.self_attn = MultiheadAttention(d_model, nhead, **mha)
        if cross_attention:
            self.multihead_attn = MultiheadAttention(d_model, nhead, **mha)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, generator=generator)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, generator=generator)
        self.norm_first = bool(norm_first)
        self.batch_first = bool(batch_first)
        for i in range(1, 4 if cross_attention else 3):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for i in range(1, 4 if cross_attention else 3):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(fn, activation)

    def _residual(self, x: Tensor, sublayer, norm: Module) -> Tensor:
        """x + Sublayer(LN(x)) with ``norm_first``, else LN(x + Sublayer(x))."""
        if self.norm_first:
            return x + sublayer(norm(x))
        return norm(x + sublayer(x))

    def _attention_block(self, attn: MultiheadAttention, drop: Dropout, kv, mask, padding, is_causal, cache):
        """Dropout(MultiHead(x, kv, kv)); ``kv=None`` means self-attention."""
        def block(x):
            source = x if kv is None else kv
            out = attn(x, source, source, attn_mask=mask, key_padding_mask=padding, need_weights=False,
                       is_causal=is_causal, cache=cache)[0]
            return drop(out)
        return block

    def _ff_block(self, drop: Dropout):
        """FFN(x) = Dropout(W₂ Dropout(act(W₁ x + b₁)) + b₂), position-wise (§3.3)."""
        def block(x):
            h = self.activation(self.linear1(x))  # (…, ff)
            return drop(self.linear2(self.dropout(h)))  # (…, d)
        return block

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}, batch_first={self.batch_first}"


def _check_input(fn: str, x, d_model: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise ValueError(f"{fn}: {name} must be (L, N, {d_model}), (N, L, {d_model}) with batch_first, or "
                         f"unbatched (L, {d_model}); got shape {x.shape}")


class TransformerEncoderLayer(_TransformerLayer):
    """torch.nn.TransformerEncoderLayer: self-attention, then feed-forward, each a residual
    sub-layer (see the module docstring).

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False, cache=None)``;
    ``cache`` (a ``LayerCache`` or ``KVCache``) serves decoder-only (GPT-style) models built
    from encoder layers with a causal mask.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype=None, generator=None):
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias, False, dtype, generator)

    def forward(self, src: Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False,
                cache=None) -> Tensor:
        _check_input(type(self).__name__, src, self.self_attn.embed_dim, "src")
        kv_cache = cache.self_attn if isinstance(cache, LayerCache) else cache
        x = self._residual(src, self._attention_block(self.self_attn, self.dropout1, None, src_mask,
                                                      src_key_padding_mask, is_causal, kv_cache), self.norm1)
        return self._residual(x, self._ff_block(self.dropout2), self.norm2)


class TransformerDecoderLayer(_TransformerLayer):
    """torch.nn.TransformerDecoderLayer: masked self-attention, cross-attention over the
    encoder ``memory``, feed-forward — each a residual sub-layer.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False, cache=None)``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype=None, generator=None):
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias, True, dtype, generator)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False,
                cache: LayerCache | None = None) -> Tensor:
        fn = type(self).__name__
        _check_input(fn, tgt, self.self_attn.embed_dim, "tgt")
        _check_input(fn, memory, self.self_attn.embed_dim, "memory")
        if cache is not None and not isinstance(cache, LayerCache):
            raise TypeError(f"{fn}: cache must be a LayerCache (see TransformerDecoder.new_cache), "
                            f"got {type(cache).__name__}")
        self_cache, cross_cache = (cache.self_attn, cache.cross_attn) if cache is not None else (None, None)
        x = self._residual(tgt, self._attention_block(self.self_attn, self.dropout1, None, tgt_mask,
                                                      tgt_key_padding_mask, tgt_is_causal, self_cache), self.norm1)
        x = self._residual(x, self._attention_block(self.multihead_attn, self.dropout2, memory, memory_mask,
                                                    memory_key_padding_mask, memory_is_causal, cross_cache),
                           self.norm2)
        return self._residual(x, self._ff_block(self.dropout3), self.norm3)


def _clones(fn: str, layer: Module, num_layers: int) -> ModuleList:
    """``num_layers`` independent deep copies of ``layer`` (torch's ``_get_clones``)."""
    if not isinstance(num_layers, (int, np.integer)) or num_layers < 0:
        raise ValueError(f"{fn}: num_layers must be a non-negative integer, got {num_layers!r}")
    return ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])


def _layer_caches(fn: str, cache, n: int):
    if cache is None:
        return [None] * n
    if len(cache) != n:
        raise ValueError(f"{fn}: cache has {len(cache)} entries for {n} layers (use new_cache())")
    return cache


class _LayerStack(Module):
    """``num_layers`` deep copies of one layer, then an optional ``norm``; ``new_cache()`` gives the
    per-layer state for incremental decoding (``cache=``)."""

    def __init__(self, layer: Module, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = _clones(type(self).__name__, layer, num_layers)
        self.num_layers = int(num_layers)
        self.norm = norm

    def new_cache(self) -> list[LayerCache]:
        return [LayerCache() for _ in range(self.num_layers)]


class TransformerEncoder(_LayerStack):
    """torch.nn.TransformerEncoder: ``num_layers`` copies of ``encoder_layer``, then ``norm``.

    ``enable_nested_tensor`` and ``mask_check`` are accepted for torch compatibility (no effect).
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__(encoder_layer, num_layers, norm)

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None, is_causal: bool | None = None,
                cache: list[LayerCache] | None = None) -> Tensor:
        x = src
        for layer, c in zip(self.layers, _layer_caches(type(self).__name__, cache, self.num_layers)):
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal),
                      cache=c)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(_LayerStack):
    """torch.nn.TransformerDecoder: ``num_layers`` copies of ``decoder_layer``, then ``norm``."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__(decoder_layer, num_layers, norm)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False,
                cache: list[LayerCache] | None = None) -> Tensor:
        x = tgt
        for layer, c in zip(self.layers, _layer_caches(type(self).__name__, cache, self.num_layers)):
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal, cache=c)
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """torch.nn.Transformer: encoder (``num_encoder_layers`` layers + LayerNorm) and decoder
    (``num_decoder_layers`` layers + LayerNorm); every weight matrix Xavier-uniform, as torch.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None,
    tgt_is_causal=None, memory_is_causal=False)`` → (T, N, d_model) (or batch first).
    ``encode`` / ``decode`` run the halves separately (``decode(..., cache=…)`` for generation).
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", custom_encoder: Module | None = None, custom_decoder: Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, dtype=None, generator=None):
        super().__init__()
        common = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                      layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                      dtype=dtype, generator=generator)

        def stack(stack_cls, layer_cls, num_layers):  # N layers, then a final LayerNorm
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            return stack_cls(layer_cls(d_model, nhead, **common), num_layers, norm)

        self.encoder = (custom_encoder if custom_encoder is not None
                        else stack(TransformerEncoder, TransformerEncoderLayer, num_encoder_layers))
        self.decoder = (custom_decoder if custom_decoder is not None
                        else stack(TransformerDecoder, TransformerDecoderLayer, num_decoder_layers))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)
        self._reset_parameters(generator)

    def _reset_parameters(self, generator=None) -> None:
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p, generator=generator)

    def forward(self, src: Tensor, tgt: Tensor, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        fn = "Transformer"
        _check_input(fn, src, self.d_model, "src")
        _check_input(fn, tgt, self.d_model, "tgt")
        if src.ndim != tgt.ndim:
            raise ValueError(f"{fn}: src {src.shape} and tgt {tgt.shape} must both be batched or both unbatched")
        if src.ndim == 3:
            b = 0 if self.batch_first else 1
            if src.shape[b] != tgt.shape[b]:
                raise ValueError(f"{fn}: the batch number of src and tgt must be equal, "
                                 f"got {src.shape} and {tgt.shape}")
        memory = self.encode(src, src_mask, src_key_padding_mask, src_is_causal)
        return self.decode(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                           tgt_is_causal, memory_is_causal)

    def encode(self, src: Tensor, src_mask=None, src_key_padding_mask=None, src_is_causal=None) -> Tensor:
        return self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)

    def decode(self, tgt: Tensor, memory: Tensor, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
               memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal: bool = False,
               cache: list[LayerCache] | None = None) -> Tensor:
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal, cache=cache)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, dtype=np.float32) -> Tensor:
        """(sz, sz) float mask: −inf above the diagonal (future positions), 0 elsewhere (torch's)."""
        if not isinstance(sz, (int, np.integer)) or sz < 0:
            raise ValueError(f"generate_square_subsequent_mask: sz must be a non-negative integer, got {sz!r}")
        return Tensor(np.triu(np.full((sz, sz), -np.inf), k=1).astype(dtype))
