"""What ``--target`` counts: parameters (``params``, ``size``) or multiply-adds (``latency``)."""

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["TARGETS", "model_cost", "multiply_adds"]

#: ``--target`` -> what the allocation removes most of, in words.
TARGETS = {
    "size": "parameters (the .tflite's weight bytes follow them); the export is the smallest file",
    "params": "parameters; the export is the smallest file among those with the fewest parameters",
    "latency": "multiply-adds per sample (a convolution's weights count once per output position)",
}


def multiply_adds(model):
    """Multiply-adds of one sample: each kernel's size times its output positions, summed.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    int
    """
    graph = ModelGraph(model)
    total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        try:
            shapes = graph.output_shapes(layer)
        except WeightkitError:
            shapes = []
        positions = 1
        for node_shapes in shapes[:1]:
            shape = node_shapes[0]
            positions = int(np.prod([d for d in shape[1:-1] if d is not None], dtype=np.int64)) if len(shape) > 2 else 1
        total += int(np.prod(kernel.shape)) * max(1, positions) * max(1, len(shapes))
    return int(total)


def model_cost(model, target):
    """The cost ``--target`` minimizes for ``model``: parameters, or multiply-adds for ``latency``."""
    if target not in TARGETS:
        raise WeightkitError(f"Invalid value for target. Expected one of {list(TARGETS)}. Received: target={target!r}.")
    return multiply_adds(model) if target == "latency" else int(model.count_params())
