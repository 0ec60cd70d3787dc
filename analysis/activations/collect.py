"""Collecting activations: one batched pass of a seeded input sample through a probe model.

Which tensor holds an entry's activations (see :mod:`weightkit.analysis.activations` for what "a neuron's
activation" means per layer kind and which entries are skipped, with the reason), a seeded sample
of inputs, and one pass in batches sized to ``memory_budget``, keeping per entry either one column
per input (``summary="mean"``) or a sample of positions per input (``summary="positions"``) and the
exact running minimum and maximum of each channel over every position.

The statistics computed from what is collected live in :mod:`weightkit.analysis.activations.stats`;
:mod:`weightkit.analysis.activations` re-exports both.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.activations.heads import collect_heads
from weightkit.analysis.activations.results import ActivationSample
from weightkit.analysis.data.batches import as_batches, n_samples, rows, take
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.depthwise import SKIP_DEPTHWISE_HALF
from weightkit.analysis.kinds.layers import spec_for
from weightkit.analysis.kinds.recurrent import SKIP_RNN_GATE
from weightkit.analysis.kinds.wrappers import SKIP_BIDIRECTIONAL
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET
from weightkit.analysis.model_analysis import collect_entries
from weightkit.analysis.results import SkippedLayer

__all__ = ["DEFAULT_SAMPLES", "SUMMARIES", "collect_activations", "collect_layer_outputs", "sample_indices"]

DEFAULT_SAMPLES = 1000
#: How a layer with positions (conv, sequence) becomes columns: one per input, or several.
SUMMARIES = {
    "mean": "per-channel mean over positions, one column per input",
    "positions": "a seeded sample of positions per input, one column per (input, position)",
}

#: Why a SeparableConv's depthwise entry is not probed. Each kind says why its internal entries are not
#: (``internal_reason``); this and :data:`SKIP_RNN_GATE`, :data:`SKIP_BIDIRECTIONAL` are re-exported from the kinds.
SKIP_SEPARABLE_DEPTHWISE = SKIP_DEPTHWISE_HALF
SKIP_UNREACHABLE = "not called in the model's graph: its output is not reachable from the model's inputs"


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


@dataclass
class _Probe:
    """Where an entry's activations come from."""

    name: str
    layer_name: str
    type: str
    neurons: int
    tensors: list  # flat tensor ids (weightkit.analysis.structure.graph): the layer's output at each call site
    channel_axis: int
    shape: tuple  # the output's static shape, batch axis included
    state: bool = False  # a recurrent layer's output beside its gate entries (ActivationSample.state)


#: Why a composite layer's sublayer is not probed.
SKIP_SUBLAYER = "inside a composite layer: its output is not a tensor of the model's graph; not probed"


def _probe_kind(layer, entry_name):
    """None when the entry's activations are the layer's output, else the skip reason (the layer's kind says)."""
    kind = spec_for(layer)
    return None if kind is None else kind.probe_skip(layer, entry_name.rsplit("/", 1)[-1])


def _channel_axis(layer):
    inner = getattr(layer, "layer", layer)  # TimeDistributed
    if getattr(inner, "data_format", "channels_last") == "channels_first":
        return 1 if inner is layer else 2
    return -1


def _layer_outputs(graph, layer):
    """The layer's output at each of its calls in the model (flat ids), or the skip reason."""
    nodes = graph.nodes_of(layer)
    if not nodes:
        return None, SKIP_UNREACHABLE
    return [node.outputs[0] for node in nodes], None  # outputs[0]: the sequence/state, not return_state's extras


def _hidden_state_entry(layer, kind):
    """For an RNN with gates (or a Bidirectional one): its output, the hidden state, as one more entry."""
    if kind is None or not kind.hidden_state_probed():
        return None
    return layer.name, f"{type(layer).__name__} (hidden state)"


def _probe(graph, layer, name, kind, neurons):
    """A _Probe of the layer's output, or (None, reason)."""
    tensors, reason = _layer_outputs(graph, layer)
    if reason is not None:
        return None, reason
    axis = _channel_axis(layer)
    shape = graph.shape(tensors[0])
    width = shape[axis] if len(shape) > 1 else 1
    if neurons is None:
        neurons = width
    if width != neurons:
        return None, f"its output has {width} channels on axis {axis}, the entry has {neurons} neurons"
    return _Probe(name, layer.name, kind, int(neurons), tensors, axis, shape), None


def _probes(model, entries, graph):
    """Map each analysis entry to the tensors holding its neurons' activations."""
    by_name = {layer.name: layer for layer in walk_layers(model)}
    probes, skipped, states = [], [], set()
    for entry in entries:
        layer = by_name.get(entry.layer_name)
        if layer is None:  # a sublayer of a composite layer (rows.composite_leaves): called inside its owner
            skipped.append(SkippedLayer(entry.name, entry.type, SKIP_SUBLAYER))
            continue
        reason = _probe_kind(layer, entry.name)
        probe = None
        if reason is None:
            probe, reason = _probe(graph, layer, entry.name, entry.type, entry.n_neurons)
        if reason is not None:
            skipped.append(SkippedLayer(entry.name, entry.type, reason))
        else:
            probes.append(probe)
        state = _hidden_state_entry(layer, spec_for(layer))
        if state is not None and state[0] not in states:
            states.add(state[0])
            probe, reason = _probe(graph, layer, state[0], state[1], None)
            if reason is not None:
                skipped.append(SkippedLayer(state[0], state[1], reason))
            else:
                probe.state = True
                probes.append(probe)
    return probes, skipped


def _per_sample_floats(probe):
    shape = probe.shape[1:]
    if any(d is None for d in shape):
        return None
    return len(probe.tensors) * int(np.prod(shape, dtype=np.int64))


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
                                self.minimum, self.maximum, self.kind or self.summary, samples, self.probe.state)


def _check_summary(summary):
    if summary not in SUMMARIES:
        raise WeightkitError(
            f"Invalid value for summary. Expected one of {list(SUMMARIES)}. Received: summary={summary!r}."
        )


def _check_inputs(model, x):
    x = as_batches(x, len(getattr(model, "inputs", None) or [None]))
    if (x[0] if isinstance(x, list) else x).ndim < 1 or n_samples(x) == 0:
        raise WeightkitError("--data: no inputs to run through the model; give at least one sample.")
    return x


def _run_probes(model, graph, probes, x, *, samples, seed, summary, positions, batch_size, memory_budget,
                progress):
    """One batched pass of a seeded sample through a probe model; an ActivationSample per probe.

    A layer called at several places contributes its output at every call: the calls' outputs
    are stacked along the batch axis, as more observations of the same neurons.
    """
    chosen = take(x, sample_indices(n_samples(x), samples, seed))
    wanted = [tid for p in probes for tid in p.tensors]
    probe_model, _ = graph.flat_model(outputs=wanted)
    rng = np.random.default_rng(seed)
    accumulators = [_Accumulator(p, summary, int(positions), rng) for p in probes]
    step = _batch_size(probes, int(batch_size), int(memory_budget))
    total = n_samples(chosen)
    for start in range(0, total, step):
        outputs = probe_model.predict_on_batch(rows(chosen, start, start + step))
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        outputs = iter(outputs)
        for accumulator in accumulators:
            calls = [np.asarray(next(outputs)) for _ in accumulator.probe.tensors]
            accumulator.add(calls[0] if len(calls) == 1 else np.concatenate(calls, axis=0))
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
    graph = ModelGraph(model)
    probes = []
    for name in layer_names:
        layer = _layer_named(model, name)
        probe, reason = _probe(graph, layer, name, type(layer).__name__, None)
        if reason is not None:
            raise WeightkitError(f"{name}: its activations cannot be collected ({reason}).")
        probe.channel_axis = -1  # merge taps are channels-last
        probes.append(probe)
    if not probes:
        return {}
    return _run_probes(model, graph, probes, x, samples=samples, seed=seed, summary=summary, positions=positions,
                       batch_size=batch_size, memory_budget=memory_budget, progress=progress)


def _layer_named(model, name):
    for layer in walk_layers(model):
        if layer.name == name:
            return layer
    raise WeightkitError(f"{name}: no such layer in model {model.name!r}.")


def collect_activations(model, x, *, layers=None, samples=DEFAULT_SAMPLES, seed=0, summary="mean",
                        positions=16, batch_size=256, memory_budget=DEFAULT_MEMORY_BUDGET, progress=None):
    """Run a seeded sample of inputs through the model once and collect each entry's activations.

    Parameters
    ----------
    model : keras.Model
        A functional or Sequential model with one input.
    x : ndarray of shape (n_inputs, *input_shape)
        Inputs (already shaped for the model; see :func:`weightkit.analysis.data.datasets.fit_to_model`).
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
    _check_collect_options(summary, positions)
    x = _check_inputs(model, x)
    graph = ModelGraph(model)
    entries, _ = collect_entries(model, layers, graph)
    probes, skipped = _probes(model, entries, graph)
    by_name = {layer.name: layer for layer in walk_layers(model)}
    head_layers = {e.name: by_name[e.layer_name] for e in entries if e.layer_name in by_name
                   and getattr(spec_for(by_name[e.layer_name]), "head_probe", False)}
    skipped = [s for s in skipped if s.name not in head_layers]
    activations = {} if not probes else _run_probes(
        model, graph, probes, x, samples=samples, seed=seed, summary=summary, positions=positions,
        batch_size=batch_size, memory_budget=memory_budget, progress=progress)
    if head_layers:
        chosen = sample_indices(n_samples(x), samples, seed)
        found, missed = collect_heads(graph, x, head_layers, chosen, progress=progress)
        activations = {e.name: (activations.get(e.name) or found[e.name]) for e in entries
                       if e.name in activations or e.name in found} | {
            name: sample for name, sample in activations.items() if sample.state}
        skipped += missed
    return activations, skipped
