"""Neuron merging vs L1-norm neuron pruning at fixed budgets, without fine-tuning, on digits.

Subject: a deliberately wide 64-512-512-10 ReLU MLP (``analysis.examples.build_wide_mlp``) on
scikit-learn's digits (1437 training, 359 test samples, seeded split), trained with Adam (lr 1e-3,
batch 32) and L2(3e-3) kernel weight decay on the hidden layers for ``--epochs`` epochs (weight
decay is what makes realistic redundancy; see NOTES.md).

For each ratio F in 30/50/70/80%, ``round(F · 512)`` neurons of *each* hidden layer are removed:

- ``merge (METRIC)``: ``compress.merge_redundant(model, ratio=F, metric=METRIC)`` (greedy, most
  similar pairs first, each removed neuron's outgoing weights folded into its twin with α);
- ``L1 prune``: drop the neurons with the smallest L1 norm of their incoming weights, no
  compensation (``compress.apply_relations`` with ``Relation.prune``).

No fine-tuning. Reported: test accuracy, agreement with the original model's predictions and the
hidden layers' parameters (hidden1 + hidden2 kernels and biases).

Run: ``python benchmarks/bench_merge.py`` (about 2 minutes on 2 cores).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from analysis._tf import import_keras  # noqa: E402
from analysis.data import load_data  # noqa: E402
from analysis.examples import build_wide_mlp, train_example  # noqa: E402
from compress import Relation, apply_relations, merge_redundant  # noqa: E402
from compress.merge_report import compare_models  # noqa: E402

keras = import_keras()
HIDDEN = ("hidden1", "hidden2")


def hidden_params(model):
    return int(sum(model.get_layer(name).count_params() for name in HIDDEN))


def l1_prune(model, ratio):
    """Remove the smallest-L1-norm neurons of each hidden layer, without compensation.

    Layers are pruned in order on the original weights (pruning needs no updated rows).
    """
    relations = {}
    for name in HIDDEN:
        kernel = model.get_layer(name).get_weights()[0]  # (fan_in, units)
        n = kernel.shape[1]
        count = int(round(ratio * n))
        order = np.argsort(np.abs(kernel).sum(axis=0), kind="stable")
        relations[name] = Relation.prune(n, order[:count])
    return apply_relations(model, relations)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.8])
    parser.add_argument("--metrics", nargs="+", default=["pearson", "cosine", "mad"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_data("sklearn:digits", seed=0)
    start = time.perf_counter()
    model, accuracy = train_example(build_wide_mlp((args.width, args.width)), data, epochs=args.epochs,
                                    seed=args.seed)
    train_time = time.perf_counter() - start
    base_params = hidden_params(model)
    print(f"subject: 64-{args.width}-{args.width}-10 ReLU MLP, Adam 1e-3, batch 32, L2(3e-3) on hidden kernels, "
          f"{args.epochs} epochs ({train_time:.0f} s); test accuracy {accuracy:.4f} on {len(data.x_test)} digits; "
          f"hidden-layer params {base_params:,}")
    reference = model.predict(data.x_test, verbose=0)
    rows = []
    for ratio in args.ratios:
        candidates = {}
        for metric in args.metrics:
            t0 = time.perf_counter()
            merged, report = merge_redundant(model, ratio=ratio, metric=metric, layers=list(HIDDEN))
            candidates[f"merge ({metric})"] = (merged, time.perf_counter() - t0)
        t0 = time.perf_counter()
        candidates["L1 prune"] = (l1_prune(model, ratio), time.perf_counter() - t0)
        for method, (small, seconds) in candidates.items():
            result = compare_models(model, small, data.x_test, data.y_test)
            distance = 0.5 * np.abs(small.predict(data.x_test, verbose=0) - reference).sum(axis=1).mean()
            rows.append((ratio, method, result["accuracy_after"], result["agreement"], hidden_params(small),
                         seconds, distance))
    header = f"{'removed':>8} {'method':<16} {'accuracy':>9} {'Δ points':>9} {'agreement':>10} " \
             f"{'TV dist':>8} {'hidden params':>14} {'fewer':>7} {'time s':>7}"
    print(header)
    print("-" * len(header))
    print(f"{'0%':>8} {'original':<16} {accuracy:>9.4f} {0:>+9.2f} {1:>10.4f} {0:>8.4f} {base_params:>14,} "
          f"{0:>7.1%} {'':>7}")
    for ratio, method, acc, agreement, params, seconds, distance in rows:
        print(f"{ratio:>8.0%} {method:<16} {acc:>9.4f} {100 * (acc - accuracy):>+9.2f} {agreement:>10.4f} "
              f"{distance:>8.4f} {params:>14,} {1 - params / base_params:>7.1%} {seconds:>7.1f}")
    print("(TV dist: mean total-variation distance between the original's and the smaller model's class "
          "probabilities on the test set; one test sample is 0.28 accuracy points)")
    print()
    table = {(r, m): (a, g, d) for r, m, a, g, _, _, d in rows}
    for metric in args.metrics:
        method = f"merge ({metric})"
        strict = [ratio for ratio in args.ratios if table[ratio, method][0] > table[ratio, "L1 prune"][0]]
        tied = [ratio for ratio in args.ratios if table[ratio, method][0] == table[ratio, "L1 prune"][0]]
        closer = [ratio for ratio in args.ratios if table[ratio, method][2] < table[ratio, "L1 prune"][2]]
        within = [(ratio, params) for ratio, m, acc, _, params, _, _ in rows
                  if m == method and acc >= accuracy - 0.005 and params <= 0.5 * base_params]
        best = max(within, key=lambda item: item[0]) if within else None
        print(f"{method}: higher accuracy than L1 pruning at {_pct(strict)}, equal at {_pct(tied)}; closer to the "
              f"original (TV dist) at {_pct(closer)} of {_pct(args.ratios)}; ≥50% fewer hidden params within "
              "0.5 points: " + (f"yes, up to {best[0]:.0%} removed ({1 - best[1] / base_params:.1%} fewer)"
                                if best else "no"))


def _pct(ratios):
    return "[" + ", ".join(f"{r:.0%}" for r in ratios) + "]" if ratios else "none"


if __name__ == "__main__":
    main()
