"""Each attention head's output on calibration data, summed into the moments a head merge fits on.

A head's output (its attention-weighted values before the output projection, (batch, T, value_dim))
never leaves the layer: it is replayed from the tensors the layer's call reads and its weights
(:func:`weightkit.analysis.activations.heads.attention_heads`, the same replay ``analyze --data``
probes heads with), and the replay is checked against the layer's real output on the first batch: a
mask or call option the replay does not apply leaves the layer alone with the difference as reason.

The target each row is fitted to is the layer's output without its bias: on the same model, or on a
``reference`` model (the original, before earlier layers were merged) fed the same inputs.
"""

import numpy as np

from weightkit.analysis.activations.collect import sample_indices
from weightkit.analysis.activations.heads import REPLAY_TOLERANCE, _node_problem, _replay, attention_heads
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.fitting.heads import head_moments

__all__ = ["head_output_moments"]


def _probe(model, layer_name):
    """``((flat model returning the layer's inputs and output, its arrays), None)`` or ``(None, reason)``."""
    layer = find_layer(model, layer_name)
    graph = ModelGraph(model)
    node, reason = _node_problem(graph, layer)
    if reason is not None:
        return None, reason
    probe, _ = graph.flat_model(outputs=[*node.inputs, *node.outputs])
    return (probe, kind_for(layer).layer_arrays(layer)), None


def _predict(probe, x):
    outputs = probe.predict_on_batch(x)
    return [np.asarray(o, dtype=np.float64) for o in outputs]


def head_output_moments(model, layer_name, x, *, samples, seed=0, batch_size=64, reference=None, values=False):
    """The raw moments of one attention layer's head outputs and target over a seeded calibration sample.

    Parameters
    ----------
    model : keras.Model
    layer_name : str
        A MultiHeadAttention (or subclass) called once in the model on rank-3 tensors.
    x : ndarray or list of ndarray
        The model's inputs.
    samples : int
        Calibration inputs drawn (seeded) from ``x``.
    seed : int, default=0
    batch_size : int, default=64
    reference : keras.Model, default=None
        A model with a layer of the same name (the original, before earlier merges) whose output,
        less ``model``'s layer's output bias, is the target; None: ``model``'s own layer's.
    values : bool, default=False
        Instead of each head's output, each head's attention applied to the raw value input
        (``U_h = A_h V``, (…, heads, d_in)): what :mod:`weightkit.compress.merge.fitting.head_values` fits on.

    Returns
    -------
    moments : ndarray of shape (heads * value_dim + n_output + 1, heads * value_dim + n_output + 1) or None
        (``heads * d_in`` in place of ``heads * value_dim`` with ``values``)
        :func:`weightkit.compress.merge.fitting.heads.head_moments` summed over every input and
        query position; None when the heads cannot be replayed.
    n_rows : int
        Rows the moments sum (inputs × query positions).
    reason : str or None
        Why the heads were not probed.
    """
    found, reason = _probe(model, layer_name)
    if reason is None and reference is not None:
        target_probe, reason = _probe(reference, layer_name)
    if reason is not None:
        return None, 0, reason
    probe, arrays = found
    bias = np.asarray(arrays.get("output_bias", 0.0), dtype=np.float64)
    chosen = take(x, sample_indices(n_samples(x), samples, seed))
    total, moments, order, n_rows = n_samples(chosen), 0.0, None, 0
    for start in range(0, total, batch_size):
        batch = rows(chosen, start, start + batch_size)
        outputs = _predict(probe, batch)
        inputs, output = outputs[:-1], outputs[-1]
        if order is None:
            order, difference = _replay(arrays, inputs, output)
            if order is None or difference > REPLAY_TOLERANCE * (1.0 + float(np.abs(output).max())):
                return None, 0, (f"its heads cannot be replayed from its inputs and weights (output differs by "
                                 f"{difference:.3g}): a mask or another call option the head merge does not apply")
        heads, probs = attention_heads(arrays, *(inputs[i] for i in order))
        if values:  # the value input is the second of (query, value[, key])
            heads = np.einsum("bhts,bsd->bthd", probs, inputs[order[1]])
        target = output if reference is None else _predict(target_probe[0], batch)[-1]
        moments = moments + head_moments(heads, target - bias)
        n_rows += heads.shape[0] * heads.shape[1]
    return moments, n_rows, None
