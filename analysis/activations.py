"""What neurons *do* on data: dead neurons and activation redundancy, from one batched pass.

Weight rows show only part of a network's redundancy; two neurons with unrelated weights can
still fire together on every real input, and a neuron whose bias keeps it below zero never fires
at all. This module runs a seeded sample of inputs through the model once and, per analyzed
entry, finds the **dead** neurons (constant on the sample) and the **activation Pearson and MAD**
matrices between neurons, with groups found by the same rules and defaults as for weights
(:func:`analysis.find_groups`).

What "a neuron's activation" means here
---------------------------------------
The output of the layer the neuron belongs to, *after* the layer's own activation function
(``Dense(…, activation="relu")`` gives post-ReLU values; an activation applied by a separate
``Activation`` or ``BatchNormalization`` layer afterwards is not included). Per entry kind:

- ``Dense``, ``Conv*``, ``Conv*Transpose``, ``DepthwiseConv*``, ``TimeDistributed`` of those and
  ``SimpleRNN`` (its hidden state): one neuron per output channel (the last axis, or axis 1 for
  ``data_format="channels_first"``).
- ``SeparableConv*``: the ``/pointwise`` entry is the layer's output channels. The
  ``/depthwise`` entry's output is internal to the layer (never a tensor one can probe), so it
  is skipped with that reason.
- ``LSTM``/``GRU`` gates and ``Bidirectional`` halves: gate activations are internal to the
  recurrent cell (only the mixed hidden state leaves it), so they are skipped with that reason.
- A layer used at several places in the graph, or inside a nested model, is skipped: it has no
  single output that the outer model's inputs reach.

Layers with spatial or time axes (conv, sequences)
--------------------------------------------------
No full activation tensor of a big layer is kept. One column per input sample is built by
``summary="mean"`` (the default for analysis): the per-channel mean over positions. For
data-aware merging, which needs the per-position relation between channels, ``summary="positions"``
keeps a seeded random sample of at most ``positions`` positions per input (``samples × positions``
columns). In both cases dead neurons are judged on *every* position: the running minimum and
maximum of each channel over all inputs and positions are tracked exactly. Memory is bounded by
batching: a batch's full outputs of all probed layers fit in ``memory_budget`` bytes.
"""

from dataclasses import dataclass

import numpy as np

from ._tf import import_keras
from .errors import WeightkitError
from .groups import DEFAULT_THRESHOLDS, absolute_threshold, cluster_linkage, cluster_order, find_groups, removable_count
from .loading import walk_layers
from .matrices import DEFAULT_MEMORY_BUDGET, _mad_matrix, _pearson_matrix
from .activation_results import ActivationAnalysis, ActivationSample, LayerActivations
from .results import LayerMatrices, SkippedLayer

__all__ = [
    "DEFAULT_SAMPLES",
    "SUMMARIES",
    "ActivationSample",
    "LayerActivations",
    "ActivationAnalysis",
    "sample_indices",
    "collect_activations",
    "collect_layer_outputs",
    "dead_neurons",
    "analyze_activation_matrix",
    "analyze_activations",
    "layer_activations",
    "attach_activations",
]

DEFAULT_SAMPLES = 1000
#: How a layer with positions (conv, sequence) becomes columns: one per input, or several.
SUMMARIES = {
    "mean": "per-channel mean over positions, one column per input",
    "positions": "a seeded sample of positions per input, one column per (input, position)",
}
DEFAULT_DEAD_TOLERANCE = 1e-6

SKIP_SEPARABLE_DEPTHWISE = ("the depthwise output of a separable convolution is internal to the layer; "
                            "its /pointwise entry is analyzed")
SKIP_RNN_GATE = "gate activations are internal to the recurrent cell; only its hidden state leaves it"
SKIP_BIDIRECTIONAL = "a Bidirectional layer's halves are mixed in its output; not probed"
SKIP_NESTED = "inside a nested model: its output is not reachable from the model's inputs"
SKIP_SHARED = "used at several places in the graph: no single output to probe"


# --------------------------------------------------------------------------------------------
# The numpy core
# --------------------------------------------------------------------------------------------

def sample_indices(n_available, samples=DEFAULT_SAMPLES, seed=0):
    """A seeded sample of input indices, without replacement, in increasing order.

    Parameters
    ----------
    n_available : int
    samples : int, default=1000
        All inputs when there are not more than this.
    seed : int, default=0

    Returns
    -------
    indices : ndarray of shape (min(samples, n_available),), int64
    """
    samples = int(samples)
    if samples < 1:
        raise WeightkitError(f"--samples must be at least 1, got {samples}.")
    if n_available < 1:
        raise WeightkitError("--data: no inputs to run through the model; give at least one sample.")
    if samples >= n_available:
        return np.arange(n_available, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_available, size=samples, replace=False)).astype(np.int64)


def dead_neurons(minimum, maximum, *, tolerance=DEFAULT_DEAD_TOLERANCE):
    """Neurons that are constant on the sample.

    Parameters
    ----------
    minimum, maximum : array-like of shape (n_neurons,)
        Each neuron's smallest and largest activation over the sample (all positions).
    tolerance : float, default=1e-6
        Constant when ``maximum - minimum <= tolerance * max(1, |minimum|, |maximum|)``.

    Returns
    -------
    dead : list of int
        Sorted indices. A ReLU neuron that never goes above zero is constant (0) and is listed.

    Examples
    --------
    >>> dead_neurons([0.0, -1.0, 2.0], [0.0, 3.0, 2.0])
    [0, 2]
    """
    minimum = np.asarray(minimum, dtype=np.float64)
    maximum = np.asarray(maximum, dtype=np.float64)
    scale = np.maximum(1.0, np.maximum(np.abs(minimum), np.abs(maximum)))
    return [int(i) for i in np.flatnonzero(maximum - minimum <= tolerance * scale)]


def analyze_activation_matrix(values, *, metric="pearson", threshold=None, keep_matrices=False,
                              memory_budget=DEFAULT_MEMORY_BUDGET):
    """Pearson and MAD matrices, groups and summaries of neurons' activations.

    Parameters
    ----------
    values : ndarray of shape (n_neurons, n_columns)
        One neuron's activations per row (neurons as rows, as weight rows are).
    metric : {"pearson", "mad"}, default="pearson"
    threshold : float, default=None
        The metric's default (0.9 or 0.2) when None.
    keep_matrices : bool, default=False
    memory_budget : int

    Returns
    -------
    summary : dict
        ``groups``, ``removable``, ``pearson_mean_abs_offdiag``, ``pearson_max_offdiag``,
        ``mad_median_offdiag``, ``mad_min_offdiag``, ``threshold_value`` and ``matrices``
        (a LayerMatrices or None).

    Notes
    -----
    A constant (dead) neuron has Pearson 0 with every other neuron, so it joins no Pearson
    group; with MAD, dead neurons that share their constant form a group (they are duplicates).
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    n = values.shape[0]
    pearson = _pearson_matrix(values)
    mad = _mad_matrix(values, memory_budget)
    off = ~np.eye(n, dtype=bool)
    chosen = pearson if metric == "pearson" else mad
    Z = cluster_linkage(chosen, metric)
    groups = find_groups(chosen, metric, threshold, Z=Z)
    return {
        "groups": groups,
        "removable": removable_count(groups),
        "pearson_mean_abs_offdiag": float(np.abs(pearson[off]).mean()),
        "pearson_max_offdiag": float(pearson[off].max()),
        "mad_median_offdiag": float(np.median(mad[off])),
        "mad_min_offdiag": float(mad[off].min()),
        "threshold_value": float(absolute_threshold(chosen, metric, threshold)),
        "matrices": LayerMatrices(values, pearson, mad, Z, cluster_order(Z, n)) if keep_matrices else None,
    }


# --------------------------------------------------------------------------------------------
# The Keras glue: which tensor holds an entry's activations, and one batched pass
# --------------------------------------------------------------------------------------------

@dataclass
class _Probe:
    """Where an entry's activations come from."""

    name: str
    layer_name: str
    type: str
    neurons: int
    tensor: object
    channel_axis: int


def _probe_kind(layer, entry_name):
    """None when the entry's activations are the layer's output, else the skip reason."""
    layers = import_keras().layers
    if isinstance(layer, (layers.LSTM, layers.GRU)):
        return SKIP_RNN_GATE
    if isinstance(layer, layers.Bidirectional):
        return SKIP_BIDIRECTIONAL
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        return SKIP_SEPARABLE_DEPTHWISE if entry_name.endswith("/depthwise") else None
    if isinstance(layer, layers.TimeDistributed) and isinstance(layer.layer, (layers.LSTM, layers.GRU)):
        return SKIP_RNN_GATE
    return None


def _channel_axis(layer):
    inner = getattr(layer, "layer", layer)  # TimeDistributed
    if getattr(inner, "data_format", "channels_last") == "channels_first":
        return 1 if inner is layer else 2
    return -1


def _layer_output(layer, top_level):
    """The single output tensor of a layer reachable from the model's inputs, or the skip reason."""
    if id(layer) not in top_level:
        return None, SKIP_NESTED
    if len(getattr(layer, "_inbound_nodes", [])) != 1:
        return None, SKIP_SHARED
    try:
        tensor = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None, SKIP_SHARED
    if isinstance(tensor, (list, tuple)):
        return None, "returns several tensors (return_state); not probed"
    return tensor, None


def _probes(model, entries):
    """Map each analysis entry to the tensor holding its neurons' activations."""
    top_level = {id(layer) for layer in model.layers}
    by_name = {layer.name: layer for layer in walk_layers(model)}
    probes, skipped = [], []
    for entry in entries:
        layer = by_name[entry.layer_name]
        tensor, axis = None, None
        reason = _probe_kind(layer, entry.name)
        if reason is None:
            tensor, reason = _layer_output(layer, top_level)
        if reason is None:
            axis = _channel_axis(layer)
            width = tensor.shape[axis]
            if width != entry.n_neurons:
                reason = f"its output has {width} channels on axis {axis}, the entry has {entry.n_neurons} neurons"
        if reason is not None:
            skipped.append(SkippedLayer(entry.name, entry.type, reason))
            continue
        probes.append(_Probe(entry.name, entry.layer_name, entry.type, entry.n_neurons, tensor, axis))
    return probes, skipped


def _per_sample_floats(probe):
    shape = probe.tensor.shape[1:]
    if any(d is None for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


def _batch_size(probes, batch_size, memory_budget):
    sizes = [_per_sample_floats(p) for p in probes]
    known = [s for s in sizes if s is not None]
    per_sample = 4 * (sum(known) if known else 1)
    return int(max(1, min(batch_size, memory_budget // max(per_sample, 1))))


class _Accumulator:
    """Collects one entry's columns and running min/max, batch by batch."""

    def __init__(self, probe, summary, positions, rng):
        self.probe = probe
        self.summary = summary
        self.positions = positions
        self.rng = rng
        self.minimum = np.full(probe.neurons, np.inf)
        self.maximum = np.full(probe.neurons, -np.inf)
        self.columns = []
        self.kind = None

    def add(self, output):
        array = np.asarray(output, dtype=np.float32)
        array = np.moveaxis(array, self.probe.channel_axis, -1)
        batch = array.shape[0]
        array = array.reshape(batch, -1, array.shape[-1])  # (batch, positions, channels)
        np.minimum(self.minimum, array.min(axis=(0, 1)), out=self.minimum)
        np.maximum(self.maximum, array.max(axis=(0, 1)), out=self.maximum)
        n_positions = array.shape[1]
        if n_positions == 1:
            self.kind = "values"
            self.columns.append(array[:, 0, :])
        elif self.summary == "mean":
            self.kind = "mean"
            self.columns.append(array.mean(axis=1, dtype=np.float64).astype(np.float32))
        else:
            self.kind = "positions"
            k = min(self.positions, n_positions)
            chosen = np.argsort(self.rng.random((batch, n_positions)), axis=1)[:, :k]
            picked = np.take_along_axis(array, chosen[:, :, None], axis=1)  # (batch, k, channels)
            self.columns.append(picked.reshape(batch * k, -1))

    def result(self, samples):
        values = np.concatenate(self.columns, axis=0).T if self.columns else np.zeros((self.probe.neurons, 0))
        return ActivationSample(self.probe.name, self.probe.layer_name, self.probe.type,
                                np.ascontiguousarray(values, dtype=np.float32),
                                self.minimum, self.maximum, self.kind or self.summary, samples)


def _check_summary(summary):
    if summary not in SUMMARIES:
        raise WeightkitError(
            f"Invalid value for summary. Expected one of {list(SUMMARIES)}. Received: summary={summary!r}."
        )


def _check_inputs(model, x):
    if len(getattr(model, "inputs", None) or []) > 1:
        raise WeightkitError(
            f"{model.name}: has {len(model.inputs)} inputs; activation analysis supports single-input "
            "models only."
        )
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise WeightkitError("--data: no inputs to run through the model; give at least one sample.")
    return x


def _run_probes(model, probes, x, *, samples, seed, summary, positions, batch_size, memory_budget, progress):
    """One batched pass of a seeded sample through a probe model; an ActivationSample per probe."""
    keras = import_keras()
    chosen = x[sample_indices(len(x), samples, seed)]
    probe_model = keras.Model(model.inputs, [p.tensor for p in probes], name=f"{model.name}_probe")
    rng = np.random.default_rng(seed)
    accumulators = [_Accumulator(p, summary, int(positions), rng) for p in probes]
    step = _batch_size(probes, int(batch_size), int(memory_budget))
    total = len(chosen)
    for start in range(0, total, step):
        outputs = probe_model.predict_on_batch(chosen[start:start + step])
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        for accumulator, output in zip(accumulators, outputs):
            accumulator.add(output)
        if progress is not None:
            progress(min(total, start + step), total, "activations")
    return {a.probe.name: a.result(total) for a in accumulators}


def _check_collect_options(summary, positions):
    _check_summary(summary)
    if int(positions) < 1:
        raise WeightkitError(f"positions must be at least 1, got {positions}.")


def collect_layer_outputs(model, x, layer_names, *, samples=DEFAULT_SAMPLES, seed=0, summary="positions",
                          positions=16, batch_size=256, memory_budget=DEFAULT_MEMORY_BUDGET, progress=None):
    """The per-channel outputs of named layers (any layer: BatchNormalization, pooling...) on a sample.

    Used by data-aware merging, which fits its relations on the tensor a consumer reads. Channels
    are on the last axis (channels-last layers).

    Parameters
    ----------
    model : keras.Model
    x : ndarray of shape (n_inputs, *input_shape)
    layer_names : list of str
        Top-level layers used once in the graph.
    samples, seed, summary, positions, batch_size, memory_budget, progress
        As for :func:`collect_activations`; ``summary`` defaults to ``"positions"`` here.

    Returns
    -------
    dict of str to ActivationSample
        Keyed by layer name.

    Raises
    ------
    WeightkitError
        When a layer has no single output reachable from the model's input.
    """
    _check_collect_options(summary, positions)
    x = _check_inputs(model, x)
    top_level = {id(layer) for layer in model.layers}
    probes = []
    for name in layer_names:
        layer = model.get_layer(name)
        tensor, reason = _layer_output(layer, top_level)
        if reason is not None:
            raise WeightkitError(f"{name}: its activations cannot be collected ({reason}).")
        probes.append(_Probe(name, name, type(layer).__name__, int(tensor.shape[-1]), tensor, -1))
    if not probes:
        return {}
    return _run_probes(model, probes, x, samples=samples, seed=seed, summary=summary, positions=positions,
                       batch_size=batch_size, memory_budget=memory_budget, progress=progress)


def collect_activations(model, x, *, layers=None, samples=DEFAULT_SAMPLES, seed=0, summary="mean",
                        positions=16, batch_size=256, memory_budget=DEFAULT_MEMORY_BUDGET, progress=None):
    """Run a seeded sample of inputs through the model once and collect each entry's activations.

    Parameters
    ----------
    model : keras.Model
        A functional or Sequential model with one input.
    x : ndarray of shape (n_inputs, *input_shape)
        Inputs (already shaped for the model; see :func:`analysis.data.fit_to_model`).
    layers : list of str, default=None
        Only these layer or entry names (as ``--layers``).
    samples : int, default=1000
        Inputs drawn without replacement (seeded); all when there are fewer.
    seed : int, default=0
    summary : {"mean", "positions"}, default="mean"
        How a layer with positions becomes columns (see the module docstring).
    positions : int, default=16
        Positions kept per input with ``summary="positions"``.
    batch_size : int, default=256
        Upper bound; lowered so that a batch's probed outputs fit ``memory_budget``.
    memory_budget : int, default=256 MiB
    progress : callable, default=None
        Called as ``progress(done, total, "activations")`` per batch.

    Returns
    -------
    activations : dict of str to ActivationSample
        Keyed by entry name, in model order.
    skipped : list of SkippedLayer
        Entries without a probe-able activation, with the reason.
    """
    from .model_analysis import collect_entries

    _check_collect_options(summary, positions)
    x = _check_inputs(model, x)
    entries, _ = collect_entries(model, layers)
    probes, skipped = _probes(model, entries)
    if not probes:
        return {}, skipped
    activations = _run_probes(model, probes, x, samples=samples, seed=seed, summary=summary,
                              positions=positions, batch_size=batch_size, memory_budget=memory_budget,
                              progress=progress)
    return activations, skipped


def analyze_activations(model, x, *, layers=None, samples=DEFAULT_SAMPLES, seed=0, metric="pearson",
                        threshold=None, summary="mean", positions=16, keep_matrices=False,
                        dead_tolerance=DEFAULT_DEAD_TOLERANCE, batch_size=256,
                        memory_budget=DEFAULT_MEMORY_BUDGET, progress=None):
    """Dead neurons and activation redundancy of every analyzable entry of a model.

    Parameters
    ----------
    model : keras.Model
    x : ndarray of shape (n_inputs, *input_shape)
    layers : list of str, default=None
    samples : int, default=1000
    seed : int, default=0
    metric : {"pearson", "mad"}, default="pearson"
        The metric the activation groups are found with (pass the weight analysis' metric).
    threshold : float, default=None
        The metric's default when None, exactly as for weights.
    summary : {"mean", "positions"}, default="mean"
    positions : int, default=16
    keep_matrices : bool, default=False
        Keep each entry's activations and matrices (for reports).
    dead_tolerance : float, default=1e-6
        See :func:`dead_neurons`.
    batch_size, memory_budget, progress
        See :func:`collect_activations`.

    Returns
    -------
    ActivationAnalysis
        Entries in model order; neuron ``i`` of an entry is neuron ``i`` of the weight analysis.

    Examples
    --------
    >>> result = analyze_activations(model, dataset.x_train)   # doctest: +SKIP
    >>> result.layer("hidden1").dead                             # doctest: +SKIP
    [3, 17]
    """
    if metric not in DEFAULT_THRESHOLDS:
        raise WeightkitError(
            f"Invalid value for metric. Expected one of {list(DEFAULT_THRESHOLDS)}. Received: metric={metric!r}."
        )
    absolute_threshold(np.zeros((1, 1)), metric, threshold)  # validates the threshold's range
    activations, skipped = collect_activations(
        model, x, layers=layers, samples=samples, seed=seed, summary=summary, positions=positions,
        batch_size=batch_size, memory_budget=memory_budget, progress=progress)
    result = ActivationAnalysis(
        samples=min(int(samples), len(x)), seed=int(seed), summary=summary, metric=metric,
        threshold=float(DEFAULT_THRESHOLDS[metric] if threshold is None else threshold),
        skipped=list(skipped))
    for sample in activations.values():
        item = layer_activations(sample, metric=metric, threshold=threshold, keep_matrices=keep_matrices,
                                 dead_tolerance=dead_tolerance, memory_budget=memory_budget)
        (result.skipped if isinstance(item, SkippedLayer) else result.layers).append(item)
    return result


def layer_activations(sample, *, metric="pearson", threshold=None, keep_matrices=False,
                      dead_tolerance=DEFAULT_DEAD_TOLERANCE, memory_budget=DEFAULT_MEMORY_BUDGET):
    """Dead neurons, activation matrices and groups of one entry's collected activations.

    Parameters
    ----------
    sample : ActivationSample
        From :func:`collect_activations`.
    metric, threshold, keep_matrices, dead_tolerance, memory_budget
        See :func:`analyze_activations`.

    Returns
    -------
    LayerActivations or SkippedLayer
        Skipped for a single neuron or for activations with NaN or Inf.
    """
    if sample.n_neurons < 2:
        return SkippedLayer(sample.name, sample.type, "only one neuron: nothing to compare it with")
    if not np.isfinite(sample.values).all():
        return SkippedLayer(sample.name, sample.type, "activations contain NaN or Inf on the sample")
    summary = analyze_activation_matrix(sample.values, metric=metric, threshold=threshold,
                                        keep_matrices=keep_matrices, memory_budget=memory_budget)
    return LayerActivations(
        name=sample.name, layer_name=sample.layer_name, type=sample.type, neurons=sample.n_neurons,
        samples=sample.samples, summary=sample.summary,
        dead=dead_neurons(sample.minimum, sample.maximum, tolerance=dead_tolerance), metric=metric, **summary)


def attach_activations(analysis, activations, *, source=None):
    """Merge an ActivationAnalysis into a ModelAnalysis's layers (their ``extras``).

    Each analyzed weight entry gains ``dead`` and ``activation`` (see
    :meth:`LayerActivations.to_extras`); an entry whose activations were skipped gets
    ``"dead": None`` and ``"activation": {"skipped": reason}``. Weight fields are unchanged.

    Parameters
    ----------
    analysis : ModelAnalysis
    activations : ActivationAnalysis
    source : str, default=None
        Where the inputs came from, for the note recorded in ``analysis.notes``.

    Returns
    -------
    analysis : ModelAnalysis
        The same object, updated in place.
    """
    found = {layer.name: layer for layer in activations.layers}
    reasons = {skipped.name: skipped.reason for skipped in activations.skipped}
    for layer in analysis.layers:
        entry = found.get(layer.name)
        if entry is not None and entry.neurons == layer.neurons:
            layer.extras.update(entry.to_extras())
        else:
            reason = reasons.get(layer.name, "no activations collected for this entry")
            layer.extras.update({"dead": None, "activation": {"skipped": reason}})
    where = f" of {source}" if source else ""
    note = f"activations: {activations.samples} seeded input samples{where} (seed {activations.seed})"
    if any(layer.summary == "mean" for layer in activations.layers):
        note += f"; layers with positions summarized as {SUMMARIES['mean']}"
    analysis.notes.append(note)
    return analysis
