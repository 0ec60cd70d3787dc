"""Attention heads on data: each head's output, its attention entropy and its contribution.

A MultiHeadAttention's ``name/heads`` entry has no output tensor of its own: a head's output (its
attention-weighted values, before the output projection) is inside the layer. It is recomputed
here from the layer's weights and the tensors its call reads, and checked against the layer's
real output on the first batch (a mask or option the call passes that this replay does not know
makes the entry skipped, with the difference, never silently wrong).

Per head, besides the activations the usual statistics read (Pearson/MAD and groups between heads,
columns: each input's head output averaged over positions, one column per (input, value channel)):

- ``entropy``: the mean entropy (nats) of its attention distribution over key positions, and
  ``entropy_ratio``, that divided by ``log(key positions)``: 1 is uniform attention (Voita et al.
  2019 call the opposite "confident" heads);
- ``contribution``: the mean L2 norm, per input and query position, of its output after the output
  projection: what it writes into the layer's output (a head near zero contributes nothing; compare
  Michel et al. 2019, who measure a head's importance by the loss's sensitivity to masking it).
"""

import itertools

import numpy as np

from weightkit.analysis.activations.results import ActivationSample
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.analysis.kinds.layers import spec_for
from weightkit.analysis.results import SkippedLayer

__all__ = ["UNIFORM_RATIO", "SILENT_RATIO", "attention_heads", "collect_heads"]

#: A head whose mean attention entropy is at least this fraction of the uniform distribution's is flagged uniform.
UNIFORM_RATIO = 0.95
#: A head whose contribution is at most this fraction of its layer's largest head's is flagged silent.
SILENT_RATIO = 0.01
#: The replayed output must match the layer's within this, relative to the output's largest magnitude.
REPLAY_TOLERANCE = 1e-4


def _project(x, kernel, bias):
    y = np.einsum("btd,dhk->bthk", x, kernel)
    return y if bias is None else y + bias


def attention_heads(arrays, query, value, key=None):
    """Head outputs and attention of a MultiHeadAttention over rank-3 inputs, from its weight arrays.

    Parameters
    ----------
    arrays : dict of str to ndarray
        As :meth:`weightkit.analysis.kinds.attention.MultiHeadAttentionKind.layer_arrays` gives them.
    query : ndarray of shape (batch, T, d)
    value : ndarray of shape (batch, S, d)
    key : ndarray of shape (batch, S, d), default=None
        ``value`` when None, as in Keras.

    Returns
    -------
    heads : ndarray of shape (batch, T, heads, value_dim)
        Each head's attention-weighted values, before the output projection.
    probs : ndarray of shape (batch, heads, T, S)
        Each head's attention distribution over key positions.
    """
    key = value if key is None else key
    q = _project(query, arrays["query_kernel"], arrays.get("query_bias"))
    k = _project(key, arrays["key_kernel"], arrays.get("key_bias"))
    v = _project(value, arrays["value_kernel"], arrays.get("value_bias"))
    scores = np.einsum("bthk,bshk->bhts", q / np.sqrt(q.shape[-1]), k)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.einsum("bhts,bshv->bthv", probs, v), probs


def _replay(arrays, inputs, output):
    """``(order, max difference)`` of the input order (query, value[, key]) that best replays ``output``."""
    best = (None, np.inf)
    for order in itertools.permutations(range(len(inputs))):
        try:
            heads, _ = attention_heads(arrays, *(inputs[i] for i in order))
        except ValueError:  # cross-attention: this order gives a projection inputs of another width
            continue
        out = np.einsum("bthv,hvd->btd", heads, arrays["output_kernel"]) + arrays.get("output_bias", 0.0)
        diff = float(np.abs(out - output).max()) if out.shape == output.shape else np.inf
        if diff < best[1]:
            best = (order, diff)
    return best


class _HeadAccumulator:
    def __init__(self, name, layer, arrays, node):
        self.name, self.layer, self.arrays, self.node = name, layer, arrays, node
        self.order, self.reason = None, None
        self.columns, self.entropy, self.contribution = [], [], []
        self.minimum = self.maximum = None
        self.key_positions = 1

    def add(self, inputs, output):
        if self.order is None:
            order, diff = _replay(self.arrays, inputs, output)
            if order is None or diff > REPLAY_TOLERANCE * (1.0 + float(np.abs(output).max())):
                self.reason = (f"its heads cannot be replayed from its inputs and weights (output differs by {diff:.3g}"
                               "): a mask or another call option this probe does not apply")
                return
            self.order = order
        heads, probs = attention_heads(self.arrays, *(inputs[i] for i in self.order))
        batch, _, n_heads, _ = heads.shape
        self.columns.append(heads.mean(axis=1).transpose(1, 0, 2).reshape(n_heads, -1))
        low, high = heads.min(axis=(0, 1, 3)), heads.max(axis=(0, 1, 3))
        self.minimum = low if self.minimum is None else np.minimum(self.minimum, low)
        self.maximum = high if self.maximum is None else np.maximum(self.maximum, high)
        entropy = -(probs * np.log(np.clip(probs, 1e-30, None))).sum(axis=-1)  # (batch, heads, T)
        self.entropy.append(entropy.mean(axis=2).sum(axis=0))
        written = np.einsum("bthv,hvd->bthd", heads, self.arrays["output_kernel"])
        self.contribution.append(np.linalg.norm(written, axis=-1).mean(axis=1).sum(axis=0))
        self.key_positions = probs.shape[-1]

    def result(self, total, kind_name):
        entropy = np.sum(self.entropy, axis=0) / total
        contribution = np.sum(self.contribution, axis=0) / total
        ratio = entropy / np.log(self.key_positions) if self.key_positions > 1 else np.ones_like(entropy)
        largest = float(contribution.max()) if contribution.size else 0.0
        stats = {"entropy": [float(v) for v in entropy], "entropy_ratio": [float(v) for v in ratio],
                 "contribution": [float(v) for v in contribution],
                 "uniform": [int(i) for i in np.flatnonzero(ratio >= UNIFORM_RATIO)],
                 "silent": [int(i) for i in np.flatnonzero(contribution <= SILENT_RATIO * largest)]}
        values = np.ascontiguousarray(np.concatenate(self.columns, axis=1), dtype=np.float32)
        return ActivationSample(self.name, self.layer.name, kind_name, values, self.minimum.astype(np.float64),
                                self.maximum.astype(np.float64), "mean", total, heads=stats)


def _node_problem(graph, layer):
    nodes = graph.nodes_of(layer)
    if len(nodes) != 1:
        return None, "called at several places of the model (or none): its heads are probed at one call only"
    node = nodes[0]
    shapes = [graph.shape(t) for t in node.inputs]
    if not 2 <= len(shapes) <= 3 or any(len(s) != 3 for s in shapes) or len(node.outputs) != 1:
        return None, "its call is not (query, value[, key]) over (batch, positions, features): not probed"
    return node, None


def collect_heads(graph, x, names, chosen_indices, batch_size=64, progress=None):
    """Each MultiHeadAttention heads entry's head outputs and statistics on the chosen inputs.

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph
    x : ndarray or list of ndarray
        The model's inputs.
    names : dict of str to keras.layers.Layer
        Heads entry name -> its layer.
    chosen_indices : ndarray of int
        The seeded sample (as :func:`weightkit.analysis.activations.collect.sample_indices` gives it).
    batch_size : int, default=64

    Returns
    -------
    samples : dict of str to ActivationSample
        With ``heads`` statistics (see the module docstring).
    skipped : list of SkippedLayer
    """
    accumulators, skipped = [], []
    for name, layer in names.items():
        node, reason = _node_problem(graph, layer)
        if reason is not None:
            skipped.append(SkippedLayer(name, type(layer).__name__, reason))
            continue
        accumulators.append(_HeadAccumulator(name, layer, spec_for(layer).layer_arrays(layer), node))
    if not accumulators:
        return {}, skipped
    wanted = [t for a in accumulators for t in (*a.node.inputs, *a.node.outputs)]
    probe_model, _ = graph.flat_model(outputs=wanted)
    chosen = take(x, chosen_indices)
    total = n_samples(chosen)
    for start in range(0, total, batch_size):
        outputs = probe_model.predict_on_batch(rows(chosen, start, start + batch_size))
        outputs = iter([np.asarray(o, dtype=np.float64) for o in
                        (outputs if isinstance(outputs, (list, tuple)) else [outputs])])
        for accumulator in accumulators:
            inputs = [next(outputs) for _ in accumulator.node.inputs]
            output = next(outputs)
            if accumulator.reason is None:
                accumulator.add(inputs, output)
        if progress is not None:
            progress(min(total, start + batch_size), total, "attention heads")
    samples = {}
    for accumulator in accumulators:
        kind_name = type(accumulator.layer).__name__
        if accumulator.reason is not None:
            skipped.append(SkippedLayer(accumulator.name, kind_name, accumulator.reason))
        else:
            samples[accumulator.name] = accumulator.result(total, kind_name)
    return samples, skipped
