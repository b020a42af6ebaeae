"""Recipe ``python -m models mlp-demo``: an MLP learns two interleaved spirals with minigrad (autograd + Adam).

    python -m models mlp-demo [--steps 300] [--seed 0]

It prints the loss falling and the final accuracy. Everything it uses — Tensor, backward,
nn.Linear, optim.Adam — is plain NumPy underneath and readable in ``minigrad/``.
"""
from __future__ import annotations

import argparse

import numpy as np

import minigrad
from minigrad import nn, optim


def two_spirals(n_per_class: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points on two interleaved spirals, labelled 0 and 1."""
    t = np.sqrt(rng.random(n_per_class)) * 3 * np.pi  # angle, denser near the centre
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)  # (N, 2)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class, np.int64), np.ones(n_per_class, np.int64)])
    return x.astype(np.float32), y


class MLP(nn.Module):
    def __init__(self, sizes: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = layer(x).tanh()
        return self.layers[-1](x)  # (N, classes) logits


def cross_entropy(logits, target):
    """−log softmax(logits)[target], averaged over the batch."""
    return -logits.log_softmax(-1).gather(1, target.reshape(-1, 1)).mean()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=300, help="training steps (full batch)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units per layer")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    for flag, value in (("--steps", args.steps), ("--hidden", args.hidden)):
        if value <= 0:  # a ValueError: the CLI prints it as one error line, exit status 2
            raise ValueError(f"mlp-demo recipe: {flag} must be positive, got {value}")
    minigrad.manual_seed(args.seed)
    x, y = two_spirals(500, 0.02, np.random.default_rng(args.seed))
    xt, yt = minigrad.Tensor(x), minigrad.Tensor(y)
    model = MLP([2, args.hidden, args.hidden, 2])
    opt = optim.Adam(model.parameters(), lr=args.lr)
    print(f"two spirals, {len(x)} points; MLP 2-{args.hidden}-{args.hidden}-2, Adam lr={args.lr}")
    for step in range(1, args.steps + 1):
        opt.zero_grad()
        loss = cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        if step == 1 or step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    with minigrad.no_grad():
        accuracy = float((model(xt).data.argmax(-1) == y).mean())
    print(f"training accuracy {accuracy:.3f}")
    return 0
