"""Turn a residual stream to its principal directions and keep the strongest: SliceGPT for Keras models.

Ashkboos et al. 2024 (SliceGPT) observe that a pre-norm transformer computes the same function when its
residual stream is turned by any orthogonal matrix ``Q``: the writers' output columns become ``W Q``, the
readers' rows ``Qᵀ W``, and an RMS normalization does not see the turn (``‖x Q‖ = ‖x‖``). Turned to the principal
directions of the stream on calibration data, its last directions carry little: deleting them (keeping the
first ``width`` columns of ``Q``) makes every writer, reader and normalization narrower.

The steps, on float64 copies of the weights (:class:`~weightkit.compress.merge.applying.rebuild.WeightState`):

1. A LayerNormalization subtracts the channels' mean, which a turn does not commute with; its writers are
   centered instead (``W ← W (I - 11ᵀ/d)``), so every tensor of the stream has mean 0 over its channels and the
   normalization is an RMS normalization.
2. Each normalization's scale (and offset) moves into its readers' rows (and biases): ``γ`` scales the rows,
   ``β W`` adds to the bias. It becomes an RMSNormalization with no own parameters but a constant.
3. ``Q``: the eigenvectors of the stream's second moment, summed over the tensors its normalizations read
   (:func:`stream_basis`). One ``Q`` serves the whole stream, so its joins stay plain ``Add`` calls.
4. The writers' columns become ``W Q[:, :width]``, the readers' rows ``Q[:, :width]ᵀ W``; each RMSNormalization
   gets scale ``sqrt(d / width)`` and epsilon ``ε d / width``, so it divides by the norm over ``d`` channels as
   before (of what is left of the stream).

At ``width = d`` the model is the same function (outputs within float rounding); below, what the dropped
directions carried is lost, and a short fine-tune usually wins it back
(:func:`weightkit.compress.shrink.stream_stage.stream_stage`).
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.batches import n_samples, rows
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.compress.merge.applying.rebuild import WeightState, rebuild_model

__all__ = ["StreamBasis", "slice_stream_weights", "sliced_model", "stream_basis"]


class StreamBasis:
    """The principal directions of a stream: ``rotation`` (d, d) orthonormal columns, strongest first, and the
    share of the second moment each keeps (``energy``, shape (d,), summing to 1)."""

    def __init__(self, rotation, energy):
        self.rotation, self.energy = rotation, energy

    def kept(self, width):
        """The share of the stream's second moment the first ``width`` directions keep."""
        return float(np.sum(self.energy[:width]))

    def width_keeping(self, share):
        """The fewest directions that keep ``share`` of the second moment."""
        return int(min(len(self.energy), np.searchsorted(np.cumsum(self.energy), share - 1e-12) + 1))


def stream_basis(model, stream, x, graph=None, batch_size=128):
    """The principal directions of ``stream`` on inputs ``x``, read batch by batch.

    Parameters
    ----------
    model : keras.Model
    stream : Stream
    x : ndarray of shape (n_samples, ...), or a list of them (one per input)
    graph : ModelGraph, default=None
    batch_size : int, default=128

    Returns
    -------
    StreamBasis
        From the (d, d) sum of ``xᵀx`` over every position of every tensor the stream's readers read, each
        centered over its channels when the stream's normalizations center.
    """
    graph = graph or ModelGraph(model)
    probe, _ = graph.flat_model(outputs=stream.observed)
    d = stream.width
    moment = np.zeros((d, d))
    for start in range(0, n_samples(x), batch_size):
        outputs = probe(rows(x, start, start + batch_size), training=False)
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            values = np.asarray(output, dtype=np.float64).reshape(-1, d)
            if stream.centers:
                values = values - values.mean(axis=1, keepdims=True)
            moment += values.T @ values
    eigenvalues, vectors = np.linalg.eigh(moment)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    return StreamBasis(vectors[:, order], eigenvalues / max(float(eigenvalues.sum()), 1e-300))


def _on_axis(array, axis, matrix):
    """``array`` with its ``axis`` (length d) mapped through ``matrix`` (d, width)."""
    moved = np.moveaxis(np.asarray(array, dtype=np.float64), axis, -1)
    return np.moveaxis(moved @ matrix, -1, axis)


def slice_stream_weights(state, stream, basis, width):
    """Turn and slice ``stream`` in ``state`` (changed in place): see the module docstring.

    Parameters
    ----------
    state : WeightState
    stream : Stream
    basis : StreamBasis
    width : int
        Channels kept, 1 to ``stream.width``.

    Returns
    -------
    dict of str to float
        The normalizations' new epsilons, by layer name.
    """
    d = stream.width
    kept = basis.rotation[:, :width]
    writes = (np.eye(d) - 1.0 / d) @ kept if stream.centers else kept
    for writer in stream.writers:
        arrays = state.arrays[writer.layer]
        for key, axis in writer.writes:
            arrays[key] = _on_axis(arrays[key], axis, writes).astype(np.float32)
    norms = {norm.layer: norm for norm in stream.norms}
    for reader in stream.readers:
        arrays, norm = state.arrays[reader.layer], norms.get(reader.norm)
        own = state.arrays.get(reader.norm, {}) if norm else {}
        scale = own.get(norm.scale) if norm and norm.scale else None
        offset = own.get(norm.offset) if norm and norm.offset else None
        for kernel_key, bias_key in reader.kernels:
            kernel = np.asarray(arrays[kernel_key], dtype=np.float64)
            flat = kernel.reshape(d, -1)
            if offset is not None and bias_key is not None:
                bias = arrays[bias_key]
                shift = (np.asarray(offset, np.float64) @ flat).reshape(bias.shape)
                arrays[bias_key] = (bias + shift).astype(np.float32)
            if scale is not None:
                flat = np.asarray(scale, np.float64)[:, None] * flat
            arrays[kernel_key] = (kept.T @ flat).reshape((width,) + kernel.shape[1:]).astype(np.float32)
    epsilons = {}
    for norm in stream.norms:
        state.arrays[norm.layer] = {"scale": np.full(width, np.sqrt(d / width), dtype=np.float32)}
        epsilons[norm.layer] = norm.epsilon * d / width
    return epsilons


def sliced_model(model, stream, basis, width):
    """A new model with ``stream`` turned and cut to ``width`` channels; ``model`` is not modified.

    Its normalizations are RMSNormalization layers of the same names; its writers are re-created with
    ``width`` output channels (:meth:`~weightkit.analysis.kinds.stream_rules.StreamRules.stream_width_config`).

    Returns
    -------
    keras.Model
        Uncompiled.
    """
    keras = import_keras()
    state = WeightState(model)
    epsilons = slice_stream_weights(state, stream, basis, width)
    for reader in stream.readers:  # a reader writing elsewhere keeps its output's width
        state.reconfigured[reader.layer] = lambda config, layer: kind_for(layer).stream_read_config(config, layer)
    for writer in stream.writers:
        state.reconfigured[writer.layer] = lambda config, layer: kind_for(layer).stream_width_config(config, width)
    for name, epsilon in epsilons.items():
        state.replaced[name] = lambda layer, epsilon=epsilon: keras.layers.RMSNormalization(
            axis=-1, epsilon=epsilon, name=layer.name, dtype=layer.dtype_policy)
    return rebuild_model(model, state)
