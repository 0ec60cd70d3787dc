"""What convolution filters look like: their weights as image tiles, and the input patches that excite them.

Pure drawing: arrays in, a :class:`matplotlib.figure.Figure` on the Agg canvas out (see
:mod:`weightkit.reports.canvas`). The filters are shown in the clustered order of the layer's heatmaps, so a
redundant group (outlined) is a run of neighbouring tiles there too. Where the patches come from
is :mod:`weightkit.reports.filters_data`.
"""

import numpy as np
from matplotlib.patches import Rectangle

from weightkit.reports.canvas import _new_figure, _title, _top
from weightkit.reports.figures import WEIGHT_CMAP

__all__ = ["MAX_CHANNELS", "MAX_FILTERS", "filter_tiles_figure", "patch_grid_figure", "shown_filters"]

#: Above this many filters, an evenly spaced sample (in clustered order) is drawn.
MAX_FILTERS = 64
#: Above this many input channels, the first ones are drawn.
MAX_CHANNELS = 16
_GROUP_COLOURS = ("#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
_TILES_PER_ROW = 16


def shown_filters(order, limit=MAX_FILTERS):
    """The filters drawn, in clustered order: all of them, or ``limit`` evenly spaced along the order.

    Parameters
    ----------
    order : ndarray of shape (n_filters,), int
    limit : int

    Returns
    -------
    ndarray of int
        Original filter indices.
    """
    order = np.asarray(order)
    if len(order) <= limit:
        return order
    return order[np.unique(np.linspace(0, len(order) - 1, limit).round().astype(int))]


def _group_of(groups, n):
    index = np.full(n, -1)
    for number, group in enumerate(groups):
        index[np.asarray(group, dtype=int)] = number
    return index


def _as_2d(kernel):
    """A kernel as ``(kh, kw, c_in, n)``: a Conv1D's ``(k, c_in, n)`` becomes ``(1, k, c_in, n)``."""
    kernel = np.asarray(kernel, dtype=np.float32)
    return kernel[None] if kernel.ndim == 3 else kernel


def filter_tiles_figure(kernel, order, groups, *, title, rgb=False, limit=MAX_FILTERS, max_channels=MAX_CHANNELS):
    """A convolution's filters as image tiles, in clustered order, redundant groups outlined.

    Parameters
    ----------
    kernel : ndarray of shape (kh, kw, c_in, n_filters) or (k, c_in, n_filters)
    order : ndarray of shape (n_filters,), int
        The heatmaps' clustered order.
    groups : list of list of int
        Redundant groups (original filter indices).
    title : str
    rgb : bool, default=False
        One colour tile per filter (needs ``c_in == 3``; each tile scaled by its own largest |w|,
        mid-grey at 0); otherwise one grey tile per input channel, a row per filter, on a shared
        diverging scale.
    limit : int, default=64
        Most filters drawn (an evenly spaced sample of the order above it).
    max_channels : int, default=16

    Returns
    -------
    matplotlib.figure.Figure
    """
    kernel = _as_2d(kernel)
    kh, kw, c_in, n = kernel.shape
    shown = shown_filters(order, limit)
    group = _group_of(groups, n)
    lines = [title]
    if len(shown) < n:
        lines.append(f"{len(shown)} of {n:,} filters, evenly spaced along the clustered order")
    if rgb:
        return _rgb_tiles(kernel, shown, group, lines)
    channels = min(c_in, max_channels)
    if channels < c_in:
        lines.append(f"first {channels} of {c_in:,} input channels")
    lines.append("a row per filter (clustered order), a tile per input channel")
    lines.append("outlined: redundant groups")
    gap = 1
    mosaic = np.full((len(shown) * (kh + gap), channels * (kw + gap)), np.nan, dtype=np.float32)
    for row, f in enumerate(shown):
        for c in range(channels):
            mosaic[row * (kh + gap):row * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = kernel[:, :, c, f]
    finite = np.abs(mosaic[np.isfinite(mosaic)])
    scale = float(np.percentile(finite, 99)) if finite.size else 1.0
    width = min(max(2.2 + 0.28 * channels * max(kw, 3) / 3, 6.6), 14)
    height = min(1.6 + 0.17 * len(lines) + 0.24 * len(shown) * max(kh, 2) / 3, 24)
    figure = _new_figure(width, height)
    bottom = 0.5 / height  # room for the x label
    axes = figure.add_axes((0.14, bottom, 0.72, _top(height, len(lines)) - bottom))
    drawn = axes.imshow(np.ma.masked_invalid(mosaic), cmap=WEIGHT_CMAP, vmin=-(scale or 1.0), vmax=scale or 1.0,
                        interpolation="nearest", aspect="auto")
    bar = figure.colorbar(drawn, ax=axes, fraction=0.05, pad=0.02)
    bar.ax.tick_params(labelsize=6)
    bar.set_label("weight", fontsize=7)
    step = max(1, len(shown) // 32)
    axes.set_yticks([r * (kh + gap) + (kh - 1) / 2 for r in range(0, len(shown), step)],
                    [str(int(shown[r])) for r in range(0, len(shown), step)], fontsize=6)
    axes.set_xticks([c * (kw + gap) + (kw - 1) / 2 for c in range(channels)], [str(c) for c in range(channels)],
                    fontsize=6)
    axes.set_xlabel("input channel", fontsize=7)
    axes.set_ylabel("filter (original index)", fontsize=7)
    start = 0
    for row in range(1, len(shown) + 1):  # outline runs of consecutive rows in one group
        if row == len(shown) or group[shown[row]] != group[shown[start]]:
            if group[shown[start]] >= 0 and row - start > 1:
                colour = _GROUP_COLOURS[group[shown[start]] % len(_GROUP_COLOURS)]
                axes.add_patch(Rectangle((-0.5, start * (kh + gap) - 0.5), channels * (kw + gap) - gap,
                                         (row - start) * (kh + gap) - gap, fill=False, edgecolor=colour,
                                         linewidth=1.8))
            start = row
    _title(figure, lines, height)
    return figure


def _mosaic(tiles, columns, gap=1):
    """Tiles ``(m, h, w, 3)`` in [0, 1] laid out ``columns`` per row on white, ``gap`` pixels apart."""
    m, h, w, _ = tiles.shape
    rows = -(-m // columns)
    mosaic = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), dtype=np.float32)
    for index in range(m):
        row, column = divmod(index, columns)
        mosaic[row * (h + gap):row * (h + gap) + h, column * (w + gap):column * (w + gap) + w] = tiles[index]
    return mosaic


def _rgb_tiles(kernel, shown, group, lines):
    kh, kw, _, _ = kernel.shape
    lines.append("a tile per filter in clustered order (RGB, each scaled by its largest |w|; grey = 0)")
    lines.append("outlined: redundant groups")
    weights = np.moveaxis(kernel[:, :, :3, shown], -1, 0)  # (m, kh, kw, 3)
    peaks = np.abs(weights).reshape(len(shown), -1).max(axis=1)
    tiles = np.clip(weights / (2 * np.where(peaks > 0, peaks, 1.0))[:, None, None, None] + 0.5, 0, 1)
    columns = min(_TILES_PER_ROW, len(shown))
    rows = -(-len(shown) // columns)
    gap = max(1, kh // 3)
    width = max(0.8 + columns * 0.5, 6.6)
    height = 0.9 + 0.17 * len(lines) + rows * 0.5
    figure = _new_figure(width, height)
    axes = figure.add_axes((0.04, 0.04, 0.92, _top(height, len(lines)) - 0.06))
    axes.imshow(_mosaic(tiles, columns, gap), interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    for index, f in enumerate(shown):
        row, column = divmod(index, columns)
        x0, y0 = column * (kw + gap) - 0.5, row * (kh + gap) - 0.5
        axes.text(x0 + kw / 2, y0 + kh + gap * 0.1, str(int(f)), fontsize=5, ha="center", va="top")
        if group[f] >= 0:
            axes.add_patch(Rectangle((x0, y0), kw, kh, fill=False, linewidth=2.0,
                                     edgecolor=_GROUP_COLOURS[group[f] % len(_GROUP_COLOURS)]))
    _title(figure, lines, height)
    return figure


def patch_grid_figure(patches, filters, values, *, title, value_range=None):
    """The input patches that excite each filter most: a row per filter, its top-k inputs left to right.

    Parameters
    ----------
    patches : ndarray of shape (n_filters, k, ph, pw, channels)
        Each filter's receptive field cut from its top-k inputs (zeros outside the input).
    filters : sequence of int
        The original index of each row's filter.
    values : ndarray of shape (n_filters, k)
        The activation each patch gave (the strongest is shown beside its row).
    title : str
    value_range : (float, float), default=None
        The inputs' range for the colour scale; the patches' own when None. Three channels are
        drawn as RGB, one as grey; others as the mean over channels, in grey.

    Returns
    -------
    matplotlib.figure.Figure
    """
    patches = np.asarray(patches, dtype=np.float32)
    n, k, ph, pw, channels = patches.shape
    low, high = value_range if value_range is not None else (float(patches.min()), float(patches.max()))
    image = np.clip((patches - low) / ((high - low) or 1.0), 0, 1)
    if channels != 3:
        image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    gap = max(1, round(max(ph, pw) / 6))
    lines = [title, "a row per filter (its strongest activation in brackets); its top inputs left to right"]
    aspect = min(max(pw / ph, 0.25), 4.0)
    width = max(1.4 + k * 0.62 * aspect, 6.6)
    height = 0.8 + 0.17 * len(lines) + n * 0.62
    figure = _new_figure(width, height)
    axes = figure.add_axes((0.12, 0.03, 0.86, _top(height, len(lines)) - 0.05))
    axes.imshow(_mosaic(image.reshape(n * k, ph, pw, 3), k, gap), interpolation="nearest", aspect="auto")
    axes.set_yticks([row * (ph + gap) + (ph - 1) / 2 for row in range(n)],
                    [f"filter {int(f)} ({values[row, 0]:.3g})" for row, f in enumerate(filters)], fontsize=6)
    axes.set_xticks([])
    _title(figure, lines, height)
    return figure
