"""The report's filter views: each convolution's filters as images and, with data, its top input patches.

:class:`FilterFigures` is made once per report, before the layer-by-layer analysis. With data it
runs the inputs through the model once per convolution (up to :data:`MAX_LAYERS` of them, at most
:data:`PATCH_SAMPLES` inputs) and keeps only each filter's top-k inputs and positions; the
activations are dropped at once. :meth:`FilterFigures.draw` is called from the report's
``on_layer`` hook, while the layer's clustered order is known.
"""

import os

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.kinds.registry import kind_named
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.structure.linear_chains import nodes_from_graph
from weightkit.analysis.files.stored import StoredModel
from weightkit.analysis.files.stored.nodes import stored_nodes
from weightkit.reports.canvas import save_figure
from weightkit.reports.filters import filter_tiles_figure, patch_grid_figure, shown_filters
from weightkit.reports.filters_data import cut_patches, receptive_fields, strongest_responses, top_of_responses
from weightkit.reports.html import ImageRef

__all__ = ["MAX_LAYERS", "PATCH_FILTERS", "PATCH_SAMPLES", "TOP_K", "FilterFigures"]

#: Inputs shown per filter.
TOP_K = 8
#: Convolutions whose top patches are found (the first ones in model order).
MAX_LAYERS = 8
#: Filters per convolution whose top patches are drawn (evenly spaced along the clustered order).
PATCH_FILTERS = 16
#: Inputs searched for the top patches.
PATCH_SAMPLES = 512


def _filter_images(class_name):
    """Whether a layer class's filters are drawn as images (a Conv1D, a Conv2D: its kind says)."""
    kind = kind_named(class_name)
    return kind is not None and kind.filter_images


class FilterFigures:
    """Filter images for every Conv1D/Conv2D of a model, and their top input patches on data.

    Parameters
    ----------
    model : keras.Model or weightkit.analysis.files.stored.StoredModel
        A stored model (read from its file, without TensorFlow) gives the filter images alone.
    x : ndarray of shape (n_inputs, *input_shape), default=None
        Inputs for the top patches (a model with one image or sequence input); None for the
        weight images alone.
    samples : int, default=512
    source : str, default=None
        Where ``x`` came from, for captions.
    k : int, default=8
    """

    def __init__(self, model, x=None, *, samples=PATCH_SAMPLES, source=None, k=TOP_K):
        self.source, self.k = source, k
        self.shapes, self.top, self.windows, self.first, self.x = {}, {}, {}, None, None
        graph = None
        if isinstance(model, StoredModel):  # read from the file: no TensorFlow, no patches
            nodes = stored_nodes(model)
        else:
            try:
                graph = ModelGraph(model)
            except WeightkitError:
                return
            nodes = nodes_from_graph(graph)
        for node in nodes:
            name = node.name.rsplit("/", 1)[-1]
            if _filter_images(node.class_name) and name not in self.shapes and node.weight_shapes:
                self.shapes[name] = tuple(node.weight_shapes[0])
                self.first = self.first or name
        if graph is not None and x is not None and not isinstance(x, (list, dict)) and len(graph.input_ids) == 1:
            self._find_top(graph, np.asarray(x)[:min(int(samples), PATCH_SAMPLES)], k)

    def _find_top(self, graph, x, k):
        """Each convolution's top-k inputs and positions (one probe pass; only per-filter maxima kept)."""
        fields = receptive_fields(graph)
        first_calls = {}
        for node in graph.nodes:
            if node.layer.name in self.shapes and fields.get(node.outputs[0]) is not None:
                first_calls.setdefault(node.layer.name, node)
        chosen = list(first_calls.values())[:MAX_LAYERS]
        if not chosen:
            return
        keras = import_keras()
        probe, _ = graph.flat_model(outputs=[node.outputs[0] for node in chosen])
        def run(batch):  # a model with one output returns it bare, not in a list
            out = probe(batch, training=False)
            return out if isinstance(out, (list, tuple)) else [out]

        # One probe pass over the inputs; each batch's activations are reduced to (batch, filters) at once.
        best, where, spatial = [[] for _ in chosen], [[] for _ in chosen], [None] * len(chosen)
        for start in range(0, len(x), 64):
            for index, out in enumerate(run(x[start:start + 64])):
                out = keras.ops.convert_to_numpy(out)
                spatial[index] = out.shape[1:-1]
                strongest, position = strongest_responses(out)
                best[index].append(strongest)
                where[index].append(position)
        for index, node in enumerate(chosen):
            self.top[node.layer.name] = top_of_responses(np.concatenate(best[index]), np.concatenate(where[index]),
                                                         spatial[index], k)
            self.windows[node.layer.name] = fields[node.outputs[0]]
        self.x, self.range = x, (float(x.min()), float(x.max()))

    def draw(self, layer, folder, stem):
        """The filter images (and top-patch grid) of one analyzed entry; empty for a non-convolution.

        Parameters
        ----------
        layer : analysis.LayerAnalysis
            With its matrices attached (for the clustered order).
        folder, stem : str
            Where the PNG files go, and their name prefix.

        Returns
        -------
        list of ImageRef
        """
        shape = self.shapes.get(layer.layer_name)
        if shape is None or layer.name != layer.layer_name or layer.matrices is None:
            return []
        rows = layer.matrices.rows  # (filters, kernel taps × c_in), the bias appended when asked
        kernel = rows[:, :int(np.prod(shape[:-1]))].T.reshape(shape)
        order = layer.matrices.order
        c_in, n = kernel.shape[-2], kernel.shape[-1]
        first = layer.layer_name == self.first
        rgb = first and c_in == 3 and kernel.ndim == 4
        what = "first convolution" if first else "convolution"
        figure = filter_tiles_figure(kernel, order, layer.groups, rgb=rgb,
                                     title=f"{layer.name}: filters of the {what} ({n} filters)")
        name = f"{stem}-filters.png"
        width, height = save_figure(figure, os.path.join(folder, name))
        images = [ImageRef(f"figures/{name}", f"{layer.name}: filter weights as images, in clustered order",
                           width, height,
                           "Each filter's weights as an image (RGB for a first convolution on colour input, "
                           "otherwise one tile per input channel), in the heatmaps' order; redundant groups "
                           "outlined.")]
        if layer.layer_name in self.top:
            images.append(self._patches(layer, order, folder, stem))
        return images

    def _patches(self, layer, order, folder, stem):
        samples, positions, values = self.top[layer.layer_name]
        window = self.windows[layer.layer_name]
        filters = shown_filters(order, PATCH_FILTERS)
        x = self.x if self.x.ndim >= 3 else self.x[..., None]
        patches = cut_patches(x, samples[filters], positions[filters], window)
        if patches.ndim == 4:  # a sequence: (filters, k, length, channels) drawn as 1 × length images
            patches = patches[:, :, None]
        where = f"{len(self.x):,} inputs" + (f" of {self.source}" if self.source else "")
        size = " × ".join(str(size) for size, _, _ in window)
        figure = patch_grid_figure(patches, filters, values[filters], value_range=self.range,
                                   title=f"{layer.name}: top-{samples.shape[1]} input patches per filter "
                                         f"({size} receptive field, {where})")
        name = f"{stem}-patches.png"
        width, height = save_figure(figure, os.path.join(folder, name))
        return ImageRef(f"figures/{name}", f"{layer.name}: the input patches that excite each filter most",
                        width, height,
                        f"For {len(filters)} filters (clustered order): the receptive field cut from the "
                        f"{samples.shape[1]} inputs whose strongest response is largest, strongest first.")

