"""Probe one composite attention's query heads on calibration inputs, summed into the moments a head merge fits on.

A composite's attention is called inside its own code: its head outputs are no tensor of the model's graph. The
model runs eagerly on batches while the output projection records its input (``(batch, T, heads, head_dim)``:
each query head's attention-weighted values, before the projection), as
:func:`~weightkit.compress.merge.fitting.composite_probe.probe_intermediates` records a down projection's. The
target is what the original model's output projection wrote at the same place (less its bias), so a block
merged after earlier ones is fitted to the original's output: a sequential refit.
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.activations.collect import sample_indices
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.compress.merge.fitting.composite_probe import spy_inputs
from weightkit.compress.merge.fitting.heads import head_moments

__all__ = ["composite_head_moments"]


def composite_head_moments(model, site, original, original_site, x, *, samples, seed=0, batch_size=64):
    """Raw moments ``[X, Z, 1]ᵀ [X, Z, 1]`` of one site's head outputs ``X`` and the original's output ``Z``.

    Parameters
    ----------
    model : keras.Model
        The model being merged (earlier blocks possibly merged already); run eagerly, not modified.
    site : HeadSite
        The site of ``model`` probed.
    original, original_site : keras.Model, HeadSite
        The original model and the same site in it: ``Z`` is its output projection's output less its bias
        (``model`` and ``site`` themselves for no sequential refit).
    x : ndarray or list of ndarray
        Model inputs.
    samples : int
        Inputs drawn (seeded) from ``x``; every position of each is a row.
    seed : int, default=0
    batch_size : int, default=64

    Returns
    -------
    moments : ndarray of shape (heads * head_dim + d_out + 1, heads * head_dim + d_out + 1)
        :func:`weightkit.compress.merge.fitting.heads.head_moments` summed over the rows.
    n_rows : int
    """
    keras = import_keras()
    kernel = np.asarray(keras.ops.convert_to_numpy(original_site.sub("output").kernel), dtype=np.float64)
    chosen = take(x, sample_indices(n_samples(x), samples, seed))
    spied = list({id(s.sub("output")): s.sub("output") for s in (site, original_site)}.values())
    heads, reference = [], []
    spy_inputs(spied[0], heads)
    if len(spied) > 1:
        spy_inputs(spied[1], reference)
    moments, n_rows = 0.0, 0
    try:
        for start in range(0, n_samples(chosen), batch_size):
            batch = rows(chosen, start, start + batch_size)
            del heads[:], reference[:]
            model(batch, training=False)
            if len(spied) > 1:
                original(batch, training=False)
            values = (reference if len(spied) > 1 else heads)[-1]
            target = np.tensordot(values, kernel, axes=([-2, -1], [0, 1]))  # (…, heads, head_dim) → (…, d)
            moments = moments + head_moments(heads[-1], target)
            n_rows += int(np.prod(heads[-1].shape[:-2]))
    finally:
        for layer in spied:
            del layer.call
    return moments, n_rows
