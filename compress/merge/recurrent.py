"""Data-aware folding of recurrent units (SimpleRNN, LSTM, GRU): one unit rebuilt from the others.

A recurrent layer's hidden state ``h_t`` (shape ``(units,)``) is read in two places: by the next
layer (a Dense or TimeDistributed(Dense) on the last state or the sequence, or another recurrent
layer's input kernel) and by the layer itself, through the recurrent kernel ``U`` of every gate
at the next step. Both reads are linear in ``h``, so when ``h_j ≈ Σ_k β_k h_k + c`` holds at every
step, unit ``j`` folds into both::

    U[k, :] += β_k · U[j, :]          bias_recurrent += c · U[j, :]        (every gate at once)
    W_next[k, :] += β_k · W_next[j, :]   b_next += c · W_next[j, :]

and the unit leaves every gate: its kernel columns, its recurrent kernel rows and columns and its
bias entries (a GRU with ``reset_after`` has two bias rows; the folded offset goes to the
recurrent one, which the reset gate multiplies). The relation is fitted by
:func:`compress.merge.data_fit.plan_data_merge` on the hidden states of every step of the
calibration sequences (a copy of the layer run with ``return_sequences=True``).

Left alone, with the reason: a recurrent layer whose output is a model output, with
``return_state``, stateful, called at several places or with an initial state, a GRU with
``reset_after=False`` (the reset gate multiplies the state *before* the recurrent kernel, so the
candidate is not linear in ``h``), and layers wrapped in Bidirectional or TimeDistributed.

Notes
-----
The folded intercept also acts at the first step, where the initial state is zero; a relation
with ``c ≠ 0`` is therefore approximate at that step (exact copies have ``c = 0``).
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from analysis._tf import import_keras
from analysis.activations.collect import sample_indices
from analysis.batches import n_samples, rows, take
from analysis.layers import registered_name, spec_for
from compress.merge.data_fit import plan_data_merge
from compress.merge.data_report import LayerDataMerge
from compress.merge.math import Relation
from compress.merge.plan import dead_end
from compress.merge.rebuild import find_layer

__all__ = ["RECURRENT_TYPES", "RIDGE_FACTOR", "RecurrentSite", "fold_recurrent", "merge_recurrent_by_data",
           "recurrent_site"]

#: Recurrent layer classes whose units fold by data.
RECURRENT_TYPES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}  # class -> gates
_MAX_ROWS = 50_000  # calibration rows (sequence steps) kept for the fit, a seeded sample beyond
#: The relation is fed back at every step, so the ridge's shrinkage compounds: recurrent fits use
#: ``ridge · RIDGE_FACTOR``. Two stacked layers of 4 units with a planted duplicate, 6 steps, ridge
#: 1e-6: outputs off by 6.4e-5 (SimpleRNN), 9.9e-6 (LSTM), 4.9e-6 (GRU); at 1e-9: 4.8e-7, 1.2e-7, 1.2e-7.
RIDGE_FACTOR = 1e-3


@dataclass
class RecurrentSite:
    """A recurrent layer, the layers reading its hidden state, or the reason it is left alone.

    Attributes
    ----------
    layer, type : str
    n_units, n_gates : int
    input_id : int
        Flat id (:class:`analysis.graph.ModelGraph`) of the sequence the layer reads.
    consumers : list of (str, str)
        ``(layer name, kind)``, kind ``"dense"`` (Dense, TimeDistributed(Dense)) or ``"rnn"``.
    reason : str or None
    """

    layer: str
    type: str
    n_units: int = 0
    n_gates: int = 1
    input_id: int = -1
    consumers: list = field(default_factory=list)
    reason: str = None


def _consumer_kind(layer):
    spec = spec_for(layer)
    family = None if spec is None else spec.family
    if family == "dense":
        return "dense"
    if family == "time_distributed" and spec_for(layer.layer) is not None and spec_for(layer.layer).family == "dense":
        return "dense"
    if family == "rnn" and registered_name(layer) in RECURRENT_TYPES:
        return "rnn"
    return None


def _follow(graph, tensor, site):
    """Collect the consumers reached from ``tensor`` through identity steps; the reason to stop, or None."""
    reason = dead_end(graph, tensor)
    if reason is not None:
        return reason
    for node in graph.readers(tensor):
        layer = node.layer
        label = f"{layer.name} ({type(layer).__name__})"
        if node.inputs[0] != tensor or any(graph.dtype(t) != "bool" for t in node.inputs[1:]):  # masks pass
            return f"its output feeds {label}, which combines several tensors"
        kind = _consumer_kind(layer)
        if kind is not None:
            if graph.is_shared(layer):
                return f"its output feeds {layer.name}, a layer shared with other inputs"
            site.consumers.append((layer.name, kind))
            continue
        spec = spec_for(layer)
        if spec is None or spec.merge != "identity":
            return f"its output feeds {label}, which cannot absorb a folded unit"
        reason = _follow(graph, node.outputs[0], site)
        if reason:
            return reason
    return None


def recurrent_site(graph, layer):
    """The :class:`RecurrentSite` of a SimpleRNN/LSTM/GRU layer of ``graph`` (reason set when left alone).

    Parameters
    ----------
    graph : analysis.graph.ModelGraph
    layer : keras.layers.Layer

    Returns
    -------
    RecurrentSite
    """
    kind = registered_name(layer)
    site = RecurrentSite(layer.name, type(layer).__name__)
    if kind not in RECURRENT_TYPES:
        site.reason = f"only SimpleRNN, LSTM and GRU units fold by data, not {kind}"
        return site
    config = layer.get_config()
    site.n_units, site.n_gates = int(config["units"]), RECURRENT_TYPES[kind]
    nodes = graph.nodes_of(layer)
    if config.get("return_state"):
        site.reason = "it returns its states (return_state): they would need folding too"
    elif config.get("stateful"):
        site.reason = "a stateful layer keeps its state between batches"
    elif kind == "GRU" and not config.get("reset_after", True):
        site.reason = ("a GRU with reset_after=False multiplies the state by the reset gate before the recurrent "
                       "kernel: not linear in the state")
    elif len(nodes) != 1:
        site.reason = "called at several places in the model"
    elif any(graph.dtype(t) != "bool" for t in nodes[0].inputs[1:]):  # a mask (bool) is fine
        site.reason = "called with an initial state or several tensors"
    elif site.n_units < 2:
        site.reason = "only one unit: nothing to merge"
    if site.reason is None:
        site.input_id = nodes[0].inputs[0]
        site.reason = _follow(graph, nodes[0].outputs[0], site)
    if site.reason is not None:
        site.consumers = []
    return site


def hidden_states(model, graph, site, x, *, samples, seed, batch_size=256):
    """The layer's hidden state at every step of a seeded sample of inputs.

    Returns
    -------
    states : ndarray of shape (n_inputs * n_steps, n_units), float64
    """
    keras = import_keras()
    (node,) = graph.nodes_of(find_layer(model, site.layer))
    flat, tensors = graph.flat_model(outputs=[site.input_id])
    layer = node.layer
    config = dict(layer.get_config(), return_sequences=True, name=f"{layer.name}_all_states")
    copy = layer.__class__.from_config(config)
    sequence = dataclasses.replace(node, layer=copy).replay(tensors)[0]  # the same call, mask included
    copy.set_weights(layer.get_weights())
    masks = [tensors[t] for t in node.inputs[1:]]
    probe = keras.Model(flat.input, [sequence] + masks)
    chosen = take(x, sample_indices(n_samples(x), samples, seed))
    parts = []
    for start in range(0, n_samples(chosen), batch_size):  # called directly: predict would trace a function
        outputs = probe(rows(chosen, start, start + batch_size), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # a one-output list is unwrapped
        batch = np.asarray(keras.ops.convert_to_numpy(outputs[0]), dtype=np.float64).reshape(-1, site.n_units)
        if masks:  # masked steps carry no state of their own (Keras returns zeros there)
            batch = batch[np.asarray(keras.ops.convert_to_numpy(outputs[1]), dtype=bool).reshape(-1)]
        parts.append(batch)
    states = np.concatenate(parts, axis=0)
    if states.shape[0] > _MAX_ROWS:
        kept = np.sort(np.random.default_rng(seed).choice(states.shape[0], _MAX_ROWS, replace=False))
        states = states[kept]
    return states


def _fold_rows(array, relation):
    """``rows[kept] += βᵀ rows[removed]`` in float64 (full width kept); and the offset ``shiftᵀ rows[removed]``."""
    rows = array.astype(np.float64)
    removed = rows[relation.removed]
    folded = rows.copy()
    folded[relation.kept] += relation.beta.T @ removed
    return folded.astype(array.dtype), relation.shift @ removed


def _add_bias(state, layer, offset, row):
    """Add ``offset`` to a layer's bias (row ``row`` of a 2-D GRU bias); create the bias when it is needed."""
    weights = state.arrays[layer]
    if "bias" not in weights:
        if not np.any(offset != 0):
            return
        keras_shape = (2, offset.size) if row is not None else (offset.size,)
        weights["bias"] = np.zeros(keras_shape, dtype=np.float32)
        state.added_bias.add(layer)
    bias = weights["bias"].astype(np.float64)
    if bias.ndim == 2:
        bias[1 if row == "recurrent" else 0] += offset
    else:
        bias += offset
    weights["bias"] = bias.astype(np.float32)


def _two_row_bias(model, name):
    layer = find_layer(model, name)
    return registered_name(layer) == "GRU" and layer.get_config().get("reset_after", True)


def fold_recurrent(state, site, relation, model):
    """Fold ``relation`` into the layer's recurrent kernel and its consumers; cut the units from every gate.

    Parameters
    ----------
    state : compress.merge.rebuild.WeightState
        Updated in place; the cuts are deferred to :func:`compress.merge.rebuild.rebuild_model`.
    site : RecurrentSite
    relation : compress.merge.math.Relation
        ``h[removed] ≈ β h[kept] + shift`` on the hidden states.
    model : keras.Model
        The original model (for the consumers' configurations).
    """
    if relation.removed.size == 0:
        return
    units, removed = site.n_units, relation.removed
    weights = state.arrays[site.layer]
    weights["recurrent_kernel"], offset = _fold_rows(weights["recurrent_kernel"], relation)
    _add_bias(state, site.layer, offset, "recurrent" if _two_row_bias(model, site.layer) else None)
    for name, kind in site.consumers:
        consumer = state.arrays[name]
        consumer["kernel"], offset = _fold_rows(consumer["kernel"], relation)
        _add_bias(state, name, offset, "input" if kind == "rnn" and _two_row_bias(model, name) else None)
        state.cut(name, "kernel", 0, units, removed)
    state.cut(site.layer, "kernel", 1, units, removed)  # every gate's column block
    state.cut(site.layer, "recurrent_kernel", 0, units, removed)
    state.cut(site.layer, "recurrent_kernel", 1, units, removed)
    state.cut(site.layer, "bias", 1 if _two_row_bias(model, site.layer) else 0, units, removed)
    state.resized[site.layer] = int(relation.kept.size)


def merge_recurrent_by_data(model, graph, site, state, x, *, ratio, max_error, samples, seed, ridge,
                            weigh_by_consumer=True):
    """Fit, choose and fold the removed units of one recurrent layer; its report.

    Parameters
    ----------
    model : keras.Model
    graph : analysis.graph.ModelGraph
    site : RecurrentSite
        Without a reason.
    state : compress.merge.rebuild.WeightState
    x : ndarray or list of ndarray
        Calibration inputs.
    ratio, max_error : float or None
        One of them (see :func:`compress.merge.merge_by_data`).
    samples, seed : int
    ridge : float
        Scaled by :data:`RIDGE_FACTOR`.
    weigh_by_consumer : bool, default=True
        Choose removals by the error in the consumers' and the gates' pre-activations.

    Returns
    -------
    LayerDataMerge
    """
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
        blocks = [state.arrays[site.layer]["recurrent_kernel"]]
        blocks += [state.arrays[name]["kernel"] for name, _ in site.consumers]
        weights = np.concatenate([np.asarray(b, dtype=np.float64).reshape(n, -1) for b in blocks], axis=1)
    plan = plan_data_merge(states, ratio=ratio, max_error=None if ratio is not None else max_error,
                           output_weights=weights, ridge=ridge * RIDGE_FACTOR)
    dead = set(plan.dead.tolist())
    report.removed = [{"neuron": int(j), "r2": round(float(r2), 6), "dead": int(j) in dead}
                      for j, r2 in zip(plan.remove, plan.r2)]
    report.error = float(plan.error)
    report.neurons_after = int(plan.keep.size)
    if plan.n_removed and np.max(np.abs(plan.intercept)) > 1e-6:
        report.notes.append("a folded intercept also acts at the first step, where the initial state is zero")
    fold_recurrent(state, site, Relation(plan.remove.astype(np.int64), plan.keep.astype(np.int64), plan.beta,
                                         plan.intercept), model)
    return report
