"""minigrad.optim: optimizers and learning-rate schedules, with PyTorch's names and update rules.

    opt = minigrad.optim.AdamW(model.parameters(), lr=5e-5)
    sched = minigrad.optim.lr_scheduler.get_linear_schedule_with_warmup(opt, 100, 1000)
    for batch in data:
        opt.zero_grad(); loss(batch).backward(); opt.step(); sched.step()
"""
from minigrad.optim import lr_scheduler
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearWarmupDecay,
    LRScheduler,
    NoamLR,
    StepLR,
    get_linear_schedule_with_warmup,
)
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "LRScheduler", "LambdaLR",
    "LinearWarmupDecay", "get_linear_schedule_with_warmup", "NoamLR", "StepLR", "CosineAnnealingLR",
]
