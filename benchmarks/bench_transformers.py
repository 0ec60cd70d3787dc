"""Attention heads and FFN neurons removed without fine-tuning: weightkit's merge by data against magnitude and
Michel et al.'s importance pruning (issue 27, "Tests and benchmark"; ``shrink --max-drop 1`` on the same models is
``bench_transformers_shrink.py``).

Subjects: the test zoo's transformers (tests/zoo_transformers.py), trained, saved and reloaded in a temporary
folder of this run:

- ``ViT``: scikit-learn digits as 16 patches of 2x2, two pre-norm blocks of MultiHeadAttention(4 heads, key_dim 8)
  and a Dense FFN 32-64-32 (12 epochs; held-out: the 360 test images);
- ``text``: int32 tokens, one block of MultiHeadAttention(2 heads, key_dim 16) and a Dense FFN 32-64-32, on the
  synthetic "is token 1 before token 2?" task (10 epochs; held-out: the 300 test sequences).

Rows, each on the reloaded original, no fine-tuning. Two allocations of the removed heads, every method given the
same one (the table prints the heads kept per layer):

- ``uniform``: the same number of heads removed in every attention layer (``round(ratio * heads)`` as weightkit's
  merge counts them);
- ``global``: ``round(ratio * all heads)`` heads of the model, at most all but one of a layer, wherever the method
  ranks them lowest: weightkit's ``merge_heads_by_data(..., allocation="global")`` (one head at a time, the one whose
  removal with its least-squares rebuild moves the model's outputs on the calibration inputs least, by KL); L1 by
  the raw norms (every layer's heads have the same shapes); Michel by the importance normalized by its L2 norm in
  each layer, as the paper does for global pruning. Only for a model with more than one attention layer (with one,
  it is the uniform row).

- ``merge by data``: heads: :func:`weightkit.compress.merge.merge_neurons` (``mode="data"``, ``layers`` = the
  attention layers), which runs :func:`weightkit.compress.merge.heads.merge_heads_by_data` (the removed heads'
  contribution rebuilt in the kept heads' value and output projections by alternating least squares); global:
  ``merge_heads_by_data`` with ``allocation="global"`` on the same calibration inputs; ``merge by data, output rows
  only``: ``merge_heads_by_data(..., refit_values=False)``, the rebuild in the output projection alone (the method
  before the value refit); FFN:
  :func:`weightkit.compress.merge.merge_by_data` on the first FFN layers (removed neurons rebuilt in the
  down-projection);
- ``L1 magnitude``: heads with the smallest L1 norm of their query, key and value kernel slices ``[:, h, :]`` and
  output kernel slice ``[h]`` (biases left out), sliced out with :func:`weightkit.compress.merge.remove_heads`
  and no compensation; FFN neurons with the smallest
  L1 norm of their incoming kernel column (as ``bench_merge.py``), pruned with no compensation;
- ``Michel importance``: Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?", eq. 2:
  ``I_h = E_x |dL(x)/dxi_h|`` with a head mask ``xi`` multiplying each head's attention output (the input of the
  output projection, ``(batch, T, heads, value_dim)``, as returned by Keras'
  ``MultiHeadAttention._compute_attention``), at ``xi = 1``, ``L`` the per-example cross-entropy on the training
  labels, the absolute value taken per example and averaged over the training inputs. It is computed exactly so:
  a copy of the model whose MultiHeadAttention layers multiply that output by a ``(batch, heads)`` mask, and
  ``tf.GradientTape`` for ``dL/dxi``. The least important heads are sliced out. (The paper's per-layer L2
  normalization changes nothing in the uniform rows, where heads are ranked within their layer; the global rows
  apply it.)

Columns: held-out accuracy, agreement (argmax) with the original on the held-out split, parameters after, wall
seconds (scoring, fitting and rebuilding).

Run: ``python benchmarks/bench_transformers.py`` (``--quick``: fewer epochs and calibration inputs).
"""

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.zoo, from the repository

import numpy as np  # noqa: E402

from weightkit.analysis._tf import import_keras, import_tensorflow  # noqa: E402

#: ``(label, zoo builder, epochs, quick epochs)``.
SUBJECTS = (("ViT", "vit_digits", 12, 6), ("text", "text_attention", 10, 10))
#: ``--wide``: the zoo's ViT form at width 128 (4 heads of key_dim 32, FFN 256; about 270k parameters), keyword
#: options of ``tests.zoo_transformers.vit_digits``.
WIDE_VIT = {"width": 128, "heads": 4, "key_dim": 32, "name": "vit_digits_wide"}
WIDE_SUBJECT = ("wide ViT", "vit_digits", 12, 6)
HEAD_RATIOS = (0.25, 0.5)
ALLOCATIONS = ("uniform", "global")
FFN_RATIO = 0.5


def _layers_of(model, class_name):
    return [layer for layer in model.layers if type(layer).__name__ == class_name]


def ffn_pairs(model):
    """``[(first FFN Dense, its down-projection)]`` by the zoo's names (``b0_ffn1`` -> ``b0_ffn2``)."""
    return [(layer.name, layer.name[:-1] + "2") for layer in model.layers if layer.name.endswith("_ffn1")]


def head_l1(layer):
    """L1 norm of each head's query, key and value kernel slices and its output kernel slice, shape (heads,)."""
    norms = sum(np.abs(getattr(layer, f"_{p}_dense").kernel.numpy()).sum(axis=(0, 2))
                for p in ("query", "key", "value"))
    return norms + np.abs(layer._output_dense.kernel.numpy()).sum(axis=(1, 2))


def head_importance(model, x, y, batch_size=128):
    """Michel et al.'s head importance ``E_x |dL(x)/dxi_h|`` of every MultiHeadAttention, by layer name."""
    keras, tf = import_keras(), import_tensorflow()
    masks = {}

    class HeadMasked(keras.layers.MultiHeadAttention):
        """MultiHeadAttention whose heads' attention outputs are multiplied by ``masks[self.name]``."""

        def _compute_attention(self, *args, **kwargs):
            output, scores = super()._compute_attention(*args, **kwargs)
            return output * masks[self.name][:, None, :, None], scores

    def clone(layer):
        cls = HeadMasked if isinstance(layer, keras.layers.MultiHeadAttention) else layer.__class__
        return cls.from_config(layer.get_config())

    masked = keras.models.clone_model(model, clone_function=clone)
    masked.set_weights(model.get_weights())
    attention = {layer.name: layer.num_heads for layer in _layers_of(model, "MultiHeadAttention")}
    total = {name: np.zeros(heads) for name, heads in attention.items()}
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with tf.GradientTape() as tape:
            for name, heads in attention.items():
                masks[name] = tf.ones((len(xb), heads))
                tape.watch(masks[name])
            probs = masked(xb, training=False)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(yb, probs))
        grads = tape.gradient(loss, [masks[name] for name in attention])  # per example: (batch, heads)
        for name, grad in zip(attention, grads):
            total[name] += np.abs(grad.numpy()).sum(axis=0)
    return {name: value / len(x) for name, value in total.items()}


def lowest_heads(scores, ratio, allocation, normalize=False):
    """``{layer: heads removed}``: the lowest-scoring ``round(ratio * heads)`` of each layer (uniform) or
    ``round(ratio * all heads)`` of the model, at most all but one per layer (global; scores divided by their
    layer's L2 norm first when ``normalize``)."""
    from weightkit.compress.merge.heads import heads_removed

    if allocation == "uniform":
        return {name: np.argsort(s, kind="stable")[:heads_removed(ratio, len(s))].tolist()
                for name, s in scores.items()}
    ranked = sorted((float(s[h] / np.linalg.norm(s) if normalize else s[h]), index, h)
                    for index, s in enumerate(scores.values()) for h in range(len(s)))
    total = min(int(round(ratio * sum(len(s) for s in scores.values()))), sum(len(s) - 1 for s in scores.values()))
    removed = {name: [] for name in scores}
    names = list(scores)
    for _, index, head in ranked:
        name = names[index]
        if sum(len(r) for r in removed.values()) < total and len(removed[name]) < len(scores[name]) - 1:
            removed[name].append(head)
    return removed


def prune_heads(model, removed):
    """Slice out the ``removed`` heads (``{layer: heads}``), no compensation."""
    from weightkit.compress.merge import remove_heads

    return remove_heads(model, {name: [h for h in range(model.get_layer(name).num_heads) if h not in heads]
                                for name, heads in removed.items()})


def prune_ffn_l1(model, ratio):
    """Drop the smallest-L1 (incoming kernel column) neurons of every first FFN layer, no compensation."""
    from weightkit.compress.merge.applying.math import Relation
    from weightkit.compress.merge.by_weights import apply_relations

    relations = {}
    for first, _ in ffn_pairs(model):
        kernel = model.get_layer(first).get_weights()[0]
        order = np.argsort(np.abs(kernel).sum(axis=0), kind="stable")
        relations[first] = Relation.prune(kernel.shape[1], order[:int(round(ratio * kernel.shape[1]))])
    return apply_relations(model, relations)


def merge_heads_by_data(model, data, ratio, samples, allocation, refit_values=True):
    """weightkit's merge by data of every attention layer's heads only: ``merge_neurons(mode="data")`` (uniform,
    its defaults), else ``merge_heads_by_data`` on the same calibration inputs (global, or output rows only)."""
    from weightkit.compress.merge import merge_heads_by_data as by_data, merge_neurons

    names = [layer.name for layer in _layers_of(model, "MultiHeadAttention")]
    if allocation == "uniform" and refit_values:
        return merge_neurons(model, "data", data, ratio=ratio, layers=names, samples=samples)[0]
    merged, entries, _ = by_data(model, data.x_train, ratio=ratio, samples=min(samples, len(data.x_train)),
                                 allocation=allocation, refit_values=refit_values)
    if allocation == "global":
        print(f"    {entries[0].notes[-1]}")
    return merged


def heads_kept(model):
    return "/".join(str(layer.num_heads) for layer in _layers_of(model, "MultiHeadAttention"))


def _timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def vit_at_width(spec):
    """``(subject, builder options)`` of the zoo's ViT form at ``spec``: ``"W"`` (width W, 4 heads of key_dim W/4,
    FFN 2W) or ``"WxK"`` (key_dim K), for ``--widths``."""
    width, _, key_dim = spec.partition("x")
    width, key_dim = int(width), int(key_dim) if key_dim else int(width) // 4
    label = f"ViT w{width}" + (f"x{key_dim}" if key_dim != width // 4 else "")
    return (label, "vit_digits", 12, 6), {"width": width, "heads": 4, "key_dim": key_dim,
                                          "name": f"vit_digits_w{width}x{key_dim}"}


def trained_subjects(folder, args, trained):
    """Yield ``(label, model, data)`` for each subject ``args`` asks for (``--wide``, ``--only-wide``, ``--widths``,
    ``--seed``, ``--quick``),
    trained, saved and reloaded in ``folder``; a line on each is printed and appended to ``trained``."""
    from tests.zoo_transformers import TRANSFORMER_TASKS, TRANSFORMER_ZOO

    seed = {"seed": getattr(args, "seed", 0)}
    widths = [vit_at_width(spec) for spec in getattr(args, "widths", None) or []]
    subjects = ([] if args.only_wide or widths else [(subject, {}) for subject in SUBJECTS])
    subjects += [(WIDE_SUBJECT, WIDE_VIT)] if args.wide or args.only_wide else []
    for (label, name, epochs, quick_epochs), options in subjects + widths:
        options = dict(options, **seed)
        model, seconds = _timed(lambda: TRANSFORMER_ZOO[name](folder, epochs=quick_epochs if args.quick else epochs,
                                                              **options))
        trained.append(f"{label}: {model.count_params():,} parameters, trained and reloaded in {seconds:.0f} s")
        print(trained[-1], flush=True)
        yield label, model, TRANSFORMER_TASKS[name]()


def compare_subject(label, model, data, args):
    """Table rows ``(subject, what, method, heads kept, params, accuracy, agreement, seconds)`` for one model."""
    from weightkit.compress.merge import merge_by_data
    from weightkit.compress.merge.heads import heads_removed

    x, y = data.x_test, data.y_test
    reference = model.predict(x, verbose=0).argmax(axis=1)
    rows = []

    def row(what, method, small, seconds, allocation="—"):
        predicted = small.predict(x, verbose=0).argmax(axis=1)
        rows.append((label, what, allocation, method, heads_kept(small), small.count_params(),
                     float((predicted == y).mean()), float((predicted == reference).mean()), seconds))
        print(f"  {label} {what} {allocation} {method}: heads {rows[-1][4]}, {rows[-1][5]:,} parameters, accuracy "
              f"{rows[-1][6]:.4f}, agreement {rows[-1][7]:.4f}, {seconds:.1f} s", flush=True)

    row("original", "—", model, 0.0)
    calib = np.arange(min(len(data.x_train), args.samples))
    l1, l1_s = _timed(lambda: {layer.name: head_l1(layer) for layer in _layers_of(model, "MultiHeadAttention")})
    michel, michel_s = _timed(lambda: head_importance(model, data.x_train[calib], data.y_train[calib]))
    for name in michel:
        print(f"  {label} {name}: L1 {np.round(l1[name], 2).tolist()}  Michel {np.round(michel[name], 4).tolist()}")
    allocations = ALLOCATIONS if len(l1) > 1 else ALLOCATIONS[:1]
    for ratio, allocation in [(r, a) for r in getattr(args, "ratios", HEAD_RATIOS) for a in allocations]:
        what = f"heads {ratio:.0%}"
        if not any(heads_removed(ratio, len(scores)) for scores in l1.values()):
            rows.append((label, what, allocation, f"none: round({ratio:g} x {heads_kept(model)} heads) = 0",
                         heads_kept(model), None, None, None, 0.0))
            continue
        small, s = _timed(lambda: merge_heads_by_data(model, data, ratio, args.samples, allocation))
        row(what, "merge by data", small, s, allocation)
        small, s = _timed(lambda: merge_heads_by_data(model, data, ratio, args.samples, allocation, False))
        row(what, "merge by data, output rows only", small, s, allocation)
        small, s = _timed(lambda: prune_heads(model, lowest_heads(l1, ratio, allocation)))
        row(what, "L1 magnitude", small, s + l1_s, allocation)
        small, s = _timed(lambda: prune_heads(model, lowest_heads(michel, ratio, allocation, normalize=True)))
        row(what, "Michel importance", small, s + michel_s, allocation)
    if getattr(args, "no_ffn", False):
        return rows
    what = f"FFN {FFN_RATIO:.0%}"
    ffn = [first for first, _ in ffn_pairs(model)]
    small, s = _timed(lambda: merge_by_data(model, data, ratio=FFN_RATIO, layers=ffn, samples=args.samples)[0])
    row(what, "merge by data", small, s)
    small, s = _timed(lambda: prune_ffn_l1(model, FFN_RATIO))
    row(what, "L1 magnitude", small, s)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer ViT epochs, 300 calibration inputs")
    parser.add_argument("--samples", type=int, default=None, help="calibration / importance inputs (default all)")
    parser.add_argument("--wide", action="store_true", help="add the zoo's ViT form at width 128 (key_dim 32)")
    parser.add_argument("--only-wide", action="store_true", help="the wide ViT alone")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the subjects (initial weights, order)")
    parser.add_argument("--widths", nargs="+", metavar="W[xK]",
                        help="instead: the zoo's ViT form at these widths (4 heads of key_dim W/4, or K)")
    parser.add_argument("--ratios", nargs="+", type=float, default=HEAD_RATIOS, help="heads removed (default 0.25 0.5)")
    parser.add_argument("--no-ffn", action="store_true", help="leave out the FFN rows")
    args = parser.parse_args()
    if args.samples is None:
        args.samples = 300 if args.quick else 2048

    from tests.zoo_transformers import TRANSFORMER_ZOO  # noqa: F401 (fail before any training)
    from weightkit.compress.merge import merge_neurons, remove_heads  # noqa: F401 (fail before any training)

    load = os.getloadavg()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"# Heads and FFN neurons removed without fine-tuning ({stamp} UTC, {platform.machine()}, {os.cpu_count()} cores, load average at start {load[0]:.2f} / "
          f"{load[1]:.2f} / {load[2]:.2f}{', --quick' if args.quick else ''})\n", flush=True)
    rows, trained = [], []
    with tempfile.TemporaryDirectory(prefix="bench-transformers-") as folder:
        for label, model, data in trained_subjects(folder, args, trained):
            rows += compare_subject(label, model, data, args)
    print("\n| subject | removed | allocation | method | heads kept | parameters | held-out accuracy | drop (points) | "
          "agreement | seconds |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    original = {row[0]: row[6] for row in rows if row[1] == "original"}
    for label, what, allocation, method, heads, params, accuracy, agreement, seconds in rows:
        cells = ["—"] * 4 if params is None else [f"{params:,}", f"{accuracy:.4f}",
                                                  f"{100 * (original[label] - accuracy):+.2f}", f"{agreement:.4f}"]
        print(f"| {label} | {what} | {allocation} | {method} | {heads} | {' | '.join(cells)} | {seconds:.1f} |")
    print("\n" + "; ".join(trained))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
