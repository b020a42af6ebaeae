"""Functional forms of the operations and layers (``minigrad.functional``, like ``torch.nn.functional``).

They sit below ``minigrad.nn``: each checks its arguments and calls an op or a kernel; the layers in
``minigrad.nn`` call them.
"""
from minigrad.functional.basic import (
    celu,
    dropout,
    elu,
    embedding,
    gelu,
    hardswish,
    hardtanh,
    leaky_relu,
    linear,
    log_softmax,
    mish,
    one_hot,
    pad,
    relu,
    relu6,
    sigmoid,
    softmax,
    softplus,
    softsign,
    tanh,
)
from minigrad.functional.normalization import layer_norm
from minigrad.functional.attention import causal_mask, masked_softmax, scaled_dot_product_attention
from minigrad.functional.losses import (
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softplus", "elu", "celu", "leaky_relu", "hardtanh", "relu6",
           "hardswish", "softsign", "mish", "softmax", "log_softmax", "linear", "dropout",
           "embedding", "pad", "one_hot", "layer_norm", "causal_mask", "masked_softmax",
           "scaled_dot_product_attention", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
           "binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss"]
