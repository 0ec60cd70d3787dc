"""Normalization layers written, for the export only, as ops TFLite's int8 quantizer quantizes.

Keras' ``LayerNormalization`` computes ``x * inv + (-mean * inv + beta)`` with
``inv = gamma * rsqrt(variance + epsilon)``: TF 2.21's converter gives every op of that an int8
kernel except the NEG of ``-mean``, so a transformer converted with ``TFLITE_BUILTINS_INT8``
keeps NEG in float and is not integer-only. The same normalization written as
``(x - mean) * rsqrt(mean((x - mean)²) + epsilon) * gamma + beta`` uses MEAN, SUB, MUL, RSQRT
and ADD only, each with an int8 kernel. keras-hub's ``RMSNormalization`` (Gemma) divides by a
SQRT and squares with SQUARE; it is written ``x * rsqrt(mean(x * x) + epsilon) * (1 + scale)``. Keras' own
``RMSNormalization`` (what a sliced residual stream's norms become, :mod:`weightkit.compress.stream`) squares
with SQUARE too; it is written ``x * rsqrt(mean(x * x) + epsilon) * scale``.

:func:`integer_friendly_norms` swaps the ``call`` of every such layer of a model, nested
sublayers included (keras-hub's TransformerEncoder keeps its norms as attributes), for the
duration of a ``with`` block: the export traces the rewritten ops, and the model is given back
unchanged. The rewrite is exact in real arithmetic; in float32 the outputs differ by rounding
(measured on the zoo's ViT: 1e-8 mean |diff| on its softmax outputs).
"""

import contextlib
import sys

from weightkit.analysis._tf import import_keras
from weightkit.compress.quantize.export_swaps import rewritten_paths, swapped_methods

__all__ = ["integer_friendly_norms", "norms_note", "rewritten_norms"]


def _layer_norm_call(self, inputs):
    ops = import_keras().ops
    x = ops.cast(inputs, "float32")
    axis = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
    shape = [1] * len(x.shape)
    for dim in axis:
        shape[dim] = x.shape[dim]
    centered = x - ops.mean(x, axis=axis, keepdims=True)
    inv = ops.rsqrt(ops.mean(centered * centered, axis=axis, keepdims=True) + self.epsilon)
    outputs = (x if self.rms_scaling else centered) * inv  # Keras' rms_scaling scales x itself, without beta
    if self.gamma is not None:
        outputs = outputs * ops.reshape(ops.cast(self.gamma, "float32"), shape)
    if self.beta is not None and not self.rms_scaling:
        outputs = ops.add(outputs, ops.reshape(ops.cast(self.beta, "float32"), shape))
    return ops.cast(outputs, self.compute_dtype)


def _rms_norm_call(self, inputs):
    ops = import_keras().ops
    x = ops.cast(inputs, "float32")
    outputs = x * ops.rsqrt(ops.mean(x * x, axis=-1, keepdims=True) + self.epsilon)
    return ops.cast(outputs * (1 + ops.cast(self.scale, "float32")), self.compute_dtype)


def _keras_rms_norm_call(self, inputs):
    ops = import_keras().ops
    x = ops.cast(inputs, "float32")
    outputs = x * ops.rsqrt(ops.mean(x * x, axis=self.axis, keepdims=True) + self.epsilon)
    return ops.cast(outputs * ops.cast(self.scale, "float32"), self.compute_dtype)


def _rewrites():
    """``(class, "call", integer-friendly call)`` for each normalization class this process can have in a model."""
    keras = import_keras()
    found = [(keras.layers.LayerNormalization, "call", _layer_norm_call),
             (keras.layers.RMSNormalization, "call", _keras_rms_norm_call)]
    if "keras_hub" in sys.modules:  # a model holding keras-hub layers has imported it; never import it here
        from keras_hub.src.models.gemma.rms_normalization import RMSNormalization

        found.append((RMSNormalization, "call", _rms_norm_call))
    return found


def rewritten_norms(model):
    """Names of the layers of ``model`` that :func:`integer_friendly_norms` rewrites (their exact class only).

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of str
        Their paths (``"b0_ln1"``, ``"enc0/self_attention_layer_norm"``).
    """
    return rewritten_paths(model, _rewrites())


@contextlib.contextmanager
def integer_friendly_norms(model):
    """Within the block, every normalization layer of ``model`` computes with ops that have int8 kernels.

    Only layers whose class is exactly a rewritten one change (a user's subclass keeps its own ``call``).

    Parameters
    ----------
    model : keras.Model

    Yields
    ------
    names : list of str
        The layers whose ``call`` was swapped, restored when the block ends.
    """
    with swapped_methods(model, _rewrites()) as names:
        yield names


def norms_note(model):
    """A one-sentence note naming the normalization layers the export rewrote, as a list (empty when none).

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of str
    """
    names = rewritten_norms(model)
    if not names:
        return []
    return [f"normalization layers ({', '.join(names)}) exported as MEAN, SUB, MUL, RSQRT and ADD, which all have "
            "int8 kernels (Keras' LayerNormalization computes a NEG and RMSNormalization a SQUARE that TFLite's int8 "
            "quantizer leaves in float); the values are the same in float"]
