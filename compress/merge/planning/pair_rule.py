"""Which pairs of neuron rows can merge under a chain's rule, for all pairs at once (numpy only)."""

import numpy as np

__all__ = ["allowed_pairs"]


def allowed_pairs(rows, requirement, twin_tolerance):
    """``allowed[j, k]``: folding ``j`` into ``k`` can meet the rule (:func:`pair_allowed` for all pairs at once).

    A cheap filter from the Gram matrix of ``rows`` (n, fan_in + 1): :func:`pair_allowed` still decides
    each pair that passes.
    """
    gram = rows @ rows.T
    if requirement == "linear":
        return np.abs(gram) > 0
    if requirement == "positive":
        return gram > 0
    squared = np.diag(gram)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0.0))
    return distance <= twin_tolerance * np.sqrt(squared)[None, :] * (1 + 1e-9)
