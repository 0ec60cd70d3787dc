"""Groups of pairwise-redundant neurons from a similarity matrix (complete linkage)."""

import numpy as np
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage

from weightkit.analysis.errors import WeightkitError

__all__ = [
    "METRICS",
    "DEFAULT_THRESHOLDS",
    "find_groups",
    "cluster_linkage",
    "condensed_distance",
    "cluster_order",
    "removable_count",
    "distance_matrix",
    "expected_chance_pairs",
]

#: Default threshold per metric. Pearson: r >= 0.9 means one row explains 81% of the other's
#: variance. MAD: a fraction of the layer's median off-diagonal MAD, so the rule is in the
#: layer's own units (weights of different layers differ in scale by orders of magnitude).
DEFAULT_THRESHOLDS = {"pearson": 0.9, "mad": 0.2}
METRICS = tuple(DEFAULT_THRESHOLDS)

# Distances are compared with this slack so that r == threshold counts as redundant.
_TOLERANCE = 1e-6


def _check_metric(metric):
    if metric not in DEFAULT_THRESHOLDS:
        raise WeightkitError(
            f"Invalid value for metric. Expected one of {list(METRICS)}. Received: metric={metric!r}."
        )


def distance_matrix(matrix, metric):
    """Turn a Pearson or MAD matrix into a distance matrix for clustering.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
        Output of :func:`pearson_matrix` or :func:`mad_matrix`.
    metric : {"pearson", "mad"}

    Returns
    -------
    distance : ndarray of shape (n, n), float64
        ``1 - r`` for Pearson (so only positive correlation is close), MAD itself for MAD.
    """
    _check_metric(metric)
    matrix = np.asarray(matrix, dtype=np.float64)
    distance = 1.0 - matrix if metric == "pearson" else matrix.copy()
    np.fill_diagonal(distance, 0.0)
    return np.maximum(distance, 0.0)


def condensed_distance(matrix, metric):
    """The symmetrized distance of :func:`distance_matrix` as scipy's condensed vector, built row by row.

    Equals ``squareform((D + D.T) / 2)`` for ``D = distance_matrix(matrix, metric)`` without forming
    any n×n float64 copy: for 8,192 neurons that is one 268 MB vector instead of five 537 MB matrices.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
    metric : {"pearson", "mad"}

    Returns
    -------
    condensed : ndarray of shape (n * (n - 1) // 2,), float64
    """
    _check_metric(metric)
    n = np.shape(matrix)[0]
    condensed = np.empty(n * (n - 1) // 2, dtype=np.float64)
    start = 0
    for i in range(n - 1):
        segment = condensed[start:start + n - 1 - i]
        np.add(_as_distance(matrix[i, i + 1:], metric), _as_distance(matrix[i + 1:, i], metric), out=segment)
        segment /= 2
        start += n - 1 - i
    return condensed


def _as_distance(similarities, metric):
    values = np.asarray(similarities, dtype=np.float64)
    values = 1.0 - values if metric == "pearson" else values.copy()
    return np.maximum(values, 0.0, out=values)


def cluster_linkage(matrix, metric):
    """Complete-linkage tree of the neurons.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
        Pearson or MAD matrix.
    metric : {"pearson", "mad"}

    Returns
    -------
    Z : ndarray of shape (n - 1, 4)
        The scipy linkage matrix; empty ``(0, 4)`` for a single neuron.
    """
    n = np.shape(matrix)[0]
    if n < 2:
        _check_metric(metric)
        return np.zeros((0, 4))
    return linkage(condensed_distance(matrix, metric), method="complete")


def cluster_order(Z, n):
    """Leaf order of a linkage tree: similar neurons end up next to each other.

    Returns
    -------
    order : ndarray of shape (n,), int
    """
    if n < 2:
        return np.arange(n)
    return leaves_list(Z)


def absolute_threshold(matrix, metric, threshold=None):
    """The distance below which two neurons are redundant.

    Pearson: ``1 - threshold``. MAD: ``threshold`` times the median off-diagonal MAD.
    """
    _check_metric(metric)
    threshold = DEFAULT_THRESHOLDS[metric] if threshold is None else float(threshold)
    if not np.isfinite(threshold):
        raise WeightkitError(
            f"The {metric} threshold must be a finite number, got {threshold}; "
            f"{DEFAULT_THRESHOLDS[metric]} is the default."
        )
    if metric == "pearson":
        if not -1.0 <= threshold <= 1.0:
            raise WeightkitError(
                f"A Pearson threshold must be in [-1, 1], got {threshold}; 0.9 is the default."
            )
        return 1.0 - threshold
    if threshold < 0:
        raise WeightkitError(
            f"A MAD threshold is a non-negative fraction of the layer's median MAD, got {threshold}; "
            "0.2 is the default."
        )
    n = np.shape(matrix)[0]
    if n < 2:
        return 0.0
    off_diagonal = np.asarray(matrix)[~np.eye(n, dtype=bool)]
    return threshold * float(np.median(off_diagonal))


def find_groups(matrix, metric="pearson", threshold=None, *, Z=None):
    """Groups of neurons that are pairwise redundant.

    Parameters
    ----------
    matrix : ndarray of shape (n, n)
        Pearson matrix (``metric="pearson"``) or MAD matrix (``metric="mad"``).
    metric : {"pearson", "mad"}, default="pearson"
        Pearson: every pair in a group has ``r >= threshold`` (positive correlation only: a
        negated copy is never redundant). MAD: every pair has
        ``MAD <= threshold * median off-diagonal MAD`` of the layer.
    threshold : float, default=None
        0.9 for Pearson, 0.2 for MAD when None.
    Z : ndarray of shape (n - 1, 4), default=None
        A complete-linkage tree from :func:`cluster_linkage` to reuse.

    Returns
    -------
    groups : list of list of int
        Each group has at least two neuron indices, sorted; groups sorted by their first index.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.array([[1.0, 0.95, 0.1], [0.95, 1.0, 0.2], [0.1, 0.2, 1.0]])
    >>> find_groups(r)
    [[0, 1]]
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise WeightkitError(f"Expected a square (n, n) matrix, got shape {matrix.shape}.")
    n = matrix.shape[0]
    cutoff = absolute_threshold(matrix, metric, threshold)
    if n < 2:
        return []
    if Z is None:
        Z = cluster_linkage(matrix, metric)
    labels = fcluster(Z, t=cutoff + _TOLERANCE * max(1.0, cutoff), criterion="distance")
    return _groups_from_labels(labels)


def _groups_from_labels(labels):
    members = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    groups = [sorted(group) for group in members.values() if len(group) >= 2]
    return sorted(groups, key=lambda group: group[0])


def removable_count(groups):
    """Neurons that merging would remove: the sum over groups of ``len(group) - 1``."""
    return int(sum(len(group) - 1 for group in groups))


def expected_chance_pairs(n_neurons, fan_in, threshold=DEFAULT_THRESHOLDS["pearson"]):
    """Expected number of pairs with Pearson r >= threshold among unrelated random rows.

    A baseline for reading Pearson groups: with short rows (a 3×3 depthwise filter has 9
    weights) high correlations happen by chance, and a few groups mean little.

    Parameters
    ----------
    n_neurons : int
    fan_in : int
        Length of each row.
    threshold : float, default=0.9

    Returns
    -------
    float
        ``n (n - 1) / 2 * P(r >= threshold)`` for independent Gaussian rows, where
        ``(r + 1) / 2`` follows Beta((fan_in - 2) / 2, (fan_in - 2) / 2).

    Examples
    --------
    >>> round(expected_chance_pairs(32, 9), 2)
    0.23
    """
    from scipy.special import betaincc  # beta.sf(x, a, a) itself, without importing scipy.stats (1-2 s)

    if fan_in <= 2 or n_neurons < 2:
        return float(n_neurons * (n_neurons - 1) / 2) if fan_in <= 2 and threshold < 1 else 0.0
    shape = (fan_in - 2) / 2.0
    probability = float(betaincc(shape, shape, (float(threshold) + 1.0) / 2.0))
    return n_neurons * (n_neurons - 1) / 2.0 * probability
