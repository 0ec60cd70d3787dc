"""Integer inputs (token ids for an Embedding) stay integers: which inputs, read by which layers.

Quantizing a token id maps it onto an int8 grid of the calibration range: id 17 can become id
16, another word. The converter keeps an ``int32`` input as it is; :func:`integer_inputs` finds
such inputs and the layers that read them, so the report can say so.
"""

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["integer_input_notes", "integer_inputs"]


def integer_inputs(source):
    """``[(input name, dtype, [reader layer names])]`` of a source's integer-typed inputs.

    Parameters
    ----------
    source : ModelSource

    Returns
    -------
    list of (str, str, list of str)
        Readers are named for a Keras model only (empty for a SavedModel).
    """
    dtypes = source.input_dtypes or [source.input_dtype]
    names = source.input_names or ["input"] * len(dtypes)
    found = []
    graph = None
    if source.keras_model is not None:
        try:
            graph = ModelGraph(source.keras_model)
        except WeightkitError:
            graph = None
    for index, (name, dtype) in enumerate(zip(names, dtypes)):
        if np.dtype(dtype).kind not in "iub":
            continue
        readers = []
        if graph is not None and index < len(graph.input_ids):
            nodes = graph.readers(graph.input_ids[index])
            readers = [f"{type(node.layer).__name__} {node.layer.name}" for node in nodes]
        found.append((name, str(dtype), readers))
    return found


def integer_input_notes(source):
    """One report note per integer input: never quantized, in every mode."""
    notes = []
    for name, dtype, readers in integer_inputs(source):
        feeding = f", feeding {', '.join(readers)}" if readers else ""
        notes.append(f"input {name} ({dtype}{feeding}) stays {dtype} in every mode: integer inputs such as token ids "
                     "are never quantized; the integer modes quantize the rest of the model")
    return notes
