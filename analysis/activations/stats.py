"""Per-layer activation statistics: dead neurons, activation Pearson/MAD matrices and groups.

The numpy core applied to what :mod:`weightkit.analysis.activations.collect` gathered: an entry's
activations (neurons as rows) in, dead neurons, matrices and groups out, by the same rules and
defaults as for weights (:func:`weightkit.analysis.find_groups`). :mod:`weightkit.analysis.activations` re-exports
these names.
"""

import numpy as np

from weightkit.analysis.activations.results import LayerActivations
from weightkit.analysis.numeric.groups import absolute_threshold, cluster_linkage, cluster_order, find_groups, removable_count
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET, _mad_matrix, _pearson_matrix
from weightkit.analysis.results import LayerMatrices, SkippedLayer

__all__ = ["DEFAULT_DEAD_TOLERANCE", "analyze_activation_matrix", "dead_neurons", "layer_activations"]

DEFAULT_DEAD_TOLERANCE = 1e-6


def dead_neurons(minimum, maximum, *, tolerance=DEFAULT_DEAD_TOLERANCE):
    """Neurons that are constant on the sample.

    Parameters
    ----------
    minimum, maximum : array-like of shape (n_neurons,)
        Each neuron's smallest and largest activation over the sample (all positions).
    tolerance : float, default=1e-6
        Constant when ``maximum - minimum <= tolerance * max(1, |minimum|, |maximum|)``.

    Returns
    -------
    dead : list of int
        Sorted indices. A ReLU neuron that never goes above zero is constant (0) and is listed.

    Examples
    --------
    >>> dead_neurons([0.0, -1.0, 2.0], [0.0, 3.0, 2.0])
    [0, 2]
    """
    minimum = np.asarray(minimum, dtype=np.float64)
    maximum = np.asarray(maximum, dtype=np.float64)
    scale = np.maximum(1.0, np.maximum(np.abs(minimum), np.abs(maximum)))
    return [int(i) for i in np.flatnonzero(maximum - minimum <= tolerance * scale)]


def analyze_activation_matrix(values, *, metric="pearson", threshold=None, keep_matrices=False,
                              memory_budget=DEFAULT_MEMORY_BUDGET):
    """Pearson and MAD matrices, groups and summaries of neurons' activations.

    Parameters
    ----------
    values : ndarray of shape (n_neurons, n_columns)
        One neuron's activations per row (neurons as rows, as weight rows are).
    metric : {"pearson", "mad"}, default="pearson"
    threshold : float, default=None
        The metric's default (0.9 or 0.2) when None.
    keep_matrices : bool, default=False
    memory_budget : int

    Returns
    -------
    summary : dict
        ``groups``, ``removable``, ``pearson_mean_abs_offdiag``, ``pearson_max_offdiag``,
        ``mad_median_offdiag``, ``mad_min_offdiag``, ``threshold_value`` and ``matrices``
        (a LayerMatrices or None).

    Notes
    -----
    A constant (dead) neuron has Pearson 0 with every other neuron, so it joins no Pearson
    group; with MAD, dead neurons that share their constant form a group (they are duplicates).
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    n = values.shape[0]
    pearson = _pearson_matrix(values)
    mad = _mad_matrix(values, memory_budget)
    off = ~np.eye(n, dtype=bool)
    chosen = pearson if metric == "pearson" else mad
    Z = cluster_linkage(chosen, metric)
    groups = find_groups(chosen, metric, threshold, Z=Z)
    return {
        "groups": groups,
        "removable": removable_count(groups),
        "pearson_mean_abs_offdiag": float(np.abs(pearson[off]).mean()),
        "pearson_max_offdiag": float(pearson[off].max()),
        "mad_median_offdiag": float(np.median(mad[off])),
        "mad_min_offdiag": float(mad[off].min()),
        "threshold_value": float(absolute_threshold(chosen, metric, threshold)),
        "matrices": LayerMatrices(values, pearson, mad, Z, cluster_order(Z, n)) if keep_matrices else None,
    }




def layer_activations(sample, *, metric="pearson", threshold=None, keep_matrices=False,
                      dead_tolerance=DEFAULT_DEAD_TOLERANCE, memory_budget=DEFAULT_MEMORY_BUDGET):
    """Dead neurons, activation matrices and groups of one entry's collected activations.

    Parameters
    ----------
    sample : ActivationSample
        From :func:`collect_activations`.
    metric, threshold, keep_matrices, dead_tolerance, memory_budget
        See :func:`analyze_activations`.

    Returns
    -------
    LayerActivations or SkippedLayer
        Skipped for a single neuron or for activations with NaN or Inf.
    """
    if sample.n_neurons < 2:
        return SkippedLayer(sample.name, sample.type, "only one neuron: nothing to compare it with")
    if not np.isfinite(sample.values).all():
        return SkippedLayer(sample.name, sample.type, "activations contain NaN or Inf on the sample")
    summary = analyze_activation_matrix(sample.values, metric=metric, threshold=threshold,
                                        keep_matrices=keep_matrices, memory_budget=memory_budget)
    return LayerActivations(
        name=sample.name, layer_name=sample.layer_name, type=sample.type, neurons=sample.n_neurons,
        samples=sample.samples, summary=sample.summary,
        dead=dead_neurons(sample.minimum, sample.maximum, tolerance=dead_tolerance), metric=metric, state=sample.state,
        heads=sample.heads, **summary)
