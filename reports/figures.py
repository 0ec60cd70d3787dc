"""Matplotlib figures of one layer's redundancy: heatmaps with a dendrogram and weight rows.

Every function takes plain arrays and returns a :class:`matplotlib.figure.Figure` drawn on the
Agg canvas. The figures are never registered with pyplot, so nothing accumulates in a global
figure list: :func:`save_figure` writes a PNG and clears the figure, and the object is freed as
soon as it is dropped. A report of a thousand layers holds one figure at a time.

Colormaps are colorblind-safe: Pearson r uses the diverging ``RdBu_r`` fixed to [-1, 1] (white
at 0, red for positive, blue for negative correlation), MAD the sequential ``cividis``, weights
the diverging ``PuOr_r`` centered at 0.
"""

import math

import numpy as np
from matplotlib import patheffects
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.patches import Rectangle

from weightkit.reports.canvas import _new_figure, _title, _top

__all__ = [
    "HEATMAP_CAP",
    "COLUMN_CAP",
    "PEARSON_CMAP",
    "MAD_CMAP",
    "WEIGHT_CMAP",
    "block_means",
    "group_spans",
    "dendrogram_segments",
    "similarity_figure",
    "weight_rows_figure",
]

#: Above this many neurons a heatmap shows block means of consecutive neurons (clustered order).
HEATMAP_CAP = 512
#: Above this many inputs the weight-rows heatmap shows every k-th input.
COLUMN_CAP = 512
PEARSON_CMAP = "RdBu_r"
MAD_CMAP = "cividis"
WEIGHT_CMAP = "PuOr_r"
_MAX_TICKS = 24
_OUTLINE = dict(facecolor="none", edgecolor="black", linewidth=1.4,
                path_effects=[patheffects.withStroke(linewidth=3.0, foreground="white")])


def _ordinal(k):
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _block(n, cap):
    return max(1, math.ceil(n / max(int(cap), 1)))


def _mean_over_blocks(array, block, axis):
    """Means of consecutive blocks of ``block`` entries along ``axis`` (the last block may be short)."""
    n = array.shape[axis]
    if block == 1:
        return np.asarray(array, dtype=np.float32)
    starts = np.arange(0, n, block)
    sums = np.add.reduceat(array, starts, axis=axis, dtype=np.float64)
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    shape = [1] * array.ndim
    shape[axis] = -1
    return (sums / counts.reshape(shape)).astype(np.float32)


def block_means(matrix, order, cap=HEATMAP_CAP):
    """Reorder a square matrix and, above ``cap`` neurons, average it over blocks.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
    order : ndarray of shape (n,), int
        The clustered order: ``image[i, j]`` is about neurons ``order[i]`` and ``order[j]``.
    cap : int, default=512

    Returns
    -------
    image : ndarray of shape (m, m), float32
        ``m = ceil(n / block)``; each pixel is the mean over a block x block tile of the
        reordered matrix. ``m == n`` and no averaging when ``n <= cap``.
    block : int
        Neurons per pixel along each axis.
    """
    order = np.asarray(order)
    block = _block(len(order), cap)
    reordered = np.asarray(matrix)[np.ix_(order, order)]
    image = _mean_over_blocks(_mean_over_blocks(reordered, block, 0), block, 1)
    return image, block


def group_spans(groups, order):
    """Where each group sits in the clustered order, as runs of consecutive positions.

    Parameters
    ----------
    groups : list of list of int
        Original neuron indices.
    order : ndarray of shape (n,), int

    Returns
    -------
    spans : list of list of (int, int)
        For each group, ``(start, stop)`` position ranges (stop exclusive). A group found by
        cutting the complete-linkage tree that defines ``order`` is one subtree, hence a single
        run; more than one run means the order came from another tree.
    """
    position = np.empty(len(order), dtype=np.int64)
    position[np.asarray(order)] = np.arange(len(order))
    spans = []
    for group in groups:
        where = np.sort(position[np.asarray(group, dtype=np.int64)])
        breaks = np.flatnonzero(np.diff(where) != 1) + 1
        runs = np.split(where, breaks)
        spans.append([(int(run[0]), int(run[-1]) + 1) for run in runs])
    return spans


def dendrogram_segments(Z, n):
    """The U-shaped links of a linkage tree, in leaf-position coordinates (no recursion).

    Parameters
    ----------
    Z : ndarray of shape (n - 1, 4)
        A scipy linkage matrix.
    n : int
        Number of leaves.

    Returns
    -------
    segments : ndarray of shape (n - 1, 4, 2)
        Each link as four ``(position, height)`` points. Leaf ``i`` of
        ``scipy.cluster.hierarchy.leaves_list(Z)`` sits at position ``i``, as in
        :func:`scipy.cluster.hierarchy.dendrogram` (whose recursion fails on deep trees).
    """
    Z = np.asarray(Z)
    if n < 2:
        return np.zeros((0, 4, 2))
    x = np.zeros(2 * n - 1)
    height = np.zeros(2 * n - 1)
    # Leaf positions: the left-to-right order of a pre-order walk, as leaves_list.
    from scipy.cluster.hierarchy import leaves_list

    x[leaves_list(Z)] = np.arange(n)
    segments = np.empty((n - 1, 4, 2))
    for step, (left, right, distance, _) in enumerate(Z):
        left, right = int(left), int(right)
        node = n + step
        x[node] = (x[left] + x[right]) / 2
        height[node] = distance
        segments[step] = ((x[left], height[left]), (x[left], distance),
                          (x[right], distance), (x[right], height[right]))
    return segments


def _ticks(count, block, order, limit=_MAX_TICKS):
    """Tick positions (pixels) and labels (the original index of the first neuron in each pixel)."""
    step = max(1, math.ceil(count / limit))
    positions = np.arange(0, count, step)
    labels = [str(int(order[p * block])) for p in positions]
    return positions, labels


def _tick_size(count):
    return 7 if count <= 24 else 6


def _outline_groups(axes, spans, block, *, full_width=None):
    """Rectangles around each group's run(s): squares on the diagonal, or bands across ``full_width``."""
    patches = []
    for runs in spans:
        for start, stop in runs:
            lo, hi = start / block - 0.5, stop / block - 0.5
            if full_width is None:
                patches.append(Rectangle((lo, lo), hi - lo, hi - lo))
            else:
                patches.append(Rectangle((-0.5, lo), full_width, hi - lo))
    if patches:
        axes.add_collection(PatchCollection(patches, match_original=False, **_OUTLINE))
    return len(patches)


def similarity_figure(matrix, order, Z, groups, *, metric, title, cut=None, tree_label="distance",
                      cap=HEATMAP_CAP, group_note=None):
    """A Pearson or MAD heatmap in clustered order, its dendrogram on top and groups outlined.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
        Pearson r or MAD between the neurons' weight rows.
    order : ndarray of shape (n,), int
        Leaf order of ``Z``.
    Z : ndarray of shape (n - 1, 4)
        The complete-linkage tree the groups were cut from.
    groups : list of list of int
        Redundant groups (original indices); outlined.
    metric : {"pearson", "mad"}
        Which matrix this is: picks the colormap and its range.
    title : str
    cut : float, default=None
        Height at which the tree was cut into groups (drawn as a dashed line).
    tree_label : str, default="distance"
        What the tree's heights are (``1 − r``, ``MAD``).
    cap : int, default=512
        Above this many neurons, each pixel is the mean of a block of neurons; the title says so.
    group_note : str, default=None
        A line under the title (e.g. "outlined: 3 groups with r ≥ 0.9").

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(order)
    image, block = block_means(matrix, order, cap)
    m = image.shape[0]
    lines = [title]
    if block > 1:
        lines.append(f"{n:,} neurons: each pixel is the mean of a {block}×{block} block (clustered order)")
    if group_note:
        lines.append(group_note)
    figure = _new_figure(6.6, 6.9)
    grid = figure.add_gridspec(2, 2, height_ratios=(1.1, 5), width_ratios=(5, 0.22),
                               left=0.12, right=0.86, bottom=0.1, top=_top(6.9, len(lines)),
                               hspace=0.03, wspace=0.04)
    heatmap = figure.add_subplot(grid[1, 0], label="heatmap")
    tree = figure.add_subplot(grid[0, 0], label="dendrogram")
    bar_axes = figure.add_subplot(grid[1, 1], label="colorbar")

    if metric == "pearson":
        drawn = heatmap.imshow(image, cmap=PEARSON_CMAP, vmin=-1.0, vmax=1.0, interpolation="nearest",
                               aspect="auto")
        bar = figure.colorbar(drawn, cax=bar_axes)
        bar.set_label("Pearson r of weight rows  (red +1 · white 0 · blue −1)", fontsize=8)
    else:
        off = image[~np.eye(m, dtype=bool)] if m > 1 else image.ravel()
        top = float(np.percentile(off, 99)) if off.size else 1.0
        drawn = heatmap.imshow(image, cmap=MAD_CMAP, vmin=0.0, vmax=max(top, 1e-12), interpolation="nearest",
                               aspect="auto")
        bar = figure.colorbar(drawn, cax=bar_axes, extend="max")
        bar.set_label("MAD: mean |w_i − w_j|  (dark = similar)", fontsize=8)
    bar.ax.tick_params(labelsize=7)

    positions, labels = _ticks(m, block, order)
    size = _tick_size(len(positions))
    heatmap.set_xticks(positions, labels, fontsize=size, rotation=90)
    heatmap.set_yticks(positions, labels, fontsize=size)
    unit = "neuron (original index), clustered order" if block == 1 else \
        f"neuron block of {block} (first original index), clustered order"
    heatmap.set_xlabel(unit, fontsize=8)
    heatmap.set_ylabel(unit, fontsize=8)
    _outline_groups(heatmap, group_spans(groups, order), block)
    heatmap.set_xlim(-0.5, m - 0.5)
    heatmap.set_ylim(m - 0.5, -0.5)

    segments = dendrogram_segments(Z, n)
    if len(segments):
        segments = segments.copy()
        segments[:, :, 0] = (segments[:, :, 0] + 0.5) / block - 0.5
        width = 0.7 if n <= 128 else 0.35 if n <= 512 else 0.2  # a dense tree stays a tree, not a black mass
        tree.add_collection(LineCollection(segments, colors="#333333", linewidths=width))
        highest = float(segments[:, :, 1].max())
        tree.set_ylim(0, max(highest, cut or 0.0, 1e-12) * 1.05)
    if cut is not None:
        tree.axhline(cut, color="#d55e00", linestyle="--", linewidth=1.2)
        tree.text(1.01, cut, "cut", transform=tree.get_yaxis_transform(), color="#d55e00", fontsize=7,
                  va="center")
    tree.set_xlim(-0.5, m - 0.5)
    tree.set_ylabel(tree_label, fontsize=7)
    tree.set_xticks([])
    tree.tick_params(axis="y", labelsize=6)
    for side in ("top", "right"):
        tree.spines[side].set_visible(False)

    _title(figure, lines, 6.9)
    return figure


def weight_rows_figure(rows, order, groups, *, title, row_cap=HEATMAP_CAP, column_cap=COLUMN_CAP):
    """The neurons' weight rows (neurons × inputs) in clustered order, groups outlined as bands.

    Parameters
    ----------
    rows : ndarray of shape (n_neurons, fan_in)
    order : ndarray of shape (n_neurons,), int
    groups : list of list of int
    title : str
    row_cap : int, default=512
        Above this many neurons, each pixel row is the mean of a block of neighbouring neurons.
    column_cap : int, default=512
        Above this many inputs, every k-th input is shown.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = np.asarray(rows)
    n, fan_in = rows.shape
    block = _block(n, row_cap)
    stride = _block(fan_in, column_cap)
    image = _mean_over_blocks(rows[:, ::stride][np.asarray(order)], block, 0)
    m, k = image.shape
    lines = [title]
    notes = []
    if block > 1:
        notes.append(f"rows: means of {block} neighbouring neurons")
    if stride > 1:
        notes.append(f"columns: every {_ordinal(stride)} input")
    if notes:
        lines.append(f"{n:,} × {fan_in:,} weights; " + "; ".join(notes))
    lines.append("outlined bands: redundant groups")
    figure = _new_figure(6.6, 5.6)
    grid = figure.add_gridspec(1, 2, width_ratios=(5, 0.22), left=0.12, right=0.86, bottom=0.12,
                               top=_top(5.6, len(lines)), wspace=0.04)
    heatmap = figure.add_subplot(grid[0, 0], label="heatmap")
    bar_axes = figure.add_subplot(grid[0, 1], label="colorbar")
    limit = float(np.percentile(np.abs(image), 99)) if image.size else 1.0
    limit = limit if limit > 0 else 1.0
    drawn = heatmap.imshow(image, cmap=WEIGHT_CMAP, vmin=-limit, vmax=limit, interpolation="nearest",
                           aspect="auto")
    bar = figure.colorbar(drawn, cax=bar_axes, extend="both")
    bar.set_label("weight (colour range: 99th percentile of |w|)", fontsize=8)
    bar.ax.tick_params(labelsize=7)

    positions, labels = _ticks(m, block, order)
    heatmap.set_yticks(positions, labels, fontsize=_tick_size(len(positions)))
    column_step = max(1, math.ceil(k / 16))
    columns = np.arange(0, k, column_step)
    heatmap.set_xticks(columns, [str(int(c * stride)) for c in columns], fontsize=6, rotation=90)
    heatmap.set_ylabel("neuron (original index), clustered order" if block == 1 else
                       f"neuron block of {block} (first original index)", fontsize=8)
    heatmap.set_xlabel("input index" if stride == 1 else f"input index (every {_ordinal(stride)} of {fan_in:,} shown)",
                       fontsize=8)
    _outline_groups(heatmap, group_spans(groups, order), block, full_width=k)
    heatmap.set_xlim(-0.5, k - 0.5)
    heatmap.set_ylim(m - 0.5, -0.5)
    _title(figure, lines, 5.6)
    return figure


