"""How far a merged model's outputs moved from the original's, the numpy core of choosing heads end to end.

The local fit (:mod:`weightkit.compress.merge.fitting.heads`) measures a removal by the variance of one
layer's output left unexplained; that error is weighed alike in every direction and in every layer,
though the rest of the model does not read it alike. A global choice
(:mod:`weightkit.compress.merge.heads_global`) compares candidate removals by what the whole model
writes instead, on calibration inputs:

- rows that are probability distributions (every value in [0, 1], each row summing to 1, as a
  softmax writes): the mean Kullback-Leibler divergence ``KL(p ‖ q)`` of the merged model's ``q``
  from the original's ``p``, in nats;
- any other output (logits, regression, a sigmoid's one column): the mean squared difference over the
  original output's total variance (0: the same outputs; 1: as far off as predicting the mean).

A model with several outputs sums its outputs' divergences.
"""

import numpy as np

from weightkit.analysis.errors import WeightkitError

__all__ = ["is_distribution", "output_divergence"]

#: How far a row's sum may be from 1 (float32 softmax outputs) for the rows to count as distributions.
SUM_TOLERANCE = 1e-3
#: Probabilities are clipped to this before the logarithm (a merged model may write an exact 0).
EPSILON = 1e-12


def is_distribution(outputs):
    """Whether every row of ``outputs`` (shape (..., n_classes), n_classes >= 2) is a probability distribution."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return bool(outputs.ndim >= 2 and outputs.shape[-1] >= 2 and outputs.min() >= 0.0 and outputs.max() <= 1.0
                and np.all(np.abs(outputs.sum(axis=-1) - 1.0) <= SUM_TOLERANCE))


def _divergence(reference, candidate):
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise WeightkitError(f"Expected outputs of the same shape, got {reference.shape} (original) and "
                             f"{candidate.shape} (merged).")
    if is_distribution(reference):
        p, q = np.clip(reference, EPSILON, 1.0), np.clip(candidate, EPSILON, 1.0)
        return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))
    flat = reference.reshape(reference.shape[0], -1)
    variance = float(np.sum(flat.var(axis=0)))
    error = float(np.mean(np.sum((candidate.reshape(flat.shape) - flat) ** 2, axis=1)))
    return error / variance if variance > 0 else error


def output_divergence(reference, candidate):
    """How far ``candidate`` outputs are from ``reference`` outputs on the same inputs (0: the same).

    Parameters
    ----------
    reference, candidate : ndarray of shape (n_samples, ...) or list of them
        The original and the merged model's outputs (one array per model output, in the same order).

    Returns
    -------
    float
        The mean ``KL(reference ‖ candidate)`` where the reference rows are distributions, otherwise the
        mean squared difference over the reference's total variance; summed over a list of outputs.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.5, 0.5], [0.9, 0.1]])
    >>> output_divergence(p, p)
    0.0
    >>> round(output_divergence(p, np.array([[0.5, 0.5], [0.5, 0.5]])), 3)   # KL(0.9, 0.1 ‖ 0.5, 0.5) / 2
    0.184
    """
    if isinstance(reference, (list, tuple)):
        if not isinstance(candidate, (list, tuple)) or len(candidate) != len(reference):
            raise WeightkitError("Expected as many merged outputs as original ones.")
        return float(sum(_divergence(r, c) for r, c in zip(reference, candidate)))
    return _divergence(reference, candidate)
