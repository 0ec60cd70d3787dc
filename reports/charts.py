"""Charts of a layer's pair distributions and of a model's removable neurons."""

import numpy as np
from matplotlib.ticker import MaxNLocator, NullLocator

from weightkit.reports.canvas import _new_figure

__all__ = ["histogram_figure", "overview_figure"]


def _upper_values(matrix):
    matrix = np.asarray(matrix)
    return matrix[np.triu_indices(matrix.shape[0], 1)]


def histogram_figure(pearson, mad, *, metric, title, r_cut=None, mad_cut=None):
    """Histograms of the off-diagonal Pearson r and MAD values, the grouping threshold marked.

    Parameters
    ----------
    pearson, mad : ndarray of shape (n, n)
    metric : {"pearson", "mad"}
        The metric the groups were found with: its panel shows the threshold.
    title : str
    r_cut : float, default=None
        Pearson threshold (pairs with r ≥ r_cut are redundant).
    mad_cut : float, default=None
        Absolute MAD threshold (pairs with MAD ≤ mad_cut are redundant).

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _new_figure(8.0, 3.0)
    left, right = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.18, top=0.8, wspace=0.25)
    r = _upper_values(pearson)
    log = r.size > 1000  # a few pairs read better on a linear count axis
    left.hist(r, bins=np.linspace(-1, 1, 81), color="#4477aa", log=log)
    left.set_xlim(-1, 1)
    left.set_xlabel("Pearson r between two neurons' weight rows", fontsize=8)
    left.set_ylabel("pairs (log scale)" if log else "pairs", fontsize=8)
    if metric == "pearson" and r_cut is not None:
        count = int(np.count_nonzero(r >= r_cut - 1e-6))
        left.axvline(r_cut, color="#d55e00", linestyle="--", linewidth=1.5)
        left.set_title(f"threshold r ≥ {r_cut:g}: {count:,} of {r.size:,} pairs", fontsize=8)
    else:
        left.set_title(f"{r.size:,} pairs (not used for grouping)", fontsize=8)
    d = _upper_values(mad)
    top = float(d.max()) if d.size else 1.0
    right.hist(d, bins=np.linspace(0, max(top, 1e-12), 81), color="#228833", log=log)
    right.set_xlabel("MAD: mean |w_i − w_j|", fontsize=8)
    if metric == "mad" and mad_cut is not None:
        count = int(np.count_nonzero(d <= mad_cut))
        right.axvline(mad_cut, color="#d55e00", linestyle="--", linewidth=1.5)
        right.set_title(f"threshold MAD ≤ {mad_cut:.3g}: {count:,} of {d.size:,} pairs", fontsize=8)
    else:
        right.set_title(f"{d.size:,} pairs (not used for grouping)", fontsize=8)
    for axes in (left, right):
        axes.tick_params(labelsize=7)
        if not log:
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            axes.yaxis.set_minor_locator(NullLocator())  # dozens of minor log ticks cost time, add nothing
    figure.suptitle(title, fontsize=9, x=0.08, ha="left")
    return figure


def overview_figure(names, neurons, removable, removable_params, *, title=None):
    """Removable neurons and removable parameters per layer, as two bar charts side by side.

    Parameters
    ----------
    names : list of str
    neurons, removable, removable_params : sequence of int, one per name
    title : str, default=None

    Returns
    -------
    matplotlib.figure.Figure
    """
    count = len(names)
    height = min(60.0, 1.2 + 0.22 * max(count, 2))
    figure = _new_figure(9.0, height)
    left, right = figure.subplots(1, 2, sharey=True)
    figure.subplots_adjust(left=0.22, right=0.97, bottom=0.15 / height, top=1.0 - (1.0 if title else 0.6) / height,
                           wspace=0.1)
    y = np.arange(count)
    removable = np.asarray(removable, dtype=float)
    removable_params = np.asarray(removable_params, dtype=float)
    left.barh(y, removable, color="#cc6677", height=0.7)
    right.barh(y, removable_params, color="#4477aa", height=0.7)
    for index in range(count):
        share = removable[index] / max(neurons[index], 1)
        left.text(removable[index], index, f" {int(removable[index]):,}/{int(neurons[index]):,} ({share:.0%})",
                  va="center", fontsize=6.5)
        right.text(removable_params[index], index, f" {int(removable_params[index]):,}", va="center",
                   fontsize=6.5)
    left.set_yticks(y, names, fontsize=7.5 if count <= 60 else 6)
    left.set_ylim(count - 0.5, -0.5)
    for axes, values, label in ((left, removable, "removable neurons (removable / all, share)"),
                                (right, removable_params, "removable parameters")):
        axes.set_xlim(0, max(values.max() if values.size else 0, 1) * 1.35)
        axes.set_xlabel(label, fontsize=8)
        axes.tick_params(axis="x", labelsize=7)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        axes.xaxis.set_label_position("top")
        axes.xaxis.tick_top()
        for side in ("right", "bottom"):
            axes.spines[side].set_visible(False)
    if count and not removable.any():
        right.text(0.5, 0.5, "no redundant groups at this threshold", transform=right.transAxes,
                   ha="center", va="center", fontsize=9, color="#555555")
    if title:
        figure.text(0.02, 1.0 - 0.08 / height, title, fontsize=10, ha="left", va="top")
    return figure
