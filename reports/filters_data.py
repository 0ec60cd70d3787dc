"""Where a convolution's top input patches come from: receptive fields and the inputs that excite each filter most.

- :func:`receptive_fields` walks a model's graph from its inputs and gives, for every tensor with
  spatial axes, the input window each of its positions sees (size, stride, offset per axis);
- :func:`top_inputs` picks, per filter, the ``k`` inputs whose strongest response is largest, and
  where in them it is (numpy only);
- :func:`cut_patches` cuts those windows out of the inputs.
"""

import math

import numpy as np

from weightkit.analysis.kinds.registry import kind_for

__all__ = ["Window", "cut_patches", "receptive_fields", "strongest_responses", "top_inputs", "top_of_responses"]

class Window(tuple):
    """Per spatial axis ``(size, stride, offset)``: position ``i`` sees input positions
    ``offset + i * stride ... offset + i * stride + size - 1`` (offset < 0 reaches into the padding)."""

    __slots__ = ()


def _tuple(value, rank):
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * rank


def _through(window, config, in_shape, key):
    """The window after one convolution or pooling layer with ``config`` on input spatial ``in_shape``; ``key``:
    the config key of its window (``kernel_size``, ``pool_size``: a pooling layer's strides default to it)."""
    rank = len(window)
    pool = key == "pool_size"
    kernel = _tuple(config[key], rank)
    strides = _tuple(config.get("strides") or kernel if pool else config.get("strides", 1), rank)
    dilation = _tuple(config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid")
    out = []
    for (size, jump, offset), k, s, d, n in zip(window, kernel, strides, dilation, in_shape):
        span = d * (k - 1) + 1
        if padding == "same":
            n = n if n is not None else span
            left = max((math.ceil(n / s) - 1) * s + span - n, 0) // 2
        elif padding == "causal":
            left = span - 1
        else:
            left = 0
        out.append((size + (span - 1) * jump, jump * s, offset - left * jump))
    return Window(out)


def receptive_fields(graph):
    """The receptive field of every tensor of a model with spatial axes (channels last).

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph

    Returns
    -------
    dict of int to Window or None
        By tensor id. None where the walk cannot follow (a layer that changes the spatial shape
        in a way not modelled here: upsampling, reshape). A layer that reads several tensors (Add)
        takes the widest of their windows.
    """
    fields = {}
    for tid in graph.input_ids:
        shape = graph.shape(tid)
        fields[tid] = Window([(1, 1, 0)] * (len(shape) - 2)) if len(shape) >= 3 else None
    for node in graph.nodes:
        ins = [fields.get(t) for t in node.inputs]
        kind = kind_for(node.layer)
        key = None if kind is None else kind.window_key  # convolutions and pooling layers slide a window
        spatial = [graph.shape(t) for t in node.outputs]
        known = [w for w in ins if w is not None]
        window = max(known, key=lambda w: [a[0] for a in w]) if known and len(known) == len(ins) else None
        if window is not None and key is not None:
            in_shape = graph.shape(node.inputs[0])[1:-1]
            window = _through(window, node.layer.get_config(), in_shape, key)
        elif window is not None:
            in_shape = graph.shape(node.inputs[0])[1:-1]
            if any(len(s) != len(in_shape) + 2 or s[1:-1] != in_shape for s in spatial):
                window = None  # changes the spatial shape in a way we do not model
        for tid in node.outputs:
            fields[tid] = window
    return fields


def strongest_responses(activations):
    """Per input and filter, the strongest response and where it is: what :func:`top_inputs` ranks.

    Parameters
    ----------
    activations : ndarray of shape (n_inputs, *spatial, n_filters)

    Returns
    -------
    best : ndarray of shape (n_inputs, n_filters)
    where : ndarray of shape (n_inputs, n_filters), int
        The flat output position of each strongest response.
    """
    activations = np.asarray(activations)
    flat = activations.reshape(activations.shape[0], -1, activations.shape[-1])
    where = flat.argmax(axis=1)  # (n, f)
    return np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :], where


def top_of_responses(best, where, spatial, k=8):
    """:func:`top_inputs` from :func:`strongest_responses` (gathered batch by batch, in input order)."""
    k = min(int(k), best.shape[0])
    f = best.shape[1]
    samples = np.argsort(-best, axis=0, kind="stable")[:k].T  # (f, k)
    chosen = np.take_along_axis(where.T, samples, axis=1)  # (f, k)
    positions = np.stack(np.unravel_index(chosen, spatial), axis=-1) if spatial else np.zeros((f, k, 0), int)
    values = np.take_along_axis(best.T, samples, axis=1).astype(np.float32)
    return samples, positions, values


def top_inputs(activations, k=8):
    """Per filter, the ``k`` inputs with the largest strongest response, and where it is.

    Parameters
    ----------
    activations : ndarray of shape (n_inputs, *spatial, n_filters)
    k : int, default=8

    Returns
    -------
    samples : ndarray of shape (n_filters, k'), int
        Input indices, strongest first (``k' = min(k, n_inputs)``).
    positions : ndarray of shape (n_filters, k', rank), int
        The output position of each input's strongest response.
    values : ndarray of shape (n_filters, k'), float32
    """
    activations = np.asarray(activations)
    best, where = strongest_responses(activations)
    return top_of_responses(best, where, activations.shape[1:-1], k)


def cut_patches(x, samples, positions, window):
    """The receptive-field windows of the given positions, cut from the inputs (zeros outside them).

    Parameters
    ----------
    x : ndarray of shape (n_inputs, *spatial, channels)
    samples : ndarray of shape (m, k), int
    positions : ndarray of shape (m, k, rank), int
    window : Window

    Returns
    -------
    ndarray of shape (m, k, *window sizes, channels)
    """
    x = np.asarray(x)
    sizes = [size for size, _, _ in window]
    out = np.zeros((*samples.shape, *sizes, x.shape[-1]), dtype=np.float32)
    for index in np.ndindex(*samples.shape):
        starts = [offset + int(p) * jump for p, (_, jump, offset) in zip(positions[index], window)]
        source, target = [], []
        for start, size, n in zip(starts, sizes, x.shape[1:-1]):
            lo, hi = max(start, 0), min(start + size, n)
            if hi <= lo:
                break
            source.append(slice(lo, hi))
            target.append(slice(lo - start, hi - start))
        else:
            out[index][tuple(target)] = x[samples[index]][tuple(source)]
    return out
