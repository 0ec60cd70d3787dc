"""Drop the bytes a ``.tflite`` does not need to compute (names, repeats) when that changes no output.

On a model of a few thousand parameters the flatbuffer's own strings are a large share of the
file (``functional_1/hidden1_1/MatMul;...`` for every tensor). TensorFlow's
``tensorflow.lite.tools.flatbuffer_utils.strip_strings`` removes them (:func:`strip_names`), and
:func:`weightkit.compress.quantize.compact.compact_flatbuffer` stores every repeated vector and table
once; :func:`slim_export` does both. Each result is run on the same inputs and kept only when its
outputs are identical.
"""

import numpy as np

from weightkit.compress.quantize import TFLiteModel
from weightkit.compress.quantize.compact import compact_flatbuffer

__all__ = ["slim_export", "strip_names"]


def _same(first, second):
    first = first if isinstance(first, list) else [first]
    second = second if isinstance(second, list) else [second]
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def strip_names(content, x, runner=TFLiteModel):
    """``content`` without its tensor names when the outputs on ``x`` stay bit-identical.

    Parameters
    ----------
    content : bytes
        A ``.tflite`` flatbuffer.
    x : ndarray of shape (n_samples, ...), or a list of them (one per input)
        Inputs the two models are compared on.
    runner : callable, default=TFLiteModel
        ``runner(content)`` -> an object whose ``predict(x)`` gives the outputs (a list for several);
        a model with several inputs or outputs needs a signature runner
        (:func:`weightkit.compress.shrink.run.tflite_runner`). A model whose signature the stripping
        removed fails to run and is kept with its names.

    Returns
    -------
    content : bytes
        The stripped flatbuffer, or the given one when stripping failed or changed an output.
    saved : int
        Bytes saved (0 when the given one is returned).
    """
    content, kept = _kept_steps(content, x, runner, _STEPS[:1])
    return content, sum(saved for _, saved in kept)


def _stripped(content):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def slim_export(content, x, runner=TFLiteModel):
    """``content`` without its names and with each repeated part stored once, each step kept only when the
    outputs on ``x`` stay bit-identical.

    Parameters
    ----------
    content : bytes
        A ``.tflite`` flatbuffer.
    x : ndarray of shape (n_samples, ...), or a list of them (one per input)
        Inputs the models are compared on.
    runner : callable, default=TFLiteModel
        As in :func:`strip_names`.

    Returns
    -------
    content : bytes
        The smallest flatbuffer whose outputs equal the given one's.
    steps : list of (str, int)
        The steps kept, with the bytes each saved.
    """
    return _kept_steps(content, x, runner, _STEPS)


#: ``(what the note says, bytes -> smaller bytes)``, in the order they are tried.
_STEPS = (("tensor names stripped", _stripped), ("repeated vectors and tables stored once", compact_flatbuffer))


def _kept_steps(content, x, runner, steps):
    """``content`` after each of ``steps`` that makes it smaller with the outputs on ``x`` bit-identical, and
    ``(label, bytes saved)`` per step kept; the given bytes when the model does not run."""
    kept = []
    try:
        expected = runner(content).predict(x)
    except (RuntimeError, ValueError, AttributeError, KeyError):
        return content, kept
    for label, step in steps:
        try:
            slimmer = step(content)
            same = len(slimmer) < len(content) and _same(expected, runner(slimmer).predict(x))
        except (ImportError, RuntimeError, ValueError, AttributeError, KeyError):
            continue
        if same:
            kept.append((label, len(content) - len(slimmer)))
            content = slimmer
    return content, kept
