"""Decorrelation regularizer vs L2 and OrthogonalRegularizer on digits: accuracy and redundancy.

Subject: a 64-256-256-10 ReLU MLP on scikit-learn's digits (1437 training, 359 test samples,
seeded split). A normally trained MLP of this size has almost no pair of neurons with weight
r >= 0.9, so a comparison on it measures little. The redundancy that occurs in practice comes
from weight decay: the same MLP trained with L2(3e-3) has dozens of redundant pairs. So every
regularizer is compared *on top of* that weight decay, in two protocols:

- ``scratch``: train from the same seed for ``--epochs`` epochs with L2 only, L2 + Orthogonal,
  L2 + ours (and, for reference, with no regularizer at all);
- ``finetune``: start from the L2-trained network (the redundant baseline) and train
  ``--finetune-epochs`` more epochs with each regularizer (what ``weightkit retrain`` does).

Orthogonal and ours are used at the same factor (``--strength``, "matched strength": both
penalties lie in [0, 1]) on the two hidden layers; the output layer is not regularized by
either (as in ``weightkit retrain``). ``--sweep`` adds rows for other factors of both.

Run: ``python benchmarks/bench_regularizer.py`` (about 5 minutes on 2 cores).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.datasets import load_data
from weightkit.compress.decorrelate import CombinedRegularizer, DecorrelationRegularizer, redundancy_summary

keras = import_keras()

HIDDEN = ("hidden1", "hidden2")
WEIGHT_DECAY = 3e-3


def build(regularizer=None, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,))
    x = inputs
    for name in HIDDEN:
        x = keras.layers.Dense(256, activation="relu", kernel_regularizer=regularizer() if regularizer else None,
                               name=name)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs)


def regularizers(strength):
    """Name -> factory of the hidden layers' kernel regularizer (None: no regularizer)."""
    l2 = lambda: keras.regularizers.L2(WEIGHT_DECAY)  # noqa: E731
    return {
        "none": None,
        "L2 only": l2,
        f"L2 + Orthogonal({strength:g})": lambda: CombinedRegularizer(
            [l2(), keras.regularizers.OrthogonalRegularizer(strength, mode="columns")]),
        f"L2 + ours({strength:g})": lambda: CombinedRegularizer([l2(), DecorrelationRegularizer(strength)]),
    }


def train(model, data, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    return model


def measure(model, data):
    predictions = model.predict(data.x_test, batch_size=512, verbose=0)
    accuracy = float(np.mean(predictions.argmax(1) == data.y_test))
    summaries = [redundancy_summary(keras.ops.convert_to_numpy(model.get_layer(n).kernel).T) for n in HIDDEN]
    return {"accuracy": accuracy,
            "mean_abs_r": [s["mean_abs_r"] for s in summaries],
            "pairs": [s["redundant_pairs"] for s in summaries]}


def row(name, m, seconds):
    r1, r2 = m["mean_abs_r"]
    p1, p2 = m["pairs"]
    return (f"| {name:<26} | {100 * m['accuracy']:6.2f} | {r1:.3f} / {r2:.3f} | {(r1 + r2) / 2:.3f} | "
            f"{p1:4d} / {p2:4d} | {p1 + p2:5d} | {seconds:5.1f} |")


HEADER = ("| regularizer (hidden layers) | test acc % | mean abs r h1 / h2 | mean | pairs r>=0.9 h1 / h2 | pairs "
          "| fit s |\n|---|---:|---:|---:|---:|---:|---:|")


def verdict(base, ours, orth):
    pair_cut = 1 - sum(ours["pairs"]) / max(1, sum(base["pairs"]))
    r_cut = 1 - np.mean(ours["mean_abs_r"]) / np.mean(base["mean_abs_r"])
    lost = 100 * (base["accuracy"] - ours["accuracy"])
    lines = [
        f"  redundant pairs cut vs L2 only: {100 * pair_cut:.1f}% (goal >= 90%): {'met' if pair_cut >= 0.9 else 'MISSED'}",
        f"  mean |r| cut vs L2 only: {100 * r_cut:.1f}% (goal >= 50%): {'met' if r_cut >= 0.5 else 'MISSED'}",
        f"  accuracy lost vs L2 only: {lost:+.2f} points (goal <= 0.5): {'met' if lost <= 0.5 else 'MISSED'}",
        f"  pairs ours {sum(ours['pairs'])} vs Orthogonal {sum(orth['pairs'])}, accuracy ours "
        f"{100 * ours['accuracy']:.2f}% vs Orthogonal {100 * orth['accuracy']:.2f}%: "
        f"{'met' if sum(ours['pairs']) < sum(orth['pairs']) and ours['accuracy'] >= orth['accuracy'] else 'MISSED'}"
        f" (fewer pairs at equal or better accuracy)",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--sweep", type=float, nargs="*", default=[],
                        help="Extra factors for Orthogonal and ours (fine-tune protocol).")
    parser.add_argument("--protocols", nargs="+", default=["scratch", "finetune"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_data("sklearn:digits", seed=0)
    print(f"digits: {len(data.x_train)} train / {len(data.x_test)} test; 64-256-256-10 ReLU MLP, Adam 1e-3, "
          f"batch 32, seed {args.seed}; 1 test sample = {100 / len(data.x_test):.2f} points")
    factories = regularizers(args.strength)
    names = list(factories)

    if "scratch" in args.protocols:
        print(f"\n## Protocol scratch: {args.epochs} epochs from the same initialization\n\n{HEADER}")
        results = {}
        for name in names:
            start = time.perf_counter()
            model = train(build(factories[name], args.seed), data, args.epochs, args.seed)
            results[name] = measure(model, data)
            print(row(name, results[name], time.perf_counter() - start), flush=True)
        print(verdict(results["L2 only"], results[names[3]], results[names[2]]))

    if "finetune" in args.protocols:
        start = time.perf_counter()
        base = train(build(factories["L2 only"], args.seed), data, args.epochs, args.seed)
        base_weights = base.get_weights()
        base_seconds = time.perf_counter() - start
        print(f"\n## Protocol finetune: the L2-trained network ({args.epochs} epochs), then "
              f"{args.finetune_epochs} more epochs with each regularizer\n\n{HEADER}")
        print(row(f"start (L2, {args.epochs} ep)", measure(base, data), base_seconds))
        results = {}
        extra = []
        for factor in args.sweep:
            more = regularizers(factor)
            extra += [(k, more[k]) for k in list(more)[2:]]
        for name, factory in [(n, factories[n]) for n in names] + extra:
            start = time.perf_counter()
            model = build(factory, args.seed)
            model.set_weights(base_weights)
            model = train(model, data, args.finetune_epochs, args.seed + 1)
            results[name] = measure(model, data)
            print(row(name, results[name], time.perf_counter() - start), flush=True)
        print(verdict(results["L2 only"], results[names[3]], results[names[2]]))


if __name__ == "__main__":
    main()
