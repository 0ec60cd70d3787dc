"""What neurons *do* on data: dead neurons and activation redundancy, from one batched pass.

Weight rows show only part of a network's redundancy; two neurons with unrelated weights can
still fire together on every real input, and a neuron whose bias keeps it below zero never fires
at all. This module runs a seeded sample of inputs through the model once and, per analyzed
entry, finds the **dead** neurons (constant on the sample) and the **activation Pearson and MAD**
matrices between neurons, with groups found by the same rules and defaults as for weights
(:func:`weightkit.analysis.find_groups`).

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
  recurrent cell, so they are skipped with that reason; the layer's output, its hidden state (each
  step's with ``return_sequences``, then summarized over time like any sequence), is analyzed as an
  entry of its own named after the layer (type ``"LSTM (hidden state)"``; a Bidirectional's holds
  both directions' units as its output does), listed in ``ModelAnalysis.states``.
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

The collection lives in :mod:`weightkit.analysis.activations.collect`, the per-layer statistics in
:mod:`weightkit.analysis.activations.stats`; this module runs both (:func:`analyze_activations`), merges the
result into a weight analysis (:func:`attach_activations`).
"""

import numpy as np

from weightkit.analysis.activations.collect import (
    DEFAULT_SAMPLES,
    SUMMARIES,
    collect_activations,
)
from weightkit.analysis.activations.results import ActivationAnalysis
from weightkit.analysis.activations.stats import (
    DEFAULT_DEAD_TOLERANCE,
    layer_activations,
)
from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.numeric.groups import DEFAULT_THRESHOLDS, absolute_threshold
from weightkit.analysis.data.inputs import as_inputs, as_model
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET
from weightkit.analysis.results import SkippedLayer

__all__ = ["analyze_activations", "attach_activations"]


def analyze_activations(model, data, *, layers=None, samples=DEFAULT_SAMPLES, seed=0, metric="pearson",
                        threshold=None, summary="mean", positions=16, keep_matrices=False,
                        dead_tolerance=DEFAULT_DEAD_TOLERANCE, batch_size=256,
                        memory_budget=DEFAULT_MEMORY_BUDGET, progress=None, unsafe=False):
    """Dead neurons and activation redundancy of every analyzable entry of a model.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        A path is loaded with :func:`weightkit.analysis.load_model` (safe mode unless ``unsafe``).
    data : Dataset, ndarray of shape (n_inputs, *input_shape), str or os.PathLike
        The inputs: a dataset's training split, an array, or a data specification loaded for
        the model (see :mod:`weightkit.analysis.data.inputs`).
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
    unsafe : bool, default=False
        Load a model path with its embedded code (see :func:`weightkit.analysis.load_model`).

    Returns
    -------
    ActivationAnalysis
        Entries in model order; neuron ``i`` of an entry is neuron ``i`` of the weight analysis.

    Examples
    --------
    >>> result = analyze_activations("model.keras", "sklearn:digits")   # doctest: +SKIP
    >>> result.layer("hidden1").dead                             # doctest: +SKIP
    [3, 17]
    """
    if metric not in DEFAULT_THRESHOLDS:
        raise WeightkitError(
            f"Invalid value for metric. Expected one of {list(DEFAULT_THRESHOLDS)}. Received: metric={metric!r}."
        )
    absolute_threshold(np.zeros((1, 1)), metric, threshold)  # validates the threshold's range
    model = as_model(model, unsafe=unsafe).model
    x, source = as_inputs(data, model)
    activations, skipped = collect_activations(
        model, x, layers=layers, samples=samples, seed=seed, summary=summary, positions=positions,
        batch_size=batch_size, memory_budget=memory_budget, progress=progress)
    result = ActivationAnalysis(
        samples=min(int(samples), n_samples(x)), seed=int(seed), summary=summary, metric=metric,
        threshold=float(DEFAULT_THRESHOLDS[metric] if threshold is None else threshold),
        skipped=list(skipped), source=source)
    for sample in activations.values():
        item = layer_activations(sample, metric=metric, threshold=threshold, keep_matrices=keep_matrices,
                                 dead_tolerance=dead_tolerance, memory_budget=memory_budget)
        (result.skipped if isinstance(item, SkippedLayer) else result.layers).append(item)
    return result


def attach_activations(analysis, activations, *, source=None):
    """Merge an ActivationAnalysis into a ModelAnalysis's layers (their ``extras``).

    Each analyzed weight entry gains ``dead`` and ``activation`` (see
    :meth:`LayerActivations.to_extras`); an entry whose activations were skipped gets
    ``"dead": None`` and ``"activation": {"skipped": reason}``. Weight fields are unchanged. The hidden
    states of recurrent layers with gate entries (no weight entry of their own) go to ``analysis.states``.

    Parameters
    ----------
    analysis : ModelAnalysis
    activations : ActivationAnalysis
    source : str, default=None
        Where the inputs came from, for the note recorded in ``weightkit.analysis.notes``
        (``activations.source`` when None).

    Returns
    -------
    analysis : ModelAnalysis
        The same object, updated in place.
    """
    source = activations.source if source is None else source
    found = {layer.name: layer for layer in activations.layers}
    reasons = {skipped.name: skipped.reason for skipped in activations.skipped}
    for layer in analysis.layers:
        entry = found.get(layer.name)
        if entry is not None and entry.neurons == layer.neurons:
            layer.extras.update(entry.to_extras())
        else:
            reason = reasons.get(layer.name, "no activations collected for this entry")
            layer.extras.update({"dead": None, "activation": {"skipped": reason}})
    analysis.states = [layer for layer in activations.layers if layer.state]
    where = f" of {source}" if source else ""
    note = f"activations: {activations.samples} seeded input samples{where} (seed {activations.seed})"
    if any(layer.summary == "mean" for layer in activations.layers):
        note += f"; layers with positions summarized as {SUMMARIES['mean']}"
    analysis.notes.append(note)
    return analysis
