"""The distillation's inputs per epoch: the training inputs, plus mixtures of pairs of them that the teacher labels.

Function matching (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and consistent"): the
teacher gives a target for any input, not only for the training samples, so the student can be shown the
teacher's function between them. Each epoch draws fresh pairs ``(i, j)`` and weights ``λ ~ Beta(1, 1)`` folded
to ``λ ≥ 1/2`` (so that sample ``i`` dominates), and mixes ``λ·x_i + (1 − λ)·x_j`` on every float input.
Integer inputs, float inputs declared integer by the model, and inputs that reach an ``Embedding`` (token ids,
which cannot be averaged; :func:`weightkit.analysis.data.token_ids.embedding_vocabularies`) keep sample ``i``'s
values. A model with no mixable input gets no mixtures.
"""

import numpy as np

from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.token_ids import embedding_vocabularies

__all__ = ["mixable_inputs", "mixed_inputs"]


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def mixable_inputs(model, x):
    """Which of a model's inputs may be mixed: float data, a float model input, no Embedding reached.

    Parameters
    ----------
    model : keras.Model
    x : ndarray of shape (n_samples, ...), or a list of them (one per input, in model order)

    Returns
    -------
    list of bool
        One per input.
    """
    arrays = _as_list(x)
    declared = [str(getattr(t, "dtype", "float32")) for t in getattr(model, "inputs", None) or []]
    declared += ["float32"] * (len(arrays) - len(declared))
    vocabularies = embedding_vocabularies(model)
    vocabularies += [[]] * (len(arrays) - len(vocabularies))
    return [np.asarray(a).dtype.kind == "f" and "float" in dtype and not reached
            for a, dtype, reached in zip(arrays, declared, vocabularies)]


def mixed_inputs(x, mixable, rng, count=None):
    """``count`` mixtures of pairs of samples on the mixable inputs.

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...), or a list of them
    mixable : list of bool
        One per input (:func:`mixable_inputs`).
    rng : numpy.random.Generator
    count : int, default=None
        How many mixtures; None: ``n_samples``.

    Returns
    -------
    ndarray of shape (count, ...), or a list of them in the structure of ``x``
        ``λ·x_i + (1 − λ)·x_j`` per mixable input (in its dtype), ``x_i`` for the others; ``λ`` in
        ``[1/2, 1]`` per sample, ``i`` and ``j`` drawn uniformly (``i = j`` gives ``x_i``).
    """
    n = n_samples(x)
    count = n if count is None else int(count)
    first, second = rng.integers(0, n, size=count), rng.integers(0, n, size=count)
    weight = rng.beta(1.0, 1.0, size=count)
    weight = np.maximum(weight, 1.0 - weight)
    out = []
    for array, mix in zip(_as_list(x), mixable):
        a = take(array, first)
        if mix:
            w = weight.reshape((count,) + (1,) * (a.ndim - 1)).astype(a.dtype)
            a = w * a + (1 - w) * take(array, second)
        out.append(a)
    return out if isinstance(x, (list, tuple)) else out[0]
