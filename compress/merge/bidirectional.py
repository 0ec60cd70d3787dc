"""Data-aware folding of a Bidirectional layer's units: each half rebuilt from its own hidden states.

A ``Bidirectional(LSTM/GRU/SimpleRNN)`` holds two recurrent layers reading the same sequence, one
forwards and one backwards. Each half's hidden state feeds that half's own recurrent kernels, so a
unit of a half folds into that half exactly as in :mod:`weightkit.compress.merge.recurrent`. What the
consumers read depends on ``merge_mode``:

- ``concat`` (the default): ``[h_forward, h_backward]``. Each half is fitted on its own states,
  ``h_j ≈ Σ β_k h_k + c``, and folded into its own recurrent kernels and into the consumers' rows
  at its offset (0 for the forward half, ``units`` for the backward one). Keras builds a
  Bidirectional layer's output shape from the forward half alone (twice its units), so both halves
  lose the same number of units: ``round(ratio · units)`` each, or with ``max_error`` the smaller
  of the two halves' counts.
- ``sum`` and ``ave``: ``h_forward + h_backward`` (halved). Unit ``j`` must leave both halves, and
  the consumers read ``s_j = h_f,j + h_b,j``: one relation fitted on both halves' states stacked
  (one β for both) gives ``s_j = Σ β_k s_k + 2c`` (``c`` for ``ave``), exact where the relation
  holds in each half.
- ``mul`` (``h_f · h_b``) is not linear in either half's units, and ``merge_mode=None`` returns
  the halves as two tensors: both are left alone, with the reason.

Units are chosen by the error in the half's recurrent pre-activations and the consumers' (summed
over both halves for ``sum``/``ave``), as for a plain recurrent layer.
"""

import numpy as np

from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.merge.fitting.data_fit import plan_data_merge
from weightkit.compress.merge.reporting.data_report import LayerDataMerge
from weightkit.compress.merge.applying.apply_group import cut_outputs, fold_own
from weightkit.compress.merge.applying.input_rows import fold_input_rows, input_kernels, input_row_block, two_row_bias
from weightkit.compress.merge.applying.math import Relation
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.recurrent_units import (
    PADDING_NOTE,
    RecurrentSite,
    call_reason,
    padded_readers,
    sequence_states,
)

__all__ = ["HALVES", "bidirectional_site", "merge_bidirectional_by_data"]

#: Key prefixes of the two halves' arrays in :class:`weightkit.compress.merge.applying.rebuild.WeightState`.
HALVES = ("forward/", "backward/")
_MODES = ("concat", "sum", "ave")


def _site_reason(graph, layer, site):
    forward, backward = layer.forward_layer, layer.backward_layer
    kind = kind_for(forward)
    if kind is None or kind.gate_count(forward) is None or kind_for(backward) is not kind:
        return (f"only SimpleRNN, LSTM and GRU halves of one class fold by data, not {type(forward).__name__} "
                f"and {type(backward).__name__}")
    for half in (forward, backward):
        reason = kind.config_problem(half.get_config())
        if reason:
            return reason
    units = (int(forward.get_config()["units"]), int(backward.get_config()["units"]))
    if units[0] != units[1]:
        return f"its halves have {units[0]} and {units[1]} units; Keras shapes the output from the forward half"
    mode = layer.get_config().get("merge_mode")
    if mode == "mul":
        return ("merge_mode='mul' multiplies the halves' states: the product is not linear in either half's "
                "units")
    if mode not in _MODES:
        return f"merge_mode={mode!r} returns the halves as separate tensors"
    site.n_units, site.merge_mode = units[0], mode
    site.two_row_bias = two_row_bias(forward)
    return call_reason(graph, layer, site, "only one unit per half: nothing to merge")


def bidirectional_site(graph, layer):
    """The :class:`weightkit.compress.merge.recurrent_units.RecurrentSite` of a Bidirectional layer (per-half sizes).

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph
    layer : keras.layers.Bidirectional

    Returns
    -------
    RecurrentSite
        ``merge_mode`` set (``concat``, ``sum`` or ``ave``); ``reason`` set when left alone.
    """
    site = RecurrentSite(layer.name, type(layer).__name__)
    site.reason = _site_reason(graph, layer, site)
    if site.reason is not None:
        site.consumers, site.merge_mode = [], None
    return site


def _half_states(model, graph, site, x, samples, seed):
    """Each half's hidden state at every step: ``(forward, backward)``, each ``(n_rows, units)``."""
    (node,) = graph.nodes_of(find_layer(model, site.layer))
    config = node.layer.get_config()
    for key in ("layer", "backward_layer"):
        inner = dict(config[key])
        inner["config"] = dict(inner["config"], return_sequences=True)
        config[key] = inner
    config.update(merge_mode=None, name=f"{site.layer}_all_states")
    return sequence_states(graph, node, config, x, widths=[site.n_units, site.n_units], samples=samples,
                           seed=seed)


def _output_weights(state, site, consumers, prefixes, offset):
    n = site.n_units
    channels = 2 * n if site.merge_mode == "concat" else n
    blocks = [np.asarray(state.arrays[site.layer][p + "recurrent_kernel"], dtype=np.float64) for p in prefixes]
    blocks += [input_row_block(state, name, keys, channels, offset, n) for name, keys in consumers]
    return np.concatenate(blocks, axis=1)


def _relation(plan):
    return Relation(plan.remove.astype(np.int64), plan.keep.astype(np.int64), plan.beta, plan.intercept)


def _plan_halves(states, weights, count, max_error, ridge):
    """One plan per half (concat): the same number of units removed from both."""
    plans = [plan_data_merge(s, n_remove=count, max_error=None if count is not None else max_error,
                             output_weights=w, ridge=ridge) for s, w in zip(states, weights)]
    fewest = min(p.n_removed for p in plans)
    return [p if p.n_removed == fewest else plan_data_merge(s, n_remove=fewest, output_weights=w, ridge=ridge)
            for p, s, w in zip(plans, states, weights)]


def merge_bidirectional_by_data(model, graph, site, state, x, *, ratio, max_error, samples, seed, ridge,
                                weigh_by_consumer=True):
    """Fit, choose and fold the removed units of both halves of a Bidirectional layer; its report.

    Parameters
    ----------
    model : keras.Model
    graph : weightkit.analysis.structure.graph.ModelGraph
    site : RecurrentSite
        From :func:`bidirectional_site`, without a reason.
    state : weightkit.compress.merge.applying.rebuild.WeightState
        Updated in place.
    x : ndarray or list of ndarray
    ratio, max_error : float or None
        One of them (see :func:`weightkit.compress.merge.merge_by_data`).
    samples, seed : int
    ridge : float
        Already scaled for a recurrent fit (:data:`weightkit.compress.merge.recurrent.RIDGE_FACTOR`).
    weigh_by_consumer : bool, default=True

    Returns
    -------
    LayerDataMerge
        ``neurons_before``/``after`` count both halves' units; each removed unit carries its ``half``
        (``forward``, ``backward``, or ``both`` for ``sum``/``ave``) and its index in the layer's
        output (the backward half's offset by ``units`` under ``concat``).
    """
    n, concat = site.n_units, site.merge_mode == "concat"
    consumers = [(name, input_kernels(find_layer(model, name))) for name, _ in site.consumers]
    report = LayerDataMerge(name=site.layer, type=site.type, tap=site.layer, consumers=[c for c, _ in consumers],
                            neurons_before=2 * n, neurons_after=2 * n)
    count = None if ratio is None else int(min(n - 1, round(ratio * n)))
    report.requested = None if count is None else 2 * count
    states = _half_states(model, graph, site, x, samples, seed)
    report.rows = int(sum(s.shape[0] for s in states))
    report.notes.append(f"merge_mode={site.merge_mode}: " + (
        "each half fitted on its own hidden states, the same number of units removed from both" if concat else
        "one relation fitted on both halves' hidden states, the same units removed from both"))
    if not all(np.isfinite(s).all() for s in states):
        report.notes.append("hidden states contain NaN or Inf on the calibration sample: left alone")
        return report
    if min(s.shape[0] for s in states) < 2:
        report.notes.append("fewer than 2 calibration rows: left alone")
        return report
    if concat:
        weights = [_output_weights(state, site, consumers, [p], offset) if weigh_by_consumer else None
                   for p, offset in zip(HALVES, (0, n))]
        plans = _plan_halves(states, weights, count, max_error, ridge)
    else:
        weights = _output_weights(state, site, consumers, HALVES, 0) if weigh_by_consumer else None
        joint = plan_data_merge(np.concatenate(states, axis=0), n_remove=count,
                                max_error=None if count is not None else max_error, output_weights=weights,
                                ridge=ridge)
        plans = [joint, joint]
    for index, (prefix, plan) in enumerate(zip(HALVES, plans)):
        relation = _relation(plan)
        dead = set(plan.dead.tolist())
        half = prefix[:-1] if concat else "both"
        if concat or index == 0:
            report.removed += [{"neuron": int(j) + (index * n if concat else 0), "half": half,
                                "r2": round(float(r2), 6), "dead": int(j) in dead}
                               for j, r2 in zip(plan.remove, plan.r2)]
        if relation.removed.size == 0:
            continue
        fold_own(state, site.layer, relation, prefix=prefix)
        cut_outputs(state, site.layer, n, relation.removed, prefix=prefix)
        if concat:
            for name, keys in consumers:
                fold_input_rows(state, name, keys, relation, channels=2 * n, offset=index * n)
    if not concat and plans[0].n_removed:
        scale = 2.0 if site.merge_mode == "sum" else 1.0  # s_j = Σ β s_k + 2c (sum) or + c (ave)
        relation = _relation(plans[0])
        relation = Relation(relation.removed, relation.kept, relation.beta, scale * relation.shift)
        for name, keys in consumers:
            fold_input_rows(state, name, keys, relation, channels=n)
    removed = plans[0].n_removed
    report.error = float(np.mean([p.error for p in plans]))
    report.neurons_after = 2 * (n - removed)
    if removed:
        state.resized[site.layer] = n - removed
        if any(np.max(np.abs(p.intercept), initial=0.0) > 1e-6 for p in plans):
            report.notes.append("a folded intercept also acts at the first step, where the initial state is zero")
            if padded_readers(model, site):
                report.notes.append(PADDING_NOTE)
    if concat and removed:
        report.notes.append(f"lost variance: forward {plans[0].error:.3g}, backward {plans[1].error:.3g}")
    return report
