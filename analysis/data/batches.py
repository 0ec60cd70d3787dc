"""Inputs for a model with one or several inputs: one array, or a list of arrays of equal length.

Keras takes a list of arrays (in the model's input order) for a model with several inputs; these
helpers count, sample and slice either form the same way.
"""

import numpy as np

from weightkit.analysis.errors import WeightkitError

__all__ = ["as_batches", "n_samples", "take", "rows"]


def as_batches(x, n_inputs=1):
    """``x`` as a model's inputs: an ndarray for one input, a list of ndarrays for several.

    Parameters
    ----------
    x : ndarray, or list/tuple of ndarray
    n_inputs : int, default=1
        The model's number of inputs.

    Raises
    ------
    WeightkitError
        When the number of arrays or their lengths do not fit.
    """
    if isinstance(x, (list, tuple)):
        arrays = [np.asarray(a) for a in x]
        if len(arrays) == 1 and n_inputs == 1:
            return arrays[0]
        if len(arrays) != n_inputs:
            raise WeightkitError(f"--data: {len(arrays)} input arrays for a model with {n_inputs} inputs; give "
                                 f"one array per input (x0, x1, ... or x_<input name>).")
        lengths = sorted({len(a) for a in arrays})
        if len(lengths) > 1:
            raise WeightkitError(f"--data: the input arrays have different lengths {lengths}; give each input "
                                 "one value per sample.")
        return arrays
    if n_inputs != 1:
        raise WeightkitError(f"--data: one input array for a model with {n_inputs} inputs; give one array per "
                             "input (x0, x1, ... or x_<input name>).")
    return np.asarray(x)


def n_samples(x):
    """The number of samples of one array or of a list of arrays."""
    return len(x[0]) if isinstance(x, list) else len(x)


def take(x, indices):
    """The samples at ``indices`` of one array or of each array of a list (None stays None)."""
    if x is None:
        return None
    if isinstance(x, list):
        return [None if a is None else a[indices] for a in x]
    return x[indices]


def rows(x, start, stop):
    """Samples ``start:stop`` of one array or of each array of a list."""
    return [a[start:stop] for a in x] if isinstance(x, list) else x[start:stop]
