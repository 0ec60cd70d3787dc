"""Write a report folder: ``index.html``, ``analysis.json`` and ``figures/*.png``.

The analysis runs once, layer by layer (:func:`weightkit.analysis.model_analysis.analyze_model` with ``on_layer``): each
layer's figures are drawn from the matrices that analysis computed, written, and the matrices
dropped before the next layer, so memory holds one layer at a time however deep the model is.
The folder is written beside its final place and renamed into it when complete.
"""

import hashlib
import json
import os
from datetime import datetime, timezone

import weightkit
from weightkit.analysis import DEFAULT_THRESHOLDS
from weightkit.analysis.data.inputs import as_inputs, as_model, as_weights_source
from weightkit.analysis.files.io import atomic_directory
from weightkit.analysis.model_analysis import analyze_model
from weightkit.reports.activation_report import ActivationFigures, interleave
from weightkit.reports.canvas import save_figure
from weightkit.reports.charts import histogram_figure, overview_figure
from weightkit.reports.figures import HEATMAP_CAP, similarity_figure, weight_rows_figure
from weightkit.reports.filters_report import FilterFigures
from weightkit.reports.html import ImageRef, anchor_for, render_page

__all__ = ["FIGURE_KINDS", "render_layer_figures", "write_report"]

#: Longest layer part of a figure file name; a longer one keeps its start and a hash (file names
#: stop at 255 bytes, and a layer may be named with 300 characters).
_LONG_STEM = 80


def _figure_stem(number, slug):
    """``NNN-SLUG`` for a layer's figure files, at most about 100 characters, unique per slug."""
    if len(slug) > _LONG_STEM:
        slug = slug[:_LONG_STEM - 17] + "-" + hashlib.sha256(slug.encode()).hexdigest()[:16]
    return f"{number:03d}-{slug}"


#: The figures drawn for each analyzed layer entry, in page order.
FIGURE_KINDS = ("pearson", "mad", "rows", "histogram")


def _group_note(layer, metric, threshold):
    if not layer.groups:
        return "no redundant groups at this threshold"
    rule = (f"every pair r ≥ {threshold:g}" if metric == "pearson"
            else f"every pair MAD ≤ {layer.threshold_value:.3g} ({threshold:g} × median)")
    return f"outlined: {len(layer.groups):,} redundant group(s), {rule}"


def render_layer_figures(layer, folder, stem, *, metric, threshold, include_bias=False, cap=HEATMAP_CAP):
    """Draw and write the figures of one analyzed entry that still carries its matrices.

    Parameters
    ----------
    layer : weightkit.analysis.LayerAnalysis
        With ``layer.matrices`` attached (``keep_matrices=True``).
    folder : str
        Where the PNG files go.
    stem : str
        File name prefix (``003-dense_1``).
    metric : {"pearson", "mad"}
        The metric the groups were found with.
    threshold : float
        The user's threshold (Pearson r, or the fraction of the median MAD).
    include_bias : bool, default=False
        Whether the rows end with the bias (said in the weight-rows title).
    cap : int, default=512
        Above this many neurons, heatmaps show block means.

    Returns
    -------
    list of ImageRef
        Paths relative to the folder's parent (``figures/NAME.png``).
    """
    matrices = layer.matrices
    if matrices is None:
        raise ValueError(f"{layer.name}: no matrices attached; analyze with keep_matrices=True.")
    cut = layer.threshold_value
    tree_label = "tree: 1 − r" if metric == "pearson" else "tree: MAD"
    note = _group_note(layer, metric, threshold)
    bias = " (bias in the last column)" if include_bias else ""
    specs = {
        "pearson": (lambda: similarity_figure(matrices.pearson, matrices.order, matrices.linkage, layer.groups,
                                              metric="pearson", title=f"{layer.name}: Pearson r between neurons",
                                              cut=cut, tree_label=tree_label, cap=cap, group_note=note),
                    f"{layer.name}: Pearson correlation heatmap, neurons in clustered order",
                    "Pearson r; groups outlined; dendrogram of the clustering on top with the cut dashed."),
        "mad": (lambda: similarity_figure(matrices.mad, matrices.order, matrices.linkage, layer.groups,
                                          metric="mad", title=f"{layer.name}: MAD between neurons",
                                          cut=cut, tree_label=tree_label, cap=cap, group_note=note),
                f"{layer.name}: mean absolute difference heatmap, same order",
                "Mean absolute difference (in weight units); same order and groups."),
        "rows": (lambda: weight_rows_figure(matrices.rows, matrices.order, layer.groups,
                                            title=f"{layer.name}: weight rows (neurons × inputs){bias}",
                                            row_cap=cap),
                 f"{layer.name}: weight rows heatmap, neurons in clustered order",
                 "Each row is one neuron's incoming weights, in the same order as the heatmaps."),
        "histogram": (lambda: histogram_figure(matrices.pearson, matrices.mad, metric=metric,
                                               title=f"{layer.name}: all pairs of neurons",
                                               r_cut=threshold if metric == "pearson" else None,
                                               mad_cut=cut if metric == "mad" else None),
                      f"{layer.name}: histograms of pairwise Pearson r and MAD with the threshold",
                      "Distribution over all pairs of neurons; the dashed line is the grouping threshold."),
    }
    images = []
    for kind in FIGURE_KINDS:
        draw, alt, caption = specs[kind]
        name = f"{stem}-{kind}.png"
        width, height = save_figure(draw(), os.path.join(folder, name))
        images.append(ImageRef(f"figures/{name}", alt, width, height, caption))
    return images


def write_report(model, output, *, metric="pearson", threshold=None, layers=None, include_bias=True,
                 force=False, progress=None, path=None, notes=(), cap=HEATMAP_CAP, created=None,
                 version=None, data=None, samples=1000, data_source=None, unsafe=False):
    """Analyze ``model`` and write a self-contained HTML report folder.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        A path is loaded with :func:`weightkit.analysis.load_model` (safe mode unless ``unsafe``); the
        page then names it and the result records the loader's notes.
    output : str
        The report folder. An existing non-empty folder is refused unless ``force``.
    metric : {"pearson", "mad"}, default="pearson"
    threshold : float, default=None
        0.9 (Pearson r) or 0.2 (fraction of the layer's median MAD) when None.
    layers : list of str, default=None
        Only these layers or entries.
    include_bias : bool, default=True
    force : bool, default=False
        Replace an existing non-empty folder.
    progress : callable, default=None
        ``progress(done, total, name)``.
    path : str, default=None
        The model file, recorded in the result and shown on the page (the model's path when
        ``model`` is one).
    notes : sequence of str
        How the model was loaded (recorded in the result, after the loader's).
    cap : int, default=512
        Heatmaps of layers with more neurons show block means.
    created : str, default=None
        Timestamp shown on the page; now (UTC) when None.
    version : str, default=None
        Tool version shown on the page; ``weightkit.__version__`` when None.
    data : Dataset, ndarray of shape (n_inputs, *input_shape), str or os.PathLike, default=None
        Inputs to run through the model (a dataset's training split, an array, or a data
        specification loaded for the model): each layer then also shows its activation Pearson
        and MAD heatmaps beside the weight ones (same neuron order) and lists its dead neurons
        (see :mod:`weightkit.reports.activation_report`); ``analysis.json`` gains ``dead`` and ``activation``.
    samples : int, default=1000
        Inputs drawn (seeded) from ``data``.
    data_source : str, default=None
        Where ``data`` came from, for captions and the notes (a dataset's own source, its
        training split, when None).
    unsafe : bool, default=False
        Load a model path with its embedded code.

    Returns
    -------
    weightkit.analysis.ModelAnalysis
        The result that ``analysis.json`` holds (``result.to_dict()``).

    Examples
    --------
    >>> result = write_report(model, "report")    # doctest: +SKIP
    >>> # open report/index.html in a browser
    """
    # Weights only: a path is read as data (weightkit.analysis.files.stored), without Keras; --data needs the model itself.
    loaded = as_model(model, unsafe=unsafe) if data is not None else as_weights_source(model)
    model, path, notes = loaded.model, loaded.path if path is None else path, [*loaded.notes, *notes]
    x = None
    if data is not None:
        x, source = as_inputs(data, model)
        data_source = source if data_source is None else data_source
    created = created or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = version or weightkit.__version__
    chosen = float(DEFAULT_THRESHOLDS.get(metric, 0.0) if threshold is None else threshold)
    with atomic_directory(output, force=force) as work:
        folder = os.path.join(work, "figures")
        os.mkdir(folder)
        images, anchors, taken = {}, {}, set()
        by_data = None
        if x is not None:
            by_data = ActivationFigures(model, x, layers=layers, samples=samples, metric=metric,
                                        threshold=threshold, source=data_source, progress=progress)
        filters = FilterFigures(model, x, samples=samples, source=data_source)

        def draw(layer):
            anchor = anchors[layer.name] = anchor_for(layer.name, taken)
            stem = _figure_stem(len(anchors), anchor[len("layer-"):])
            images[layer.name] = render_layer_figures(layer, folder, stem, metric=metric, threshold=chosen,
                                                      include_bias=include_bias, cap=cap)
            if by_data is not None:
                images[layer.name] = interleave(images[layer.name], by_data.draw(layer, folder, stem, cap=cap))
            images[layer.name] += filters.draw(layer, folder, stem)

        result = analyze_model(model, metric=metric, threshold=threshold, layers=layers,
                               include_bias=include_bias, progress=progress, path=path, notes=notes,
                               on_layer=draw)
        if by_data is not None:
            by_data.attach(result)
        overview = None
        if result.layers:
            figure = overview_figure([layer.name for layer in result.layers],
                                     [layer.neurons for layer in result.layers],
                                     [layer.removable for layer in result.layers],
                                     [layer.removable_params for layer in result.layers],
                                     title=None)
            width, height = save_figure(figure, os.path.join(folder, "overview.png"))
            overview = ImageRef("figures/overview.png", "Bar charts of removable neurons and parameters per layer",
                                width, height)
        with open(os.path.join(work, "analysis.json"), "w", encoding="utf-8") as handle:
            json.dump(result.to_dict(), handle, indent=2, allow_nan=False)
            handle.write("\n")
        page = render_page(result, images=images, anchors=anchors, overview=overview, created=created,
                           version=version, source=path)
        with open(os.path.join(work, "index.html"), "w", encoding="utf-8") as handle:
            handle.write(page)
    return result
