"""minigrad: a small reverse-mode autograd over NumPy arrays, with PyTorch's names."""
from minigrad.tensor import (
    Function,
    Tensor,
    cat,
    chunk,
    concatenate,
    enable_grad,
    is_grad_enabled,
    matmul,
    maximum,
    minimum,
    no_grad,
    set_grad_enabled,
    split,
    stack,
    where,
)
from minigrad.autograd import backward, grad
from minigrad.random import (
    Generator,
    arange,
    default_generator,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    manual_seed,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from minigrad import functional, kernels
from minigrad.gradcheck import GradcheckError, gradcheck, gradgradcheck
from minigrad.serialization import load, load_checkpoint, save, save_checkpoint
from minigrad import nn, optim

float32 = "float32"
float64 = "float64"
int64 = "int64"

__version__ = "0.1.0"
