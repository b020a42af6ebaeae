"""Learning-rate schedules: warm-up and decay of ``group["lr"]`` over the training steps.

As in PyTorch, a scheduler is created after its optimizer and ``scheduler.step()`` is called once
after every ``optimizer.step()``. Creating it already sets the lr for the first optimizer step
(``last_epoch = 0``); the k-th ``scheduler.step()`` sets the lr for optimizer step k + 1.
Each scheduler computes its lr in closed form from ``base_lrs`` (each group's ``initial_lr``)
and ``last_epoch``, so resuming from ``state_dict()`` continues exactly.
"""
from __future__ import annotations

import functools
import math
import types
from numbers import Integral

from minigrad.optim.optimizer import Optimizer, check_number


def _check_int(owner: str, name: str, value, low: int) -> int:
    """``value`` as an int, or a clear error unless it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{owner}: invalid {name}={value!r} (expected {name} >= {low})")
    return int(value)


def _real(owner: str, name: str, value) -> float:
    """``value`` as a float after ``check_number`` (a non-negative real)."""
    check_number(owner, name, value)
    return float(value)


class LRScheduler:
    """Base class: subclasses implement ``lr_at(base_lr, epoch)`` (or ``get_lr()``)."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        _check_int(name, "last_epoch", last_epoch, low=-1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(f"{name}: param_groups[{i}] has no 'initial_lr' although last_epoch="
                                   f"{last_epoch}; resume by loading the optimizer's state_dict first")
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The lr of every group at ``self.last_epoch``."""
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def step(self) -> None:
        """Advance one step and write the new lr into every parameter group."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lrs set by the last ``step()`` (one per parameter group)."""
        return list(self._last_lr)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Every attribute but the optimizer and callables (ints, floats, lists: JSON-friendly)."""
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state_dict: dict) -> None:
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or "last_epoch" not in state_dict:
            raise ValueError(f"{name}: expected a dict from state_dict() with a 'last_epoch' key, got "
                             f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}")
        n_groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):
            if key in state_dict and len(state_dict[key]) != n_groups:
                raise ValueError(f"{name}: saved {key} has {len(state_dict[key])} entries, "
                                 f"the optimizer has {n_groups} parameter groups")
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``; ``lr_lambda`` is one function or one per group.

    The functions are not saved by ``state_dict()`` (they are code, not state); a callable object's
    attributes are, as in PyTorch.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"LambdaLR: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        n_groups = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n_groups
        if len(lambdas) != n_groups:
            raise ValueError(f"LambdaLR: expected {n_groups} lr_lambdas (one per parameter group), "
                             f"got {len(lambdas)}")
        for fn in lambdas:
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda must be callable, got {type(fn).__name__}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr * fn(self.last_epoch) for base_lr, fn in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict:
        state = {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}
        # plain functions and lambdas -> None; callable objects -> a copy of their attributes
        state["lr_lambdas"] = [None if _is_function(fn) else dict(vars(fn)) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None) or [None] * len(self.lr_lambdas)
        super().load_state_dict(state)
        for fn, attrs in zip(self.lr_lambdas, saved):
            if attrs is not None:
                vars(fn).update(attrs)


def _is_function(fn) -> bool:
    """Plain functions, lambdas, methods and partials carry no state worth saving."""
    return isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                           functools.partial)) or not hasattr(fn, "__dict__")


class LinearWarmupDecay(LRScheduler):
    """BERT's schedule (Devlin et al. 2019): linear warm-up from 0 to lr, then linear decay to 0.

        factor(s) = s / W                            for s < W
        factor(s) = max(0, (T - s) / max(1, T - W))  otherwise,      lr = base_lr * factor(s)

    with W = ``num_warmup_steps`` and T = ``num_training_steps``; equal to
    ``transformers.get_linear_schedule_with_warmup``.
    """

    def __init__(self, optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int,
                 last_epoch: int = -1):
        _check_int("LinearWarmupDecay", "num_warmup_steps", num_warmup_steps, low=0)
        _check_int("LinearWarmupDecay", "num_training_steps", num_training_steps, low=1)
        if num_warmup_steps > num_training_steps:
            raise ValueError(f"LinearWarmupDecay: num_warmup_steps={num_warmup_steps} exceeds "
                             f"num_training_steps={num_training_steps}")
        self.num_warmup_steps = num_warmup_steps
        self.num_training_steps = num_training_steps
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        warmup, total = self.num_warmup_steps, self.num_training_steps
        if epoch < warmup:
            return base_lr * (float(epoch) / float(max(1, warmup)))
        return base_lr * max(0.0, float(total - epoch) / float(max(1, total - warmup)))


def get_linear_schedule_with_warmup(optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int,
                                    last_epoch: int = -1) -> LinearWarmupDecay:
    """Hugging Face's name for ``LinearWarmupDecay`` (the BERT fine-tuning schedule)."""
    return LinearWarmupDecay(optimizer, num_warmup_steps, num_training_steps, last_epoch)


class NoamLR(LRScheduler):
    """The Transformer's schedule (Vaswani et al. 2017, eq. 3), "Noam" after Noam Shazeer:

        lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)

    a linear warm-up for ``warmup_steps`` steps, then decay as 1/sqrt(step). ``step`` counts
    optimizer steps from 1 (the paper's step_num; step = last_epoch + 1). The lr is absolute, as in
    the paper: the optimizer's own lr is ignored, ``factor`` scales the schedule. (The Annotated
    Transformer gets the same numbers with ``LambdaLR`` on an optimizer with lr=1, except that it
    uses step 1 twice.)
    """

    def __init__(self, optimizer: Optimizer, d_model: int, warmup_steps: int, factor: float = 1.0,
                 last_epoch: int = -1):
        _check_int("NoamLR", "d_model", d_model, low=1)
        _check_int("NoamLR", "warmup_steps", warmup_steps, low=1)
        check_number("NoamLR", "factor", factor)
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.factor = float(factor)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        step = epoch + 1
        return self.factor * self.d_model**-0.5 * min(step**-0.5, step * self.warmup_steps**-1.5)


class StepLR(LRScheduler):
    """Step decay: ``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _check_int("StepLR", "step_size", step_size, low=1)
        self.gamma = _real("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing (Loshchilov & Hutter 2017, SGDR without restarts):

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, low=1)
        self.eta_min = _real("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
