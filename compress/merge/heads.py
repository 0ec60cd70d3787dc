"""Merge attention heads: fewer heads in every MultiHeadAttention, by weights or by data.

A head is a unit of its own: it reads the layer's inputs through its query, key and value slices and
writes through its rows of the output projection (see :mod:`weightkit.compress.merge.applying.heads`).

- **By weights** (:func:`merge_heads_by_weights`): candidates come from the ``name/heads`` entry's
  similarity (Pearson, MAD or cosine, groups at the threshold or the most similar pairs for a ratio)
  between the heads' query, key and value weights (their incoming part: the output slice is what the
  fold changes). A candidate folds only when it is exact (:mod:`weightkit.compress.merge.applying.head_pairs`:
  the same attention form and values a linear map of its twin's); every other candidate stays, with
  its reason.
- **By data** (:func:`merge_heads_by_data`): each head's output is probed on calibration inputs
  (:mod:`weightkit.compress.merge.fitting.head_probe`), the heads to remove chosen greedily by the output
  error they leave and their contribution rebuilt in the kept heads' output rows by least squares
  (:mod:`weightkit.compress.merge.fitting.heads`), then in their value kernels and output rows together
  (:mod:`weightkit.compress.merge.fitting.head_values`, ``refit_values``). ``allocation="global"`` spreads
  the ratio over the model's heads by the model's output divergence
  (:mod:`weightkit.compress.merge.heads_global`). Layers are merged one after the other, each probed
  on the model with the earlier layers' heads already merged and fitted to the original model's layer
  output (a sequential refit: it rebuilds what the earlier merges changed too).

Both return ``(model, entries, skipped)``: the rebuilt model, one report entry ``name/heads`` per
attention layer (the merge report's own classes, heads counted as its neurons) and the attention
layers left alone with their reasons. :func:`weightkit.compress.merge.merge_neurons` runs them before
the neurons.
"""

import numpy as np

from weightkit.analysis.kinds.attention import head_rows
from weightkit.analysis.kinds.composites import tied_heads
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.model_analysis import analyze_rows
from weightkit.analysis.numeric.groups import DEFAULT_THRESHOLDS, find_groups
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.results import SkippedLayer
from weightkit.analysis.rows import NeuronRows, composite_leaves
from weightkit.compress.merge.applying.head_pairs import head_fold
from weightkit.compress.merge.applying.heads import cut_heads, remove_heads
from weightkit.compress.merge.applying.math import cosine_matrix
from weightkit.compress.merge.applying.rebuild import WeightState, find_layer, rebuild_model
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE
from weightkit.compress.merge.fitting.head_probe import head_output_moments
from weightkit.compress.merge.fitting.head_values import plan_value_refit
from weightkit.compress.merge.fitting.heads import plan_heads_fit
from weightkit.compress.merge.heads_global import HEAD_ALLOCATIONS, global_removals
from weightkit.compress.merge.reporting.heads import HeadsDataMerge, HeadsMerge

__all__ = ["GLOBAL_MAX_HEADS", "attention_targets", "auto_allocation", "heads_removed", "merge_heads_by_data",
           "merge_heads_by_weights"]

#: The most heads ``heads=True`` (the default, ``--heads auto``) spreads a ratio over globally: the global search
#: merges a model for every head at its first step, so it is for models of tens of heads, not hundreds.
GLOBAL_MAX_HEADS = 32

#: The largest ``heads · d_in`` whose value kernels the data merge refits (its moments are that squared).
MAX_VALUE_CHANNELS = 2048

#: The threshold of each metric when neither a threshold nor a ratio is given (as for neurons).
_DEFAULT_THRESHOLDS = dict(DEFAULT_THRESHOLDS, cosine=0.9)


def heads_removed(ratio, heads):
    """Heads a ``ratio`` removes from a layer of ``heads``: ``round(ratio · heads)``, as for neurons, at most all but one."""
    return int(min(heads - 1, round(float(ratio) * heads)))


def attention_targets(model, layers=None):
    """The attention layers whose heads can merge, and those left alone with their reasons.

    Parameters
    ----------
    model : keras.Model
    layers : list of str, default=None
        Only these (a layer name or its ``name/heads`` entry); None: every attention layer.

    Returns
    -------
    targets : list of keras.layers.Layer
        In model order.
    skipped : list of SkippedLayer
        Named ``name/heads``: one head only, a layer whose heads cannot be sliced, an attention
        layer inside a composite layer (keras-hub's TransformerEncoder) that weightkit cannot rebuild, or a
        composite's attention whose head size follows from its head count (keras-hub's Llama).
    """
    wanted = None if layers is None else {name.split("/heads")[0] for name in layers}
    targets, skipped = [], []
    for layer in walk_layers(model):
        kind = kind_for(layer)
        if wanted is not None and layer.name not in wanted:
            continue
        if kind is None:
            tied = tied_heads(layer)  # keras-hub's Llama: its head size follows from its head count
            if tied is not None:
                skipped.append(SkippedLayer(f"{layer.name}/{tied[0].name}/heads", type(tied[0]).__name__, tied[1]))
            for path, sub in composite_leaves(layer):
                if getattr(kind_for(sub), "merges_heads", False):
                    skipped.append(SkippedLayer(
                        f"{path}/heads", type(sub).__name__,
                        f"inside the composite layer {layer.name} ({type(layer).__name__}), whose own code builds "
                        "its attention from its config: weightkit cannot rebuild it with fewer heads; build the block "
                        "from keras.layers.MultiHeadAttention to merge its heads"))
            continue
        if not getattr(kind, "merges_heads", False):
            continue
        problem = kind.heads_problem(layer)
        if problem is None and int(layer.get_config()["num_heads"]) < 2:
            problem = "only one head: nothing to merge"
        if problem is not None:
            skipped.append(SkippedLayer(f"{layer.name}/heads", type(layer).__name__, problem))
        else:
            targets.append(layer)
    return targets, skipped


def _incoming_rows(arrays, include_bias):
    """Each head's query, key and value weights (and biases), shape (heads, fan_in): its row without the output slice."""
    rows, bias = head_rows(arrays)
    output = int(np.prod(np.shape(arrays["output_kernel"])[1:]))
    incoming = rows[:, :-output]
    if include_bias and bias is not None:
        incoming = np.concatenate([incoming, bias], axis=1)
    return incoming.astype(np.float32)


def _candidates(layer, arrays, metric, threshold, ratio, include_bias):
    """Candidate ``(keeper, removed)`` pairs: within each group (threshold), or every pair by similarity (ratio)."""
    rows = _incoming_rows(arrays, include_bias)
    entry = NeuronRows(f"{layer.name}/heads", layer.name, type(layer).__name__, rows, None, 0, 0)
    if ratio is None:
        threshold = _DEFAULT_THRESHOLDS[metric] if threshold is None else threshold
        if metric == "cosine":
            groups = find_groups(cosine_matrix(rows), "pearson", threshold)
        else:
            result = analyze_rows(entry, metric=metric, threshold=threshold, include_bias=False)
            groups = getattr(result, "groups", [])
        members = [sorted(int(m) for m in group) for group in groups]
        return [(group[0], other) for group in members for other in group[1:]]
    if metric == "cosine":
        matrix = cosine_matrix(rows)
    else:
        matrices = analyze_rows(entry, metric=metric, include_bias=False, keep_matrices=True).matrices
        matrix = matrices.pearson if metric == "pearson" else matrices.mad
    heads = rows.shape[0]
    pairs = [(i, j) for i in range(heads) for j in range(i + 1, heads)]
    return sorted(pairs, key=lambda p: -matrix[p] if metric != "mad" else matrix[p])


def _fold_layer(layer, metric, threshold, ratio, include_bias):
    """``(kept heads, output kernel update, LayerMerge)`` of one layer's exact folds."""
    arrays = kind_for(layer).layer_arrays(layer)
    heads = int(arrays["output_kernel"].shape[0])
    report = HeadsMerge(name=f"{layer.name}/heads", type=type(layer).__name__, activation="attention",
                        rule="same attention, linear values", consumers=[layer.name], neurons_before=heads,
                        neurons_after=heads)
    wanted = None if ratio is None else heads_removed(ratio, heads)
    report.requested = wanted
    removed, keepers, refused = {}, set(), {}
    for keeper, other in _candidates(layer, arrays, metric, threshold, ratio, include_bias):
        if wanted is not None and len(removed) >= wanted:
            break
        if keeper in removed or other in removed or (keeper in keepers and other in keepers):
            continue
        if other in keepers:  # a head that absorbed another stays
            keeper, other = other, keeper
        fold, reason = head_fold(arrays, keeper, other)
        if fold is None:
            refused.setdefault(other, (keeper, reason))
            continue
        removed[other] = fold
        keepers.add(keeper)
        refused.pop(other, None)
    kept = [h for h in range(heads) if h not in removed]
    kernel = np.asarray(arrays["output_kernel"], dtype=np.float64)
    update = np.zeros((len(kept),) + kernel.shape[1:])
    for fold in removed.values():
        update[kept.index(fold.keeper)] += np.tensordot(fold.value_map, kernel[fold.removed], axes=1)
    report.merges = [{"removed": f.removed, "keeper": f.keeper, "alpha": round(f.alpha, 6),
                      "residual": float(f"{max(f.form_difference, f.value_residual):.3g}"), "exact": True}
                     for f in sorted(removed.values(), key=lambda f: f.removed)]
    report.left_alone = [{"neuron": int(j), "keeper": int(k), "reason": r} for j, (k, r) in sorted(refused.items())
                         if j not in removed]
    if wanted is not None and len(removed) < wanted:
        report.notes.append(f"removed {len(removed)} of the {wanted} requested heads: only that many fold exactly "
                            "by weights (same attention, values a linear map of a kept head's); --mode data "
                            "rebuilds heads that are not duplicates")
    report.neurons_after = len(kept)
    if len(kept) < heads:
        report.notes.append(f"heads {heads} → {len(kept)} (key_dim and value_dim kept)")
    return kept, update, report


def merge_heads_by_weights(model, *, metric="pearson", threshold=None, ratio=None, layers=None, include_bias=True):
    """Fold every attention head that duplicates another (exactly) into it; a smaller model out.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    metric : {"pearson", "mad", "cosine"}, default="pearson"
        How candidates are found between the heads' query, key and value weights.
    threshold : float, default=None
        Try every pair in a group at this threshold (the metric's default when ``ratio`` is None too).
    ratio : float, default=None
        Instead: try the most similar pairs until ``round(ratio · heads)`` heads of each layer fold.
    layers : list of str, default=None
        Only these attention layers (``name`` or ``name/heads``).
    include_bias : bool, default=True
        Compare the heads with their query, key and value biases.

    Returns
    -------
    model : keras.Model
        Every attention layer with its folded heads gone (the input model when none folds).
    entries : list of HeadsMerge
        One per attention layer merged on, named ``name/heads``, heads as its neurons: ``merges``
        (``removed``, ``keeper``, ``alpha`` the value scale, ``exact``), ``left_alone`` with reasons.
    skipped : list of SkippedLayer

    Examples
    --------
    >>> smaller, entries, skipped = merge_heads_by_weights(model)                      # doctest: +SKIP
    >>> [(e.name, e.neurons_before, e.neurons_after) for e in entries]              # doctest: +SKIP
    [('b0_mha/heads', 4, 3)]
    """
    targets, skipped = attention_targets(model, layers)
    state, entries, changed = WeightState(model), [], False
    for layer in targets:
        kept, update, entry = _fold_layer(layer, metric, threshold, ratio, include_bias)
        entries.append(entry)
        if entry.removed:
            cut_heads(state, layer.name, kept, output_kernel_update=update)
            changed = True
    merged = rebuild_model(model, state) if changed else model
    _record_params(entries, model, merged)
    return merged, entries, skipped


def merge_heads_by_data(model, x, *, ratio=None, max_error=None, layers=None, samples=1000, seed=0,
                        ridge=DEFAULT_RIDGE, allocation="uniform", refit_values=True, progress=None):
    """Remove attention heads whose output the kept heads rebuild on calibration data; a smaller model out.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    x : ndarray or list of ndarray
        Calibration inputs (training data), as the model takes them.
    ratio : float in (0, 1), default=None
        Remove ``round(ratio · heads)`` heads of each attention layer (at most all but one); with
        ``allocation="global"``, ``round(ratio · all heads)`` heads of the model.
    max_error : float, default=None
        Instead: remove heads while at most this fraction of the layer's output variance is lost.
    layers : list of str, default=None
        Only these attention layers (``name`` or ``name/heads``).
    samples : int, default=1000
        Calibration inputs (seeded sample of ``x``); every query position of each is a row.
    seed : int, default=0
    ridge : float, default=1e-6
        Relative ridge of the least squares.
    allocation : {"uniform", "global"}, default="uniform"
        ``"uniform"``: each layer loses its share, the heads chosen greedily by the error they leave in
        the layer's output. ``"global"``: the model's share goes where it costs the least end to end:
        one head at a time, the heads of every layer are tried with their least-squares rebuild (and
        the later layers refitted; lazily after the first step) and the one whose removal moves the
        model's outputs on the calibration inputs the least (:func:`weightkit.compress.merge.fitting.head_choice.output_divergence`: KL
        for probabilities) is removed (:mod:`weightkit.compress.merge.heads_global`). Needs ``ratio``.
    refit_values : bool, default=True
        Rebuild the removed heads through the kept heads' value kernels as well as their output
        kernel rows (:mod:`weightkit.compress.merge.fitting.head_values`: alternating least squares on
        each head's attention applied to the value input); False: the output rows only. A layer whose
        ``heads · d_in`` exceeds 2048 gets the output rows only (the moments grow with its square).
    progress : callable, default=None
        Called as ``progress(done, total, name)``.

    Returns
    -------
    model : keras.Model
    entries : list of HeadsDataMerge
        One per attention layer probed, named ``name/heads``: ``removed`` (head, R² of its own
        contribution rebuilt from the kept heads), ``error`` (fraction of the variance of the original
        layer's output not rebuilt).
    skipped : list of SkippedLayer

    Notes
    -----
    The global choice builds and runs a merged model for every head at its first step; later steps
    re-measure candidates lazily, in the order of their last cost, until none left can do better
    (:mod:`weightkit.compress.merge.heads_global`): ``H`` merged models and then usually a few per step
    for ``H`` heads in all. Fine for a few layers of a few heads; slow for a model of hundreds.

    Examples
    --------
    >>> smaller, entries, skipped = merge_heads_by_data(model, dataset.x_train, ratio=0.25)   # doctest: +SKIP
    >>> smaller, entries, skipped = merge_heads_by_data(model, dataset.x_train, ratio=0.25,
    ...                                                 allocation="global")                  # doctest: +SKIP
    """
    if allocation not in HEAD_ALLOCATIONS:
        raise WeightkitError(f"Invalid value for allocation. Expected one of {list(HEAD_ALLOCATIONS)}. "
                             f"Received: allocation={allocation!r}.")
    if allocation == "global" and ratio is None:
        raise WeightkitError("allocation='global' spreads a ratio over all the model's heads: give ratio "
                             "(max_error budgets every layer on its own).")
    targets, skipped = attention_targets(model, layers)
    options = dict(samples=samples, seed=seed, ridge=ridge, ratio=ratio, values=bool(refit_values))
    if allocation == "uniform":
        budgets = {layer.name: ("count", heads_removed(ratio, _heads(layer))) if ratio is not None
                   else ("max_error", max_error) for layer in targets}
        merged, entries, failed = _sequential(model, targets, x, budgets, options, progress=progress)
    else:
        def build(removals, cache):
            return _sequential(model, targets, x, {name: ("remove", tuple(r)) for name, r in removals.items()},
                               options, cache=cache)

        removals, note = global_removals(model, targets, x, ratio, build, samples=samples, seed=seed,
                                         progress=progress)
        merged, entries, failed = build(removals, None)
        for entry in entries:
            entry.notes.append(note)
    _record_params(entries, model, merged)
    return merged, entries, skipped + failed


def _heads(layer):
    return int(layer.get_config()["num_heads"])


def auto_allocation(model, layers=None):
    """``"global"`` when the model's mergeable attention layers are several and hold at most
    :data:`GLOBAL_MAX_HEADS` heads in all, else ``"uniform"`` (a single layer: the same heads either way).

    On the test zoo's ViTs, 25% of the heads merged by data lose 0.89 and 0.22 points on the mean of five trained
    models with the global allocation, 1.78 and 2.95 with the uniform one (docs/benchmarks.md).
    """
    targets, _ = attention_targets(model, layers)
    total = sum(_heads(layer) for layer in targets)
    return "global" if len(targets) > 1 and total <= GLOBAL_MAX_HEADS else "uniform"


def _sequential(model, targets, x, budgets, options, *, cache=None, progress=None):
    """Merge the ``targets``' heads one layer after the other, each refitted to the original layer's output.

    ``budgets``: layer name -> ``("count", n)``, ``("max_error", e)`` or ``("remove", heads)``. ``cache``
    (a dict, or None): the merged-so-far model after each prefix of budgets, kept for the next call.
    Returns ``(model, entries, skipped)``.
    """
    current, entries, skipped, key = model, [], [], ()
    for index, layer in enumerate(targets):
        if progress is not None:
            progress(index, len(targets), f"{layer.name}/heads")
        key += ((layer.name, budgets[layer.name]),)
        if cache is not None and key in cache:
            current, entry, skip = cache[key]
        else:
            current, entry, skip = _merge_layer(model, current, layer, x, budgets[layer.name], options)
            if cache is not None:
                cache[key] = current, entry, skip
        entries += [entry] if entry is not None else []
        skipped += [skip] if skip is not None else []
    if progress is not None:
        progress(len(targets), len(targets), "")
    return current, entries, skipped


def _merge_layer(model, current, layer, x, budget, options):
    """``(model with this layer's heads merged, HeadsDataMerge or None, SkippedLayer or None)``."""
    heads, (how, amount) = _heads(layer), budget
    count = amount if how == "count" else len(amount) if how == "remove" else None
    name, kind_name = f"{layer.name}/heads", type(layer).__name__
    if count == 0 and current is model:  # nothing to remove, nothing upstream to make up for: no probe
        note = (f"round({options['ratio']:g} · {heads}) = 0: no head removed" if how == "count"
                else "no head removed")
        return current, HeadsDataMerge(name=name, type=kind_name, tap=layer.name, consumers=[layer.name],
                                       neurons_before=heads, neurons_after=heads, requested=0, notes=[note]), None
    arrays = kind_for(layer).layer_arrays(find_layer(current, layer.name))
    values = options["values"] and heads * int(arrays["value_kernel"].shape[0]) <= MAX_VALUE_CHANNELS
    moments, n_rows, reason = head_output_moments(current, layer.name, x, samples=options["samples"],
                                                  seed=options["seed"], reference=None if current is model else model,
                                                  values=values)
    if reason is not None:
        return current, None, SkippedLayer(name, kind_name, reason)
    budget = {how: amount if how != "remove" else list(amount)}
    fit = dict(ridge=options["ridge"], intercept="output_bias" in arrays)
    if values:
        plan, value_update = plan_value_refit(moments, arrays["value_kernel"], arrays.get("value_bias"),
                                              arrays["output_kernel"], **budget, **fit)
    else:
        plan, value_update = plan_heads_fit(moments, arrays["output_kernel"], **budget, **fit), None
    entry = HeadsDataMerge(name=name, type=kind_name, tap=layer.name, consumers=[layer.name], neurons_before=heads,
                           neurons_after=int(plan.keep.size), requested=count, rows=int(n_rows),
                           error=float(plan.error))
    entry.removed = [{"neuron": int(h), "r2": round(float(r2), 6), "dead": False}
                     for h, r2 in zip(plan.remove, plan.r2)]
    if plan.remove.size:
        entry.notes.append(f"heads {heads} → {plan.keep.size}: the removed heads' output rebuilt in the kept "
                           f"heads' {'value and output' if values else 'output'} projections (key_dim and value_dim "
                           "kept)")
    if plan.remove.size or current is not model:  # kept heads refitted to the original output too
        current = remove_heads(current, {layer.name: plan.keep.tolist()},
                               output_kernel_updates={layer.name: plan.update},
                               output_bias_updates={layer.name: plan.bias_update},
                               value_kernel_updates=None if value_update is None else {layer.name: value_update})
    return current, entry, None


def _record_params(entries, original, merged):
    for entry in entries:
        name = entry.name.rsplit("/heads", 1)[0]
        entry.params_before = int(find_layer(original, name).count_params())
        entry.params_after = int(find_layer(merged, name).count_params())
