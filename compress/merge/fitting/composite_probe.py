"""Probe the intermediate activations of composite layers' FFNs on calibration inputs.

A composite's sublayers are called inside its own code: their tensors are not in the model's graph,
so no sub-model can output them. The model runs eagerly on batches instead while each FFN's down
projection records what it reads (its input is the intermediate activation: after the activation,
or after gate * up), a few seeded positions per input.
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.batches import n_samples, rows, take

__all__ = ["probe_intermediates", "spy_inputs"]

_BATCH = 128


def spy_inputs(layer, records):
    """Make ``layer`` record its first input on every call (undone by deleting the instance's ``call``)."""
    keras = import_keras()
    original = layer.call

    def call(inputs, *args, **kwargs):
        records.append(np.asarray(keras.ops.convert_to_numpy(inputs), dtype=np.float64))
        return original(inputs, *args, **kwargs)

    layer.call = call


def _positions(values, positions, rng):
    """``(batch * k, n)`` from ``(batch, ..., n)``: ``k = min(positions, steps)`` seeded positions per input."""
    batch, n = values.shape[0], values.shape[-1]
    values = values.reshape(batch, -1, n)
    steps = values.shape[1]
    if steps <= positions:
        return values.reshape(-1, n)
    chosen = np.stack([rng.choice(steps, size=positions, replace=False) for _ in range(batch)])
    return np.take_along_axis(values, chosen[:, :, None], axis=1).reshape(-1, n)


def probe_intermediates(model, sites, x, *, samples, positions=16, seed=0):
    """Each site's intermediate activations on a seeded sample of ``x``.

    Parameters
    ----------
    model : keras.Model
        Run eagerly (``training=False``); not modified (its sublayers' ``call`` is restored).
    sites : list of FfnSite
    x : ndarray or list of ndarray
        Model inputs.
    samples : int
        Inputs drawn (seeded) from ``x``, at most all of them.
    positions : int, default=16
        Positions (tokens) kept per input, seeded.
    seed : int, default=0

    Returns
    -------
    dict
        ``site name -> ndarray of shape (n_rows, n_neurons)``, float64, ``n_rows = inputs × positions``.
    """
    rng = np.random.default_rng(seed)
    total = n_samples(x)
    chosen = np.sort(rng.choice(total, size=min(int(samples), total), replace=False))
    sample = take(x, chosen)
    records = {site.name: [] for site in sites}
    for site in sites:
        spy_inputs(site.consumer, records[site.name])
    try:
        for start in range(0, len(chosen), _BATCH):
            model(rows(sample, start, start + _BATCH), training=False)
    finally:
        for site in sites:
            del site.consumer.call
    return {name: np.concatenate([_positions(v, int(positions), rng) for v in values])
            for name, values in records.items()}
