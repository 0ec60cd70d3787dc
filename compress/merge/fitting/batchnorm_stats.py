"""BatchNormalization re-estimation: a merged model's moving statistics recomputed on calibration data.

Merging changes what each BatchNormalization reads, while its moving mean and variance still
describe the original model. :func:`reestimate_batchnorm` replaces them by the exact statistics
of the merged model on the calibration inputs: per channel, the mean and the (biased, as Keras'
``ops.moments``) variance over every input and position. A BatchNormalization's input depends on
the ones before it, so they are processed in levels: one batched pass per level computes the
statistics of every layer whose upstream BatchNormalizations are already done. The result is what
``model(x, training=True)`` would normalize with if all of ``x`` were one batch.
"""

import numpy as np

from weightkit.analysis.activations.collect import sample_indices
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["reestimate_batchnorm"]


def _moving_statistics(layer):
    """Whether the layer normalizes with moving statistics (its kind's :attr:`moving_statistics`)."""
    kind = kind_for(layer)
    return kind is not None and kind.moving_statistics


def _levels(graph):
    """BatchNormalization nodes grouped by how many others lie upstream of them (channels-last only)."""
    level = {}

    def depth(tensor, seen):
        node = graph.producer(tensor)
        if node is None or node.index in seen:
            return seen.get(node.index, 0) if node is not None else 0
        inner = max((depth(t, seen) for t in node.inputs), default=0)
        seen[node.index] = inner + (1 if _moving_statistics(node.layer) else 0)
        return seen[node.index]

    seen = {}
    for node in graph.nodes:
        layer = node.layer
        if _moving_statistics(layer) and not graph.is_shared(layer):
            if layer.axis not in (-1, len(graph.shape(node.inputs[0])) - 1):
                continue
            level[node.index] = max((depth(t, seen) for t in node.inputs), default=0)
    by_level = {}
    for index, value in sorted(level.items()):
        by_level.setdefault(value, []).append(graph.nodes[index])
    return [by_level[key] for key in sorted(by_level)]


def reestimate_batchnorm(model, x, *, samples=1000, seed=0, batch_size=256):
    """Set every BatchNormalization's moving mean and variance to the model's statistics on ``x``.

    Parameters
    ----------
    model : keras.Model
        Modified in place (typically a merged model).
    x : ndarray of shape (n_inputs, *input_shape), or list of them
        Calibration inputs (the training split).
    samples : int, default=1000
        A seeded sample of the inputs (all when there are fewer).
    seed : int, default=0
    batch_size : int, default=256

    Returns
    -------
    names : list of str
        The BatchNormalization layers re-estimated, in model order. Channels-first ones and
        layers called at several places are left as they are.
    passes : int
        Batched passes over the sample (one per level).
    """
    graph = ModelGraph(model)
    chosen = take(x, sample_indices(n_samples(x), samples, seed))
    total = n_samples(chosen)
    done = []
    levels = _levels(graph)
    for nodes in levels:
        probe, _ = graph.flat_model(outputs=[node.inputs[0] for node in nodes])
        sums = [None] * len(nodes)
        squares = [None] * len(nodes)
        counts = [0] * len(nodes)
        for start in range(0, total, int(batch_size)):
            outputs = probe.predict_on_batch(rows(chosen, start, start + int(batch_size)))
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for i, output in enumerate(outputs):
                array = np.asarray(output, dtype=np.float64)
                array = array.reshape(-1, array.shape[-1])
                sums[i] = array.sum(axis=0) + (0 if sums[i] is None else sums[i])
                squares[i] = (array * array).sum(axis=0) + (0 if squares[i] is None else squares[i])
                counts[i] += array.shape[0]
        for node, total_sum, total_square, count in zip(nodes, sums, squares, counts):
            mean = total_sum / count
            variance = np.maximum(total_square / count - mean * mean, 0.0)
            layer = node.layer
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))
            done.append(layer.name)
    return done, len(levels)
