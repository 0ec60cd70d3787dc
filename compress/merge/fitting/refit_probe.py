"""Probing for the sequential refit: the same inputs and positions on every pass, one probe model per model.

The refit pairs the original model's activations with the merged-so-far model's, row for row, so
both are read at the same seeded inputs and the same sampled positions: every call of
:meth:`TapProbe.collect` draws the positions from a generator seeded afresh. The merged-so-far
model is built once at the original widths (:class:`PreviewModel`); each stage only sets its
weights, so its probe is traced once, not once per stage.
"""

import copy

import numpy as np

from weightkit.analysis.activations.collect import sample_indices
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET
from weightkit.compress.merge.applying.rebuild import find_layer, rebuild_model, weight_keys

__all__ = ["PreviewModel", "TapProbe", "zeroed_arrays"]


class TapProbe:
    """The outputs of named layers (channels last) on a fixed seeded sample, in batches.

    Parameters
    ----------
    model : keras.Model
    names : list of str
        Layers called once in the model.
    x : ndarray or list of ndarray
        Inputs; a seeded sample of ``samples`` of them is kept.
    samples, seed, positions : int
        As for :func:`weightkit.analysis.activations.collect_layer_outputs` (``summary="positions"``).
    batch_size : int, default=256
        Upper bound; lowered so that a batch's probed outputs fit ``memory_budget`` bytes.
    memory_budget : int, default=256 MiB
    """

    def __init__(self, model, names, x, *, samples, seed, positions, batch_size=256,
                 memory_budget=DEFAULT_MEMORY_BUDGET):
        graph = ModelGraph(model)
        tensors = [graph.nodes_of(find_layer(model, name))[0].outputs[0] for name in names]
        self.model, _ = graph.flat_model(outputs=tensors)
        self.names = list(names)
        self.x = take(x, sample_indices(n_samples(x), samples, seed))
        self.seed, self.positions = int(seed), int(positions)
        per_sample = 4 * sum(int(np.prod([d or 1 for d in graph.shape(t)[1:]])) for t in tensors)
        self.batch_size = int(max(1, min(int(batch_size), memory_budget // max(per_sample, 1))))

    def collect(self):
        """Every layer's activations, ``name -> (n_rows, channels)`` float32, rows input-major.

        A layer with positions keeps ``positions`` of them per input, drawn from a generator
        seeded with ``seed`` on every call: the same rows each time for outputs of the same shapes.
        """
        rng = np.random.default_rng(self.seed)
        columns = {name: [] for name in self.names}
        total = n_samples(self.x)
        for start in range(0, total, self.batch_size):
            outputs = self.model.predict_on_batch(rows(self.x, start, start + self.batch_size))
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for name, output in zip(self.names, outputs):
                array = np.asarray(output, dtype=np.float32)
                batch = array.shape[0]
                array = array.reshape(batch, -1, array.shape[-1])
                if array.shape[1] > 1:
                    k = min(self.positions, array.shape[1])
                    chosen = np.argsort(rng.random((batch, array.shape[1])), axis=1)[:, :k]
                    array = np.take_along_axis(array, chosen[:, :, None], axis=1)
                columns[name].append(array.reshape(-1, array.shape[-1]))
        return {name: np.concatenate(parts, axis=0) for name, parts in columns.items()}


def zeroed_arrays(state):
    """The state's arrays at the original widths, every entry pending a cut set to 0.

    A removed channel is then 0 wherever it is produced and read by rows of zeros: the model
    computes what the cut model will.
    """
    arrays = {layer: dict(variables) for layer, variables in state.arrays.items()}
    for (layer, name, axis), (width, indices) in state.cuts.items():
        array = arrays[layer].get(name)
        if array is None:
            continue
        moved = np.moveaxis(array, axis, 0)
        blocks = moved.reshape((-1, width) + moved.shape[1:]).copy()
        blocks[:, sorted(indices)] = 0
        arrays[layer][name] = np.moveaxis(blocks.reshape(moved.shape), 0, axis)
    return arrays


class PreviewModel:
    """The merged-so-far model at the original widths, built once, its weights set at each stage.

    Parameters
    ----------
    model : keras.Model
        The original.
    state : WeightState
        Its state before any fold (not modified).
    biased : set of str
        Layers that may get a bias a fold gives them: built with one (zeros until then).
    """

    def __init__(self, model, state, biased):
        initial = copy.copy(state)
        initial.arrays = zeroed_arrays(state)
        initial.resized, initial.cuts = {}, {}
        initial.added_bias = set(state.added_bias) | set(biased)
        for name in biased:
            arrays = initial.arrays[name]
            if "bias" not in arrays:
                kernel = arrays["pointwise_kernel"] if "pointwise_kernel" in arrays else arrays["kernel"]
                arrays["bias"] = np.zeros(kernel.shape[-1], dtype=np.float32)
        self.model = rebuild_model(model, initial)

    def update(self, state):
        """Set the weights the state's folds and pending cuts give."""
        arrays = zeroed_arrays(state)
        for layer in walk_layers(self.model):
            weights = arrays.get(layer.name)
            if weights is None:
                continue
            layer.set_weights([weights[key] if key in weights else np.zeros(tuple(variable.shape), np.float32)
                               for key, variable in zip(weight_keys(layer), layer.weights)])
        return self.model
