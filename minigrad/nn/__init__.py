"""``minigrad.nn``: Modules, Parameters, containers and initialisation (``torch.nn``'s names)."""
from minigrad.nn.parameter import Parameter
from minigrad.nn.module import Module, ModuleDict, ModuleList, Sequential
from minigrad.nn.linear import Identity, Linear
from minigrad.nn.activation import (CELU, ELU, GELU, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, Mish, ReLU,
                                    ReLU6, Sigmoid, Softmax, Softplus, Softsign, Tanh)
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import (BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, KLDivLoss, L1Loss,
                                MSELoss, NLLLoss, SmoothL1Loss)
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.sparse import Embedding
from minigrad.nn.attention import AdditiveAttention, KVCache, LuongAttention, MultiheadAttention
from minigrad.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from minigrad.nn.transformer import (LayerCache, Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                                     TransformerEncoderLayer)
from minigrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from minigrad.nn import init, utils

__all__ = ["Module", "Parameter", "ModuleList", "ModuleDict", "Sequential", "Linear", "Identity",
           "Embedding", "LayerNorm", "Dropout", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax",
           "Softplus", "ELU", "CELU", "LeakyReLU", "Hardtanh", "ReLU6", "Hardswish", "Softsign", "Mish", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss",
           "KLDivLoss", "CosineEmbeddingLoss",
           "RNNBase", "RNN", "GRU", "LSTM", "RNNCellBase", "RNNCell", "GRUCell", "LSTMCell",
           "AdditiveAttention", "LuongAttention", "MultiheadAttention", "KVCache",
           "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "Transformer", "TransformerEncoder",
           "TransformerDecoder", "TransformerEncoderLayer", "TransformerDecoderLayer", "LayerCache",
           "init", "utils"]
