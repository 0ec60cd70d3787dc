"""The report's activation view: weight-based and activation-based heatmaps side by side.

With ``weightkit report ... --data DATA`` each analyzed layer also shows the Pearson and MAD
heatmaps of its neurons' *activations* on a seeded data sample, drawn in the same neuron order as
the weight heatmaps (the weight clustering's order, its tree on top) so that a block that is
redundant in one view and not in the other stands out. Activation groups are outlined (they may
fall in several runs of that order), and dead neurons are listed.

The activations are collected once, before the layer-by-layer analysis (one batched pass); each
layer's activation matrices are computed when its figures are drawn and dropped afterwards.
"""

import os

from weightkit.analysis.activations.analyze import attach_activations
from weightkit.analysis.activations.collect import collect_activations
from weightkit.analysis.activations.results import ActivationAnalysis
from weightkit.analysis.activations.stats import layer_activations
from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.numeric.groups import DEFAULT_THRESHOLDS
from weightkit.analysis.results import SkippedLayer
from weightkit.reports.canvas import save_figure
from weightkit.reports.figures import similarity_figure
from weightkit.reports.html import ImageRef

__all__ = ["ActivationFigures", "interleave"]


def _relabel_colorbar(figure, text):
    for axes in figure.axes:
        if axes.get_label() == "colorbar":
            axes.set_ylabel(text, fontsize=8)
    return figure


def interleave(weight_images, activation_images):
    """Page order: weight Pearson beside activation Pearson, weight MAD beside activation MAD, then the rest.

    Parameters
    ----------
    weight_images : list of ImageRef
        ``pearson, mad, rows, histogram`` as :func:`weightkit.reports.report.render_layer_figures` returns.
    activation_images : list of ImageRef
        ``pearson, mad`` of the activations (may be empty).
    """
    if not activation_images:
        return list(weight_images)
    return [weight_images[0], activation_images[0], weight_images[1], activation_images[1], *weight_images[2:]]


class ActivationFigures:
    """Activations collected once for a report; figures and JSON extras per layer on demand.

    Parameters
    ----------
    model : keras.Model
    x : ndarray of shape (n_inputs, *input_shape)
    layers : list of str or None
    samples : int, default=1000
    seed : int, default=0
    metric : {"pearson", "mad"}
    threshold : float or None
    source : str, default=None
        The data specification, for captions.
    """

    def __init__(self, model, x, *, layers=None, samples=1000, seed=0, metric="pearson", threshold=None,
                 source=None, progress=None):
        self.metric, self.threshold, self.source = metric, threshold, source
        self.activations, skipped = collect_activations(model, x, layers=layers, samples=samples, seed=seed,
                                                        progress=progress)
        self.result = ActivationAnalysis(
            samples=min(int(samples), n_samples(x)), seed=int(seed), summary="mean", metric=metric,
            threshold=float(DEFAULT_THRESHOLDS[metric] if threshold is None else threshold), skipped=list(skipped))

    def draw(self, layer, folder, stem, *, cap):
        """The activation Pearson and MAD figures of one analyzed layer (with its weight matrices attached).

        Returns
        -------
        list of ImageRef
            Empty when the layer's activations were not collected.
        """
        sample = self.activations.pop(layer.name, None)
        if sample is None:
            return []
        item = layer_activations(sample, metric=self.metric, threshold=self.threshold, keep_matrices=True)
        if isinstance(item, SkippedLayer):
            self.result.skipped.append(item)
            return []
        matrices, order, tree = item.matrices, layer.matrices.order, layer.matrices.linkage
        item.matrices = None  # only the summary stays, for analysis.json
        self.result.layers.append(item)
        count = f"{len(item.groups):,} activation group(s)" if item.groups else "no activation groups"
        dead = f"; {len(item.dead):,} dead" if item.dead else ""
        note = f"outlined: {count}{dead}; neurons in the weight heatmap's order"
        where = f"{item.samples:,} samples" + (f" of {self.source}" if self.source else "")
        kind = " (per-channel means over positions)" if item.summary == "mean" else ""
        specs = (
            ("act-pearson", "pearson", matrices.pearson,
             f"{layer.name}: Pearson r of activations{kind}", "Pearson r of activations  (red +1 · white 0 · blue −1)",
             f"{layer.name}: activation Pearson correlation heatmap, in the weight heatmap's neuron order",
             f"Pearson r between the neurons' activations on {where}; same order as the weight heatmap beside it."),
            ("act-mad", "mad", matrices.mad,
             f"{layer.name}: MAD of activations{kind}", "MAD: mean |a_i − a_j|  (dark = similar)",
             f"{layer.name}: activation mean absolute difference heatmap, in the weight heatmap's neuron order",
             f"Mean absolute difference between activations on {where} (in activation units)."),
        )
        images = []
        for suffix, metric, matrix, title, label, alt, caption in specs:
            figure = similarity_figure(matrix, order, tree, item.groups, metric=metric, title=title,
                                       tree_label="weight tree", cap=cap, group_note=note)
            name = f"{stem}-{suffix}.png"
            width, height = save_figure(_relabel_colorbar(figure, label), os.path.join(folder, name))
            images.append(ImageRef(f"figures/{name}", alt, width, height, caption))
        return images

    def attach(self, analysis):
        """Add ``dead`` and ``activation`` to every analyzed layer, and the recurrent hidden states (as ``analyze``)."""
        for sample in [sample for sample in self.activations.values() if sample.state]:
            item = layer_activations(self.activations.pop(sample.name), metric=self.metric, threshold=self.threshold)
            (self.result.skipped if isinstance(item, SkippedLayer) else self.result.layers).append(item)
        return attach_activations(analysis, self.result, source=self.source)
