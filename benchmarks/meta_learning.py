"""Meta-learning benchmark (chapter 5): minigrad vs PyTorch CPU in one process, same threads, medians.

    python -m benchmarks.meta_learning [--threads 2] [--repeats 5] [--quick]   (--quick: 3 repeats, no adapt=encoder row)

1. a **second-order MAML meta-step**: the small BiLSTM + self-attention classifier
   (``models.meta_learning.maml.SMALL_ENCODER``: embeddings 64, BiLSTM 32 each way, 4 hops;
   WordPiece vocabulary 30,522), a meta-batch of 4 tasks, each 5 inner SGD steps on its 2 × 5
   support reviews differentiated through (``create_graph=True`` in both libraries), the loss
   of the adapted weights on 2 × 27 queries, the meta-gradient, Adam. Target ratio ≤ 1.0. Twice:
   the inner loop adapting the attention and the head (``adapt="top"``, the recipe's default)
   and adapting the BiLSTM too (``adapt="encoder"``: second order through the recurrence). With
   ``top`` both compute the support's BiLSTM states once per task, not once per inner step.
2. an **Induction Network episode step** with the book's sizes (embeddings 300, BiLSTM 128, 64
   hops, routing 256 × 256, relation h = 100): 10 support + 54 query reviews, forward, MSE,
   backward, Adam — against a torch port of the same module. Target ratio ≤ 1.0.

Reviews are random ids with lengths 20 … T (T = 64 for MAML, 128 for the episode), the same
for both; the torch ports (``models/meta_learning/torch_port.py``, checked equal to ours by
``tests/test_meta_learning.py``) run the BiLSTM on ``pack_padded_sequence``, as ours skips the
padding. Both start from our weights and the first losses are checked to agree. Timings are printed, never asserted.
"""
from benchmarks.common import compare_row, median_time, parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0], default_repeats=5) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from models.data.arsc import EncodedTexts  # noqa: E402
from models.meta_learning import (MAML, EncoderConfig, EpisodeBatch, InductionConfig, InductionNetwork,  # noqa: E402
                                  MAMLConfig)
from models.meta_learning.maml import SMALL_ENCODER  # noqa: E402
from models.meta_learning.torch_port import (load_ours, torch_classifier_class, torch_induction_class,  # noqa: E402
                                             torch_maml_loss)

TASKS, INNER_STEPS, SHOTS, QUERIES = 4, 5, 5, 27


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def random_texts(rng, n: int, vocab: int, low: int, high: int) -> EncodedTexts:
    lengths = rng.integers(low, high + 1, n)
    lengths[0] = high  # the batch is as long as its longest review
    ids = np.zeros((n, high), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, vocab, length)
    return EncodedTexts(ids, (np.arange(high)[None, :] < lengths[:, None]).astype(np.int64))


def random_episode(rng, vocab: int, longest: int, n_way: int = 2) -> EpisodeBatch:
    return EpisodeBatch("random", n_way, random_texts(rng, n_way * SHOTS, vocab, 20, longest),
                        np.repeat(np.arange(n_way), SHOTS), random_texts(rng, n_way * QUERIES, vocab, 20, longest),
                        np.repeat(np.arange(n_way), QUERIES))


# ----------------------------------------------------------------------------------------------
# benchmarks
# ----------------------------------------------------------------------------------------------
def bench_maml(torch, repeats: int, adapt: str) -> dict:
    config = MAMLConfig(SMALL_ENCODER, inner_steps=INNER_STEPS, inner_lr=0.1, adapt=adapt)
    ours = MAML(config, seed=0)
    frozen = [n for n, _ in ours.learner.named_parameters() if n not in ours.adapted_names()]
    ref = torch_classifier_class(torch)(config.encoder, config.n_way, torch.float32)
    load_ours(torch, ref, ours.learner)
    rng = np.random.default_rng(0)
    tasks = [random_episode(rng, config.encoder.vocab_size, 64) for _ in range(TASKS)]
    opt_ours = minigrad.optim.Adam(ours.parameters(), lr=1e-3)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)

    def step_ours():
        opt_ours.zero_grad()
        for task in tasks:
            loss = ours.episode_loss(task)[0] * (1.0 / TASKS)
            loss.backward()
        opt_ours.step()
        return loss

    def step_ref():
        opt_ref.zero_grad()
        for task in tasks:
            loss = torch_maml_loss(torch, ref, task, INNER_STEPS, 0.1, frozen,
                                   support_states_once=adapt == "top") / TASKS
            loss.backward()
        opt_ref.step()
        return loss

    first = float(ours.episode_loss(tasks[-1])[0].item()), float(torch_maml_loss(torch, ref, tasks[-1], INNER_STEPS,
                                                                                   0.1, frozen).item())
    assert abs(first[0] - first[1]) < 1e-4, f"MAML: the first losses differ: {first}"
    mem = peak_memory_mib(step_ours), peak_memory_mib(step_ref)
    return compare_row(f"MAML 2nd-order meta-step, adapt={adapt} ({TASKS} tasks x {INNER_STEPS} inner steps)",
                       median_time(step_ours, repeats, warmup=1), median_time(step_ref, repeats, warmup=1),
                       "<= 1.0", *mem)


def bench_induction(torch, repeats: int) -> dict:
    config = InductionConfig()
    ours = InductionNetwork(config, seed=0)
    ref = torch_induction_class(torch)(config, torch.float32)
    load_ours(torch, ref, ours)
    episode = random_episode(np.random.default_rng(1), config.encoder.vocab_size, 128)
    joined_ids = np.concatenate([episode.support.ids, episode.query.ids])
    joined_lengths = torch.from_numpy(np.concatenate([episode.support.lengths, episode.query.lengths]))
    one_hot = torch.from_numpy(np.eye(2, dtype=np.float32)[episode.query_labels])
    opt_ours = minigrad.optim.Adam(ours.parameters(), lr=1e-4)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-4)

    def step_ours():
        opt_ours.zero_grad()
        loss = ours.episode_loss(episode)[0]
        loss.backward()
        opt_ours.step()
        return loss

    def loss_ref():
        return ((ref(torch.from_numpy(joined_ids), joined_lengths, 2, 2 * SHOTS) - one_hot) ** 2).mean()

    def step_ref():
        opt_ref.zero_grad()
        loss = loss_ref()
        loss.backward()
        opt_ref.step()
        return loss

    first = float(ours.episode_loss(episode)[0].item()), loss_ref().item()
    assert abs(first[0] - first[1]) < 1e-5, f"Induction Network: the first losses differ: {first}"
    mem = peak_memory_mib(step_ours), peak_memory_mib(step_ref)
    return compare_row("Induction Network episode step (64 reviews, T <= 128)", median_time(step_ours, repeats, warmup=1),
                       median_time(step_ref, repeats, warmup=1), "<= 1.0", *mem)


def main() -> None:
    import sys

    import torch

    # --quick leaves out the slowest row: second order through the BiLSTM recurrence
    cases = [lambda: bench_maml(torch, ARGS.repeats, "top")]
    cases += [] if ARGS.quick else [lambda: bench_maml(torch, ARGS.repeats, "encoder")]
    cases += [lambda: bench_induction(torch, ARGS.repeats)]
    rows = []
    for case in cases:
        rows.append(case())
        print(f"done: {rows[-1]['benchmark']}: ratio {rows[-1]['ratio']}", file=sys.stderr, flush=True)
    print_table(f"meta-learning, minigrad vs torch {torch.__version__} ({ARGS.threads} threads, median of "
                f"{ARGS.repeats})", rows, ["benchmark", "minigrad ms", "torch ms", "ratio", "target",
                                           "peak MiB (mg / torch)"])


if __name__ == "__main__":
    main()
