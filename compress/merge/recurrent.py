"""Data-aware folding of recurrent units (SimpleRNN, LSTM, GRU): one unit rebuilt from the others.

A recurrent layer's hidden state ``h_t`` (shape ``(units,)``) is read in two places: by the next
layer (a Dense, Conv1D or TimeDistributed(Dense/Conv) on the last state or the sequence, or another
recurrent layer's input kernel, both halves' of a Bidirectional one) and by the layer itself,
through the recurrent kernel ``U`` of every gate at the next step. Both reads are linear in ``h``,
so when ``h_j ≈ Σ_k β_k h_k + c`` holds at every step, unit ``j`` folds into both::

    U[k, :] += β_k · U[j, :]          bias_recurrent += c · U[j, :]        (every gate at once)
    W_next[k, :] += β_k · W_next[j, :]   b_next += c · W_next[j, :]

and the unit leaves every gate: its kernel columns, its recurrent kernel rows and columns and its
bias entries (a GRU with ``reset_after`` has two bias rows; the folded offset goes to the
recurrent one, which the reset gate multiplies). The relation is fitted by
:func:`weightkit.compress.merge.fitting.data_fit.plan_data_merge` on the hidden states of every step of the
calibration sequences (a copy of the layer run with ``return_sequences=True``).

Left alone, with the reason: a recurrent layer whose output is a model output, with
``return_state``, stateful, called at several places or with an initial state, a GRU with
``reset_after=False`` (the reset gate multiplies the state *before* the recurrent kernel, so the
candidate is not linear in ``h``), and layers wrapped in TimeDistributed. The halves of a
Bidirectional layer fold by :mod:`weightkit.compress.merge.bidirectional`, dispatched from here.

Notes
-----
The folded intercept also acts at the first step, where the initial state is zero; a relation
with ``c ≠ 0`` is therefore approximate at that step (exact copies have ``c = 0``).
"""

import numpy as np

from weightkit.analysis.kinds.registry import kind_for, registered_name
from weightkit.compress.merge.bidirectional import bidirectional_site, merge_bidirectional_by_data
from weightkit.compress.merge.fitting.data_fit import plan_data_merge
from weightkit.compress.merge.reporting.data_report import LayerDataMerge
from weightkit.compress.merge.applying.apply_group import apply_group
from weightkit.compress.merge.applying.input_rows import input_kernels, input_row_block, two_row_bias
from weightkit.compress.merge.applying.math import Relation
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.recurrent_units import (
    PADDING_NOTE,
    RecurrentSite,
    call_reason,
    padded_readers,
    sequence_states,
)

__all__ = ["RIDGE_FACTOR", "RecurrentSite", "fold_recurrent", "folds_by_data", "merge_recurrent_by_data",
           "recurrent_site"]

#: The relation is fed back at every step, so the ridge's shrinkage compounds: recurrent fits use
#: ``ridge · RIDGE_FACTOR``. Two stacked layers of 4 units with a planted duplicate, 6 steps, ridge
#: 1e-6: outputs off by 6.4e-5 (SimpleRNN), 9.9e-6 (LSTM), 4.9e-6 (GRU); at 1e-9: 4.8e-7, 1.2e-7, 1.2e-7.
RIDGE_FACTOR = 1e-3


def folds_by_data(layer):
    """Whether the layer's units fold by data into every gate: its kind is recurrent (SimpleRNN, LSTM, GRU, and
    Bidirectional, per half: :mod:`weightkit.compress.merge.bidirectional`); :func:`recurrent_site` says whether
    this one can."""
    kind = kind_for(layer)
    return kind is not None and kind.recurrent


def recurrent_site(graph, layer):
    """The :class:`RecurrentSite` of a SimpleRNN/LSTM/GRU (or Bidirectional) layer of ``graph``.

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph
    layer : keras.layers.Layer

    Returns
    -------
    RecurrentSite
        ``reason`` set when the layer is left alone.
    """
    kind = kind_for(layer)
    if kind is not None and kind.halves(layer) is not None:
        return bidirectional_site(graph, layer)
    site = RecurrentSite(layer.name, type(layer).__name__)
    if kind is None or kind.gate_count(layer) is None:
        site.reason = ("only SimpleRNN, LSTM and GRU units (also inside Bidirectional) fold by data, not "
                       f"{registered_name(layer)}")
        return site
    config = layer.get_config()
    site.n_units, site.two_row_bias = int(config["units"]), two_row_bias(layer)
    site.reason = (kind.config_problem(config)
                   or call_reason(graph, layer, site, "only one unit: nothing to merge"))
    if site.reason is not None:
        site.consumers = []
    return site


def hidden_states(model, graph, site, x, *, samples, seed, batch_size=256):
    """The layer's hidden state at every step of a seeded sample of inputs.

    Returns
    -------
    states : ndarray of shape (n_inputs * n_steps, n_units), float64
    """
    (node,) = graph.nodes_of(find_layer(model, site.layer))
    config = dict(node.layer.get_config(), return_sequences=True, name=f"{site.layer}_all_states")
    return sequence_states(graph, node, config, x, widths=[site.n_units], samples=samples, seed=seed,
                           batch_size=batch_size)[0]


def fold_recurrent(state, site, relation, model):
    """Fold ``relation`` into the layer's recurrent kernel and its consumers; cut the units from every gate.

    The layer's units are a channel group with one producer
    (:func:`weightkit.compress.merge.applying.apply_group.apply_group`; its kind names the kernels).

    Parameters
    ----------
    state : weightkit.compress.merge.applying.rebuild.WeightState
        Updated in place; the cuts are deferred to :func:`weightkit.compress.merge.applying.rebuild.rebuild_model`.
    site : RecurrentSite
    relation : weightkit.compress.merge.applying.math.Relation
        ``h[removed] ≈ β h[kept] + shift`` on the hidden states.
    model : keras.Model
        The original model (unused: the state knows its layers).
    """
    apply_group(state, site.channel_group(), relation)


def merge_recurrent_by_data(model, graph, site, state, x, *, ratio, max_error, samples, seed, ridge,
                            weigh_by_consumer=True):
    """Fit, choose and fold the removed units of one recurrent layer; its report.

    Parameters
    ----------
    model : keras.Model
    graph : weightkit.analysis.structure.graph.ModelGraph
    site : RecurrentSite
        Without a reason.
    state : weightkit.compress.merge.applying.rebuild.WeightState
    x : ndarray or list of ndarray
        Calibration inputs.
    ratio, max_error : float or None
        One of them (see :func:`weightkit.compress.merge.merge_by_data`).
    samples, seed : int
    ridge : float
        Scaled by :data:`RIDGE_FACTOR`.
    weigh_by_consumer : bool, default=True
        Choose removals by the error in the consumers' and the gates' pre-activations.

    Returns
    -------
    LayerDataMerge
    """
    if site.merge_mode is not None:  # the halves of a Bidirectional layer
        return merge_bidirectional_by_data(model, graph, site, state, x, ratio=ratio, max_error=max_error,
                                           samples=samples, seed=seed, ridge=ridge * RIDGE_FACTOR,
                                           weigh_by_consumer=weigh_by_consumer)
    n = site.n_units
    report = LayerDataMerge(name=site.layer, type=site.type, tap=site.layer,
                            consumers=[name for name, _ in site.consumers], neurons_before=n, neurons_after=n)
    if ratio is not None:
        report.requested = int(min(n - 1, round(ratio * n)))
    states = hidden_states(model, graph, site, x, samples=samples, seed=seed)
    report.rows = int(states.shape[0])
    report.notes.append(f"fitted on the hidden state at every step ({states.shape[0]} rows); folded into the "
                        "recurrent kernel of every gate")
    if not np.isfinite(states).all():
        report.notes.append("hidden states contain NaN or Inf on the calibration sample: left alone")
        return report
    if states.shape[0] < 2:
        report.notes.append("fewer than 2 calibration rows: left alone")
        return report
    weights = None
    if weigh_by_consumer:
        blocks = [np.asarray(state.arrays[site.layer]["recurrent_kernel"], dtype=np.float64)]
        blocks += [input_row_block(state, name, input_kernels(find_layer(model, name)), n, 0, n)
                   for name, _ in site.consumers]
        weights = np.concatenate(blocks, axis=1)
    plan = plan_data_merge(states, ratio=ratio, max_error=None if ratio is not None else max_error,
                           output_weights=weights, ridge=ridge * RIDGE_FACTOR)
    dead = set(plan.dead.tolist())
    report.removed = [{"neuron": int(j), "r2": round(float(r2), 6), "dead": int(j) in dead}
                      for j, r2 in zip(plan.remove, plan.r2)]
    report.error = float(plan.error)
    report.neurons_after = int(plan.keep.size)
    if plan.n_removed and np.max(np.abs(plan.intercept)) > 1e-6:
        report.notes.append("a folded intercept also acts at the first step, where the initial state is zero")
        if padded_readers(model, site):
            report.notes.append(PADDING_NOTE)
    fold_recurrent(state, site, Relation(plan.remove.astype(np.int64), plan.keep.astype(np.int64), plan.beta,
                                         plan.intercept), model)
    return report
