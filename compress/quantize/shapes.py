"""Variable-size inputs fixed to the data's shape before conversion.

A model built on ``keras.Input((None, 3))`` (any sequence length) or ``(None, None, 1)`` (any
image size) cannot be unrolled, calibrated or converted as it is: TF 2.21 needs every dimension
but the batch. With data, :func:`fix_to_data` rebuilds the model on inputs of the data's shape
(``keras.models.clone_model`` with new ``keras.Input`` tensors, the same layers and weights), so
every converter reads a fixed ``input_shape`` from the new :class:`~.source.ModelSource`; the
report says which size the ``.tflite`` files take. Without data, :func:`refuse_unknown` names the
input and ``--data``.
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError

__all__ = ["fix_to_data", "refuse_unknown", "unknown_inputs"]


def _shapes(source):
    model = source.keras_model
    if model is not None:
        return [tuple(t.shape) for t in model.inputs]
    return [tuple(source.input_shape)]


def _names(source, count):
    names = list(source.input_names or [])
    return names + [f"input_{i}" for i in range(len(names), count)]


def unknown_inputs(source):
    """``[(input name, shape)]`` of the inputs with an unknown dimension besides the batch.

    Parameters
    ----------
    source : ModelSource

    Returns
    -------
    list of (str, tuple)
        Shapes ``(None, ...)`` in model order; empty when every input has a fixed size.
    """
    shapes = _shapes(source)
    return [(name, shape) for name, shape in zip(_names(source, len(shapes)), shapes)
            if any(d is None for d in shape[1:])]


def refuse_unknown(source):
    """Raise for a source with a variable-size input: without data there is no size to fix it to."""
    unknown = unknown_inputs(source)
    if not unknown:
        return
    name, shape = unknown[0]
    more = f" (and {len(unknown) - 1} more input{'s' if len(unknown) > 2 else ''})" if len(unknown) > 1 else ""
    raise WeightkitError(
        f"{source.name}: input {name} has the shape {shape}{more}, with unknown dimensions besides the batch, so it "
        "cannot be converted as it is; pass --data DATA (training inputs) to fix them to the data's shape, or give "
        "the model a fixed input size (keras.Input(shape=...))."
    )


def _size_words(shape, fixed):
    """``"sequence length fixed to 10"``, ``"image size fixed to 28x28"`` or ``"dimensions fixed to (...)"``."""
    unknown = [i for i, d in enumerate(shape) if i > 0 and d is None]
    if len(shape) == 3 and unknown == [1]:
        return f"sequence length fixed to {fixed[1]}", "that length"
    if len(shape) == 4 and unknown and set(unknown) <= {1, 2}:
        return f"image size fixed to {fixed[1]}x{fixed[2]}", "that size"
    return f"unknown dimensions fixed to {tuple(fixed[1:])}", "that shape"


def _data_shapes(x, count):
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != count:
        return None
    return [(None,) + tuple(np.shape(a)[1:]) for a in arrays]


def _fixed_model(model, shapes):
    """``model`` rebuilt on inputs of ``shapes`` (``(None, ...)`` each), its weights copied."""
    keras = import_keras()
    fresh = [keras.Input(batch_shape=shape, dtype=t.dtype, name=t.name.split(":")[0])
             for t, shape in zip(model.inputs, shapes)]
    if isinstance(model, keras.Sequential) or len(fresh) == 1:
        structure = fresh[0]
    else:  # a list or dict of inputs: keep the model's own structure, each tensor replaced by its fixed twin
        position = {id(t): i for i, t in enumerate(model.inputs)}
        structure = keras.tree.map_structure(lambda t: fresh[position[id(t)]], model.input)
    copy = keras.models.clone_model(model, input_tensors=structure)
    copy.set_weights(model.get_weights())
    return copy


def fix_to_data(source, x, origin="--data"):
    """A source whose variable-size inputs take the shape of ``x``, and a note saying so.

    Parameters
    ----------
    source : ModelSource
        A Keras source (a SavedModel's signature cannot be rebuilt; it is refused).
    x : ndarray of shape (n, ...), list of them, or None
        The data, one array per input in model order; every unknown dimension takes the array's size.
        None (no data): a variable-size input is refused (:func:`refuse_unknown`).
    origin : str, default="--data"
        Where the data came from, for the note.

    Returns
    -------
    source : ModelSource
        ``source`` itself when every input has a fixed size; else a new source on the rebuilt
        model (same name, size on disk and layers).
    notes : list of str
        One per input that was fixed: ``"input series: sequence length fixed to 10 from --data
        ...; the .tflite files take only that length"``.
    """
    from weightkit.compress.quantize.source import keras_source

    unknown = unknown_inputs(source)
    if not unknown:
        return source, []
    shapes = _shapes(source)
    data = _data_shapes(x, len(shapes)) if x is not None else None
    if source.keras_model is None or data is None:
        refuse_unknown(source)
    fixed = [tuple(d if d is not None else h for d, h in zip(want, have)) if len(want) == len(have) else want
             for want, have in zip(shapes, data)]
    if any(d is None for shape in fixed for d in shape[1:]):
        refuse_unknown(source)
    new = keras_source(_fixed_model(source.keras_model, fixed))
    new.name, new.bytes = source.name, source.bytes
    notes = []
    names = _names(source, len(shapes))
    for index, shape in enumerate(shapes):
        if not any(d is None for d in shape[1:]):
            continue
        words, which = _size_words(shape, fixed[index])
        name = names[index]
        notes.append(f"input {name}: {words} from {origin} (the model takes {shape}); the .tflite files take "
                     f"only {which}")
    return new, notes
