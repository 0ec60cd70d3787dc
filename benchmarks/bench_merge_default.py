"""The default data-aware merge (sequential refit, every training input up to 2,048) against the old one-shot
default and group-L1 pruning; ``--fine-tune``; ``--max-drop`` beside ``shrink``'s float model (issue 28).

Subjects (scikit-learn's digits, seeded split: 1438 training, 359 held-out samples):

- ``residual``: the residual digits CNN of ``bench_merge_coupled.py`` (width 32, 30 epochs of Adam 1e-3);
- ``mlp``: the 64-256-256-10 ReLU MLP of ``bench_shrink.py`` (15 epochs);
- ``lstm``: each digit read as 8 time steps of 8 pixels by an LSTM(128) and a softmax Dense (30 epochs), for the
  ``--max-drop`` rows (a recurrent model).

Rows, on the residual CNN at each ``--ratios`` share of every channel group, no fine-tuning:

- ``default``: :func:`weightkit.compress.merge.merge_by_data` as it now runs by default;
- ``one-shot (old default)``: ``refit=False, samples=1000``, the previous default;
- ``group-L1``: ``bench_merge_coupled.group_l1`` (DepGraph's criterion, no compensation).

Then at ``--fine-tune-ratio``: ``default + fine-tune`` (:func:`weightkit.compress.shrink.fine_tune_merged`,
``--fine-tune`` epochs, labels mixed in, early-stopped on the validation half of the held-out split after
``--patience`` epochs without a better score) against ``group-L1 + fine-tune`` (the same function on the pruned
model), for each ``--fine-tune`` epochs, ``--mixup`` (mixtures of pairs of training inputs added per epoch, 0: none),
``--schedule`` and ``--patience`` given. And ``merge --max-drop``
(:func:`weightkit.compress.shrink.guided_merge`) on both subjects beside ``shrink``'s merged float
model (:func:`weightkit.compress.shrink.shrink_model`, ``fine_tune_epochs=0``, ``quantize_reserve=0``,
so the whole budget goes to merging; it chooses on the same validation half).

Accuracies: ``held-out`` on all 359 samples (rows that read no held-out data), ``test half`` on the
179 that no choice of ``--max-drop`` / ``--fine-tune`` / ``shrink`` read
(:func:`weightkit.compress.shrink.split_held_out`, drawn as ``shrink`` draws its test split).

Measured 2026-12-07 06:07 UTC with ``--budget-only`` (shared 2-core machine, load about 2): ``merge --max-drop
1`` and ``shrink``'s float model choose the same model on all three subjects: MLP 6,120 and 6,120 parameters
(test half 0.9553, original 0.9721), residual CNN 25,298 and 25,298 (0.9888, original 1.0000), LSTM 71,434 ->
41,290 and 41,290 (0.9553, original 0.9665).

Run: ``python benchmarks/bench_merge_default.py`` (``--quick``: residual only, 30% and 50%, no shrink;
``--budget-only``: the ``--max-drop`` / ``shrink`` rows alone; ``--fine-tune-only``: the original and the
fine-tune rows alone, e.g. ``--fine-tune-only --fine-tune 10 30 --mixup 0 1``).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.bench_merge_coupled import build_residual_cnn, group_l1
from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.datasets import Dataset, load_data
from weightkit.compress.merge import merge_by_data
from weightkit.compress.shrink import fine_tune_merged, guided_merge, shrink_model, split_held_out
from weightkit.demo.examples import build_wide_mlp


def _accuracy(model, x, y):
    return float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())


def _timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def _train(keras, model, data, epochs, seed):
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    path = f"/tmp/bench_merge_default_{model.name}.keras"
    model.save(path)
    return keras.saving.load_model(path)


def build_digits_lstm(keras, units=128):
    """A digits classifier that reads each 8x8 image as 8 time steps of 8 pixels: LSTM(units) -> Dense(10)."""
    inputs = keras.Input((8, 8), name="rows")
    hidden = keras.layers.LSTM(units, name="lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="classes")(hidden), name="lstm")


def _fine_tune_rows(args, residual, images, row):
    """``default + fine-tune`` and ``group-L1 + fine-tune`` at ``--fine-tune-ratio``, once per ``--fine-tune``,
    ``--mixup``, ``--schedule`` and ``--patience``."""
    ratio = args.fine_tune_ratio
    (x_val, y_val), _, _ = split_held_out(images.x_test, images.y_test, seed=args.seed,
                                          n_train=len(images.x_train))
    variants = [(e, m, c, p) for e in args.fine_tune for m in args.mixup for c in args.schedule for p in args.patience]
    for epochs, mixup, schedule, patience in variants:
        for name, make in (("default", lambda: merge_by_data(residual, images, ratio=ratio, seed=args.seed)[0]),
                           ("group-L1", lambda: group_l1(residual, ratio))):
            def tuned():
                tuned_model, _ = fine_tune_merged(residual, make(), images.x_train, x_val, y_train=images.y_train,
                                                  y_validation=y_val, epochs=epochs, seed=args.seed,
                                                  mixup=mixup, schedule=schedule, patience=patience)
                return tuned_model

            small, s = _timed(tuned)
            what = (f"mixup {mixup:g}" + ("" if schedule == "constant" else f", {schedule}") +
                    ("" if len(args.patience) == 1 else f", patience {patience}"))
            row("residual", f"{ratio:.0%} {name} + fine-tune {epochs} ({what})", small, images, s, test_only=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--fine-tune-ratio", type=float, default=0.5)
    parser.add_argument("--fine-tune", type=int, nargs="+", default=[10],
                        help="most epochs of fine_tune_merged, one pair of fine-tune rows per value")
    parser.add_argument("--mixup", type=float, nargs="+", default=[0.0],
                        help="fine_tune_merged's mixup (mixtures per training input each epoch; 0: none), one "
                             "pair of fine-tune rows per value")
    parser.add_argument("--schedule", choices=["constant", "cosine"], nargs="+", default=["constant"],
                        help="fine_tune_merged's learning-rate schedule, one pair of fine-tune rows per value")
    parser.add_argument("--patience", type=int, nargs="+", default=[4],
                        help="fine_tune_merged's early-stopping patience, one pair of fine-tune rows per value")
    parser.add_argument("--fine-tune-only", action="store_true",
                        help="the original and the fine-tune rows alone (no --ratios rows, no --max-drop)")
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="residual CNN only, no shrink comparison")
    parser.add_argument("--budget-only", action="store_true",
                        help="only merge --max-drop beside shrink's float model, on both subjects")
    args = parser.parse_args()

    keras = import_keras()
    digits = load_data("sklearn:digits", seed=0)
    images = Dataset(digits.x_train.reshape(-1, 8, 8, 1), digits.y_train, digits.x_test.reshape(-1, 8, 8, 1),
                     digits.y_test, "sklearn:digits", "classification")
    rows = []

    def row(subject, method, model, data, seconds, test_only=False):
        (_, _), (x_test, y_test), _ = split_held_out(data.x_test, data.y_test, seed=args.seed,
                                                     n_train=len(data.x_train))
        held = None if test_only else _accuracy(model, data.x_test, data.y_test)
        rows.append((subject, method, model.count_params(), held, _accuracy(model, x_test, y_test), seconds))
        print(f"  {subject:<10} {method:<34} {model.count_params():>7,} params  held-out "
              f"{'–' if held is None else f'{held:.4f}'}  test half {rows[-1][4]:.4f}  {seconds:.1f} s", flush=True)

    (residual, train_s) = _timed(lambda: _train(keras, build_residual_cnn(32), images, 30, args.seed))
    print(f"residual CNN trained in {train_s:.0f} s", flush=True)
    row("residual", "original", residual, images, 0.0)
    for ratio in ([] if args.budget_only or args.fine_tune_only else args.ratios):
        small, s = _timed(lambda: merge_by_data(residual, images, ratio=ratio, seed=args.seed)[0])
        row("residual", f"{ratio:.0%} default (refit, all)", small, images, s)
        small, s = _timed(lambda: merge_by_data(residual, images, ratio=ratio, seed=args.seed, refit=False,
                                                samples=1000)[0])
        row("residual", f"{ratio:.0%} one-shot (old default)", small, images, s)
        small, s = _timed(lambda: group_l1(residual, ratio))
        row("residual", f"{ratio:.0%} group-L1", small, images, s)
    if not args.budget_only:
        _fine_tune_rows(args, residual, images, row)
    subjects = [] if args.fine_tune_only else [("residual", residual, images)]
    if not (args.quick or args.fine_tune_only):
        mlp, _ = _timed(lambda: _train(keras, build_wide_mlp((256, 256), weight_decay=0, name="mlp"), digits, 15,
                                       args.seed))
        row("mlp", "original", mlp, digits, 0.0)
        subjects.insert(0, ("mlp", mlp, digits))
        sequences = Dataset(digits.x_train.reshape(-1, 8, 8), digits.y_train, digits.x_test.reshape(-1, 8, 8),
                            digits.y_test, "sklearn:digits", "classification")
        lstm, _ = _timed(lambda: _train(keras, build_digits_lstm(keras), sequences, 30, args.seed))
        row("lstm", "original", lstm, sequences, 0.0)
        subjects.append(("lstm", lstm, sequences))
    for subject, model, data in subjects:
        small, s = _timed(lambda: guided_merge(model, data, max_drop=args.max_drop, seed=args.seed)[0])
        row(subject, f"merge --max-drop {args.max_drop:g}", small, data, s, test_only=True)
        if not args.quick:
            outcome, s = _timed(lambda: shrink_model(model, data, max_drop=args.max_drop, fine_tune_epochs=0,
                                                     modes=["float32"], quantize_reserve=0.0, seed=args.seed))
            row(subject, f"shrink --max-drop {args.max_drop:g} (float model)", outcome.model, data, s,
                test_only=True)
    print("\n| subject | method | parameters | held-out accuracy (359) | test half (179) | seconds |")
    print("|---|---|---|---|---|---|")
    for subject, method, params, held, test, seconds in rows:
        print(f"| {subject} | {method} | {params:,} | {'–' if held is None else f'{held:.4f}'} | {test:.4f} | "
              f"{seconds:.1f} |")


if __name__ == "__main__":
    main()
