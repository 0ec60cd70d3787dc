"""Random inputs in the range the model expects, for a comparison without data.

A model that starts with ``Rescaling(1/255)`` expects pixels in [0, 255]; one that starts with a
``Normalization`` layer expects values around its mean with its spread. Uniform [0, 1) inputs
would exercise such a model in a corner it never sees. :func:`input_sampler` reads the first
layer reading the input and draws accordingly; agreement on random inputs stays a sanity check.
"""

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["UNIFORM", "input_sampler", "random_inputs"]

UNIFORM = "uniform in [0, 1)"


def _first_reader(model, index):
    try:
        graph = ModelGraph(model)
    except (WeightkitError, AttributeError):
        return None
    readers = graph.readers(graph.input_ids[index]) if index < len(graph.input_ids) else []
    return readers[0].layer if len(readers) == 1 else None


def input_sampler(model, index=0):
    """``(description, draw)`` for input ``index``: ``draw(rng, shape)`` gives float32 samples.

    Parameters
    ----------
    model : keras.Model or None
    index : int, default=0

    Returns
    -------
    description : str
        In words, for the report (``"uniform in [0, 255), from Rescaling rescale"``).
    draw : callable
    """
    layer = _first_reader(model, index) if model is not None else None
    kind = kind_for(layer) if layer is not None else None
    sampler = kind.input_sampler(layer) if kind is not None else None  # Rescaling: its range; Normalization
    return sampler or (UNIFORM, lambda rng, shape: rng.random(shape, dtype=np.float32))


def random_inputs(input_shape, n_samples, seed=0, model=None, index=0):
    """``n_samples`` random inputs for a model input of shape ``(None, ...)`` (see :func:`input_sampler`)."""
    rng = np.random.default_rng(seed)
    _, draw = input_sampler(model, index)
    return draw(rng, (int(n_samples),) + tuple(int(d) for d in input_shape[1:]))
