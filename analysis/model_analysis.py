"""Analyze a whole Keras model, one layer at a time."""

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.numeric.groups import (
    DEFAULT_THRESHOLDS,
    absolute_threshold,
    cluster_linkage,
    cluster_order,
    expected_chance_pairs,
    find_groups,
    removable_count,
)
from weightkit.analysis.structure.linear_chains import model_linear_chains
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET, _mad_matrix, _pearson_matrix
from weightkit.analysis.results import LayerAnalysis, LayerMatrices, ModelAnalysis, SkippedLayer
from weightkit.analysis.rows import layer_neuron_rows, skip_reason
from weightkit.analysis.selection import check_layer_names, is_chosen
from weightkit.analysis.files.stored import StoredModel, iter_stored_rows, plan_entries
from weightkit.analysis.files.stored.nodes import stored_linear_chains

__all__ = ["analyze_model", "analyze_rows", "collect_entries", "iter_layer_analyses"]


def _graph_or_none(model):
    """The model's graph for shapes (MACs); None for a model without a readable graph (subclassed)."""
    try:
        return ModelGraph(model)
    except WeightkitError:
        return None


def collect_entries(model, layers=None, graph=None):
    """The neuron-row entries and skipped layers of a model, in model order.

    Parameters
    ----------
    model : keras.Model
    layers : list of str, default=None
        Keep only these layer or entry names (``dense_1``, ``lstm/forget``).
    graph : ModelGraph, default=None
        The model's graph when the caller has it (built here otherwise).

    Returns
    -------
    entries : list of (callable, str, str)
        Lazy entries: ``(load, name, type)``; ``load()`` returns the NeuronRows. Weights are
        read one layer at a time.
    skipped : list of SkippedLayer
    """
    entries, skipped, seen_names = [], [], set()
    graph = _graph_or_none(model) if graph is None else graph
    for layer in walk_layers(model):
        if not layer.weights:
            continue
        reason = skip_reason(layer)
        if reason is not None:
            skipped.append(SkippedLayer(layer.name, type(layer).__name__, reason,
                                        params=int(layer.count_params())))
            continue
        for entry in layer_neuron_rows(layer, graph):
            if entry.name in seen_names:
                entry.name = f"{entry.name}#{len(seen_names)}"
            seen_names.add(entry.name)
            entries.append(entry)
    wanted = check_layer_names(layers, [e.name for e in entries] + [e.layer_name for e in entries],
                               extra=[s.name for s in skipped])
    if wanted:
        entries = [e for e in entries if is_chosen(e.name, e.layer_name, wanted)]
        skipped = [s for s in skipped if s.name in wanted]
    return entries, skipped


def analyze_rows(entry, *, metric="pearson", threshold=None, include_bias=True,
                 keep_matrices=False, memory_budget=DEFAULT_MEMORY_BUDGET):
    """Analyze one entry's rows.

    Parameters
    ----------
    entry : NeuronRows
    metric : {"pearson", "mad"}, default="pearson"
    threshold : float, default=None
        The metric's default when None.
    include_bias : bool, default=True
        Append each neuron's bias to its row.
    keep_matrices : bool, default=False
        Attach the full matrices (for reports); otherwise only summaries and groups are kept.
    memory_budget : int
        Working memory for the MAD matrix, in bytes.

    Returns
    -------
    LayerAnalysis or SkippedLayer
    """
    rows = entry.with_bias() if include_bias else entry.rows
    if entry.n_neurons < 2:
        return SkippedLayer(entry.name, entry.type, "only one neuron: nothing to compare it with",
                            params=entry.params, macs=entry.macs)
    if not np.isfinite(rows).all():
        return SkippedLayer(entry.name, entry.type, "weights contain NaN or Inf",
                            params=entry.params, macs=entry.macs)
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    pearson = _pearson_matrix(rows)
    mad = _mad_matrix(rows, memory_budget)
    n = rows.shape[0]
    off = ~np.eye(n, dtype=bool)
    pearson_off, mad_off = pearson[off], mad[off]
    chosen = pearson if metric == "pearson" else mad
    Z = cluster_linkage(chosen, metric)
    groups = find_groups(chosen, metric, threshold, Z=Z)
    result = LayerAnalysis(
        name=entry.name,
        layer_name=entry.layer_name,
        type=entry.type,
        neurons=n,
        fan_in=int(rows.shape[1]),
        params=entry.params,
        macs=entry.macs,
        groups=groups,
        removable=removable_count(groups),
        pearson_mean_abs_offdiag=float(np.abs(pearson_off).mean()),
        pearson_max_offdiag=float(pearson_off.max()),
        mad_median_offdiag=float(np.median(mad_off)),
        mad_min_offdiag=float(mad_off.min()),
        threshold_value=float(absolute_threshold(chosen, metric, threshold)),
    )
    # Pairs at the Pearson threshold in use (the default one under --metric mad) expected by chance.
    r_threshold = float(threshold) if metric == "pearson" and threshold is not None else DEFAULT_THRESHOLDS["pearson"]
    result.pearson_chance_pairs = float(expected_chance_pairs(n, rows.shape[1], r_threshold))
    if keep_matrices:
        result.matrices = LayerMatrices(rows, pearson, mad, Z, cluster_order(Z, n))
    return result


def iter_layer_analyses(model, *, metric="pearson", threshold=None, layers=None,
                        include_bias=True, keep_matrices=False,
                        memory_budget=DEFAULT_MEMORY_BUDGET, progress=None):
    """Yield each layer's analysis in model order, computing one layer at a time.

    Yields
    ------
    LayerAnalysis or SkippedLayer
        With ``keep_matrices=True`` a LayerAnalysis carries its full matrices; drop them before
        asking for the next layer to keep memory at one layer's worth.
    """
    if metric not in DEFAULT_THRESHOLDS:
        raise WeightkitError(
            f"Invalid value for metric. Expected one of {list(DEFAULT_THRESHOLDS)}. Received: metric={metric!r}."
        )
    absolute_threshold(np.zeros((1, 1)), metric, threshold)  # validates the threshold's range
    if isinstance(model, StoredModel):
        yield from _iter_stored_analyses(model, layers, progress, {
            "metric": metric, "threshold": threshold, "include_bias": include_bias, "keep_matrices": keep_matrices,
            "memory_budget": memory_budget})
        return
    entries, skipped = collect_entries(model, layers)
    yield from skipped
    total = len(entries)
    for index, entry in enumerate(entries):
        if progress is not None:
            progress(index, total, entry.name)
        yield analyze_rows(entry, metric=metric, threshold=threshold, include_bias=include_bias,
                           keep_matrices=keep_matrices, memory_budget=memory_budget)
    if progress is not None:
        progress(total, total, "")


def _iter_stored_analyses(model, layers, progress, options):
    """:func:`iter_layer_analyses` of a :class:`~weightkit.analysis.files.stored.StoredModel`: the next layer is read while
    the current one is analyzed."""
    planned, skipped = plan_entries(model)
    names = [name for item in planned for name in item.names]
    wanted = check_layer_names(layers, names + [name for item in planned for name in [item.layer.name] * len(item.names)],
                               extra=[s.name for s in skipped])
    if wanted:
        planned = [item for item in planned if any(is_chosen(n, item.layer.name, wanted) for n in item.names)]
        skipped = [s for s in skipped if s.name in wanted]
        names = [n for item in planned for n in item.names if is_chosen(n, item.layer.name, wanted)]
    yield from skipped
    total = len(names)
    done = 0
    for entry in iter_stored_rows(model, planned):
        if isinstance(entry, SkippedLayer):
            yield entry
            continue
        if wanted and not is_chosen(entry.name, entry.layer_name, wanted):
            continue
        if progress is not None:
            progress(done, total, entry.name)
        done += 1
        yield analyze_rows(entry, **options)
    if progress is not None:
        progress(total, total, "")


def analyze_model(model, *, metric="pearson", threshold=None, layers=None, include_bias=True,
                  memory_budget=DEFAULT_MEMORY_BUDGET, progress=None, path=None, notes=(), on_layer=None):
    """Find the redundant neurons of every analyzable layer of a model.

    Parameters
    ----------
    model : keras.Model or weightkit.analysis.files.stored.StoredModel
        A stored model is analyzed from its file without Keras (the same result).
    metric : {"pearson", "mad"}, default="pearson"
        The similarity that defines a redundant group (see :func:`find_groups`).
    threshold : float, default=None
        0.9 (Pearson r) or 0.2 (fraction of the layer's median MAD) when None.
    layers : list of str, default=None
        Analyze only these layers or entries.
    include_bias : bool, default=True
        Append each neuron's bias to its weight row (the default of every command and verb: merging compares
        rows with the bias, and a neuron's bias is part of what it computes).
    memory_budget : int, default=256 MiB
    progress : callable, default=None
        Called as ``progress(done, total, name)``.
    path : str, default=None
        Recorded in the result.
    notes : sequence of str
        Recorded in the result (e.g. how the model was loaded).
    on_layer : callable, default=None
        Called as ``on_layer(layer_analysis)`` for each analyzed entry while its full matrices
        are attached (``layer_analysis.matrices``), e.g. to draw them; the matrices are dropped
        right after, so memory holds one layer's matrices at a time.

    Returns
    -------
    ModelAnalysis
        Summaries and groups for each layer; the full matrices are not kept.

    Examples
    --------
    >>> import keras                                       # doctest: +SKIP
    >>> result = analyze_model(keras.models.load_model("model.keras"))  # doctest: +SKIP
    >>> [(layer.name, layer.groups) for layer in result.layers]         # doctest: +SKIP
    """
    result = ModelAnalysis(
        model=model.name,
        path=path,
        metric=metric,
        threshold=float(DEFAULT_THRESHOLDS.get(metric, 0.0) if threshold is None else threshold),
        include_bias=bool(include_bias),
        total_params=int(model.count_params()),
        notes=list(notes),
    )
    result.linear_chains = (stored_linear_chains(model) if isinstance(model, StoredModel)
                            else model_linear_chains(model))
    for item in iter_layer_analyses(model, metric=metric, threshold=threshold, layers=layers,
                                    include_bias=include_bias, keep_matrices=on_layer is not None,
                                    memory_budget=memory_budget, progress=progress):
        if on_layer is not None and not isinstance(item, SkippedLayer):
            on_layer(item)
            item.matrices = None
        (result.skipped if isinstance(item, SkippedLayer) else result.layers).append(item)
    result.notes.extend(getattr(model, "shape_notes", []) if isinstance(model, StoredModel) else [])
    return result
