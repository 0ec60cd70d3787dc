"""Merge redundant neurons: fold each removed neuron's outgoing weights into its twin, smaller model out.

For a group of similar neurons, keep one (``k``) and fold every other member ``j`` into it:
``α = ⟨w_j, w_k⟩ / ⟨w_k, w_k⟩`` over the row including the bias; the consumer gets
``W_next[k] += α · W_next[j]``; ``j`` disappears from the layer and from the consumer's inputs.
This is exact when ``w_j = α w_k`` with ``α > 0`` and everything between the layer and its consumer
is positively homogeneous (ReLU, LeakyReLU, linear, max pooling) or linear; other activations
(sigmoid, tanh, ELU, swish, ...) merge only twins (``w_j ≈ w_k``, α ≈ 1).
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.numeric.groups import DEFAULT_THRESHOLDS, find_groups
from weightkit.analysis.data.inputs import as_model
from weightkit.analysis.model_analysis import analyze_rows, collect_entries
from weightkit.analysis.results import SkippedLayer
from weightkit.analysis.rows import NeuronRows
from weightkit.compress.merge.applying.apply_group import apply_group
from weightkit.compress.merge.applying.carry import carry_step
from weightkit.compress.merge.planning.groups import merge_group_by_weights, plan_groups
from weightkit.compress.merge.applying.math import (
    cosine_matrix,
    greedy_merges,
    group_merges,
    relation_from_merges,
)
from weightkit.compress.merge.planning.plan import selected_sites
from weightkit.compress.merge.applying.rebuild import (
    WeightState,
    batchnorm_affine,
    effective_rows,
    find_layer,
    rebuild_model,
)
from weightkit.compress.merge.reporting.report import LayerMerge, MergeReport, record_params

__all__ = ["MERGE_METRICS", "apply_relations", "merge_redundant"]

#: Similarities a merge can group by; ``cosine`` is the uncentered cosine of the rows (a scaled
#: copy has cosine 1), with the same threshold rule as Pearson (default 0.9).
MERGE_METRICS = ("pearson", "mad", "cosine")
_DEFAULT_THRESHOLDS = dict(DEFAULT_THRESHOLDS, cosine=0.9)
_EXACT_TOLERANCE = 1e-4


def _check_options(metric, threshold, ratio, twin_tolerance):
    if metric not in MERGE_METRICS:
        raise WeightkitError(
            f"Invalid value for metric. Expected one of {list(MERGE_METRICS)}. Received: metric={metric!r}.")
    if threshold is not None and ratio is not None:
        raise WeightkitError("--threshold and --ratio: give one of them, not both; --threshold merges every "
                             "group found, --ratio removes a fixed share of each layer.")
    if ratio is not None and not 0.0 < float(ratio) < 1.0:
        raise WeightkitError(f"--ratio {ratio}: must be between 0 and 1 (the share of each layer's neurons to "
                             "remove), e.g. 0.5.")
    if threshold is not None and metric == "cosine" and not -1.0 <= float(threshold) <= 1.0:
        raise WeightkitError(f"A cosine threshold must be in [-1, 1], got {threshold}; 0.9 is the default.")
    if not twin_tolerance >= 0:
        raise WeightkitError(f"twin_tolerance must be non-negative, got {twin_tolerance}.")


def carry_relation(relation, site, state, model, *, twin_tolerance=0.05):
    """Carry a relation from the producer's (BN-folded) pre-activation to ``site.tap``.

    Parameters
    ----------
    relation : Relation
        ``z[removed] ≈ β z[kept]`` on the effective rows (see :func:`effective_rows`).
    site : MergeSite
    state : WeightState
    model : keras.Model
        The original model (for layer settings such as a BatchNormalization's epsilon).
    twin_tolerance : float

    Returns
    -------
    relation : Relation
        Holding at the tap; rows that cannot be carried are dropped (those neurons stay).
    refused : list of (int, str)
        ``(neuron, reason)`` for the dropped rows.
    """
    refused = []
    reference = 1.0
    for step in site.steps[site.folded_steps:]:
        affine = batchnorm_affine(state, step.layer, find_layer(model, step.layer)) if step.kind == "affine" else None
        relation, bad, reference = carry_step(relation, step, affine=affine, twin_tolerance=twin_tolerance,
                                              reference=reference)
        if bad:
            refused.extend((int(relation.removed[r]), reason) for r, reason in bad)
            relation = relation.without([r for r, _ in bad])
    return relation, refused


def apply_relations(model, relations, *, sites=None):
    """A smaller model from per-layer (or per-group) relations: an explicit removal plan.

    The entry point for any merge that has decided what to remove: weight-based merging,
    data-aware merging (β fitted by least squares on the tap's activations) and plain pruning
    (:meth:`Relation.prune`) all end here. A producer of a coupled channel group
    (:func:`weightkit.compress.merge.planning.groups.plan_groups`) stands for its whole group: the relation is
    folded into every consumer of the group (it must hold at every tensor they read, as a
    pruning relation always does) and its channels are cut from every member.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    relations : dict
        ``producer layer name -> Relation`` (``out[removed] ≈ β out[kept] + shift`` at
        ``sites[name].tap``, or at every tensor a group's consumers read).
    sites : dict, default=None
        Ignored (kept for callers that pass :func:`weightkit.compress.merge.planning.plan.find_merge_sites`).

    Returns
    -------
    keras.Model
        Rebuilt with the removed neurons gone, layer names kept, uncompiled.

    Examples
    --------
    >>> small = apply_relations(model, {"conv2": Relation.prune(16, [0, 3])})   # doctest: +SKIP
    """
    plan = plan_groups(model)
    state = WeightState(model)
    done = set()
    for name, relation in relations.items():
        group = next((g for g in plan.groups if name in g.producers), None)
        if group is not None:
            if id(group) in done:
                raise WeightkitError(f"{name}: its group ({', '.join(group.producers)}) was given twice.")
            done.add(id(group))
            apply_group(state, group, relation)
            continue
        site = plan.sites.get(name)
        if site is None or not plan.plain(name):
            reason = "not a layer with weights" if site is None else plan.blocked.get(name, site.reason)
            raise WeightkitError(f"{name}: cannot be merged ({reason}).")
        apply_group(state, site.channel_group(), relation, at_once=True)
    return rebuild_model(model, state)


def _similarity(rows, metric, threshold, want_matrix, entry):
    """Groups (threshold mode) or the similarity matrix (ratio mode), through analysis."""
    if metric == "cosine":
        matrix = cosine_matrix(rows)
        if want_matrix:
            return matrix, None
        return None, find_groups(matrix, "pearson", threshold if threshold is not None else 0.9)
    result = analyze_rows(entry, metric=metric, threshold=threshold, include_bias=True,
                          keep_matrices=want_matrix)
    if isinstance(result, SkippedLayer):
        return None, []
    if want_matrix:
        return (result.matrices.pearson if metric == "pearson" else result.matrices.mad), None
    return None, result.groups


def merge_redundant(model, *, metric="pearson", threshold=None, ratio=None, layers=None, include_bias=True,
                    twin_tolerance=0.05, evaluate_on=None, progress=None, unsafe=False):
    """Merge redundant neurons of every mergeable layer and return a genuinely smaller model.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Sequential or Functional; not modified. A path is loaded with :func:`weightkit.analysis.load_model`
        (safe mode unless ``unsafe``).
    metric : {"pearson", "mad", "cosine"}, default="pearson"
        Similarity between neuron rows (via :func:`weightkit.analysis.analyze_rows`; cosine here).
    threshold : float, default=None
        Merge every group found at this threshold (the metric's default when neither
        ``threshold`` nor ``ratio`` is given).
    ratio : float, default=None
        Instead: remove ``round(ratio · n)`` neurons of each layer, most similar pairs first.
    layers : list of str, default=None
        Merge only these layers.
    include_bias : bool, default=True
        Compare rows with their bias appended (α always includes it).
    twin_tolerance : float, default=0.05
        For activations that are not positively homogeneous, merge ``j`` into ``k`` only when
        ``‖w_j − w_k‖ ≤ twin_tolerance · ‖w_k‖``.
    evaluate_on : Dataset, ndarray, str or os.PathLike, default=None
        Held-out data to compare the merged model with the original on (a dataset's test split,
        see :func:`weightkit.compress.merge.reporting.report.evaluate_merge`); fills ``report.evaluation``.
    progress : callable, default=None
        Called as ``progress(done, total, name)``.
    unsafe : bool, default=False
        Load a model path with its embedded code.

    Returns
    -------
    model : keras.Model
        Rebuilt with smaller layers, names kept, uncompiled.
    report : MergeReport
        The loader's notes (for a path) come after the merge's own.

    Examples
    --------
    >>> small, report = merge_redundant(model, ratio=0.5)            # doctest: +SKIP
    >>> [(layer.name, layer.neurons_before, layer.neurons_after) for layer in report.layers]  # doctest: +SKIP
    """
    _check_options(metric, threshold, ratio, twin_tolerance)
    loaded = as_model(model, unsafe=unsafe)
    model = loaded.model
    if threshold is None and ratio is None:
        threshold = _DEFAULT_THRESHOLDS[metric]
    entries, _ = collect_entries(model, layers)  # validates --layers names
    entry_names = {e.layer_name for e in entries}
    plan = plan_groups(model)
    sites = plan.sites
    wanted = selected_sites(sites, layers)
    state = WeightState(model)
    report = MergeReport(model=model.name, metric=metric, threshold=None if ratio is not None else float(threshold),
                         ratio=None if ratio is None else float(ratio), params_before=int(model.count_params()))
    grouped = {name for group in plan.groups for name in group.producers}
    members = {u.layer for group in plan.groups for u in group.members}
    targets = [name for name in sites if (wanted is None or name in wanted) and name not in grouped | members]
    groups = [g for g in plan.groups if wanted is None or wanted & set(g.producers)]
    total = len(targets) + len(groups)
    for index, name in enumerate(targets):
        if progress is not None:
            progress(index, total, name)
        site = sites[name]
        if not site.mergeable:
            report.skipped.append(SkippedLayer(name, site.type, plan.blocked.get(name, site.reason)))
            continue
        if site.n_neurons < 2:
            report.skipped.append(SkippedLayer(name, site.type, "only one neuron: nothing to merge"))
            continue
        layer_report = _merge_layer(model, site, state, metric, threshold, ratio, include_bias, twin_tolerance)
        if name not in entry_names and wanted is None:
            layer_report.notes.append("not analyzed by weightkit analyze")
        report.layers.append(layer_report)
    keras = import_keras()
    for index, group in enumerate(groups):
        if progress is not None:
            progress(len(targets) + index, total, group.name)
        report.layers.append(merge_group_by_weights(model, plan, group, state, keras, metric=metric,
                                                    threshold=threshold, ratio=ratio, twin_tolerance=twin_tolerance))
    if progress is not None:
        progress(total, total, "")
    merged = rebuild_model(model, state)
    record_params(report, model, merged)
    if state.added_bias:
        report.notes.append(f"gave a bias to {', '.join(sorted(state.added_bias))} to absorb normalization offsets")
    report.notes.extend(loaded.notes)
    if evaluate_on is not None:
        report.evaluate(model, merged, evaluate_on)
    return merged, report


def _merge_layer(model, site, state, metric, threshold, ratio, include_bias, twin_tolerance):
    rows = effective_rows(state, site, model)
    n = rows.shape[0]
    layer_report = LayerMerge(name=site.layer, type=site.type, activation=site.activation, rule=site.requirement,
                              consumers=[c.layer for c in site.consumers], neurons_before=n, neurons_after=n)
    compared = rows if include_bias else rows[:, :-1]
    entry = NeuronRows(site.layer, site.layer, site.type, compared.astype(np.float32), None, 0, 0)
    if not np.isfinite(rows).all():
        layer_report.notes.append("weights contain NaN or Inf: left alone")
        return layer_report
    if ratio is not None:
        count = round(float(ratio) * n)
        layer_report.requested = count
        matrix, _ = _similarity(compared, metric, None, True, entry)
        merges, _ = greedy_merges(rows, matrix, count, site.requirement,
                                  higher_is_similar=metric != "mad", twin_tolerance=twin_tolerance)
        refused = []
        if len(merges) < count:
            layer_report.notes.append(f"removed {len(merges)} of the {count} requested: only that many pairs meet "
                                      f"the {site.requirement} rule of {site.activation}")
    else:
        _, groups = _similarity(compared, metric, threshold, False, entry)
        merges, refused = group_merges(rows, groups, site.requirement, twin_tolerance)
    relation = relation_from_merges(n, merges)
    relation, carried_refusals = carry_relation(relation, site, state, model, twin_tolerance=twin_tolerance)
    refused = list(refused) + [(j, None, reason) for j, reason in carried_refusals]
    dropped = {j for j, _, _ in refused}
    for merge in merges:
        if merge.removed in dropped:
            continue
        layer_report.merges.append({"removed": merge.removed, "keeper": merge.keeper, "alpha": round(merge.alpha, 6),
                                    "residual": float(f"{merge.residual:.3g}"),
                                    "exact": bool(merge.residual <= _EXACT_TOLERANCE)})
    layer_report.left_alone = [{"neuron": int(j), "keeper": None if k is None else int(k), "reason": reason}
                               for j, k, reason in refused]
    if relation.removed.size and any(c.zero_padded for c in site.consumers) and np.any(relation.shift != 0):
        layer_report.notes.append("normalization offsets folded into a zero-padded convolution's bias are "
                                  "exact only away from the borders")
    apply_group(state, site.channel_group(), relation, at_once=True)
    layer_report.neurons_after = int(relation.kept.size)
    return layer_report
