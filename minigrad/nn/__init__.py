"""``minigrad.nn``: Modules, Parameters, containers and initialisation (``torch.nn``'s names)."""
from minigrad.nn.parameter import Parameter
from minigrad.nn.module import Module, ModuleDict, ModuleList, Sequential
from minigrad.nn.linear import Identity, Linear
from minigrad.nn import init, utils

__all__ = ["Module", "Parameter", "ModuleList", "ModuleDict", "Sequential", "Linear", "Identity",
           "init", "utils"]
