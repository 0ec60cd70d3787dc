"""The ``onnx`` mode: ``model.export(path, format="onnx")`` (tf2onnx), run in onnxruntime.

Keras' exact GELU (``activation="gelu"``, ``approximate=False``) reaches TensorFlow as
``0.5 * x * erfc(-x / sqrt(2))``; tf2onnx has no ONNX mapping for Erfc at any opset and writes it as
an op of that name, which onnxruntime refuses to load ("No Op registered for Erfc"). The export
therefore runs every layer whose activation is Keras' ``gelu`` with :func:`erf_gelu`, the same
function written ``0.5 * x * (1 + erf(x / sqrt(2)))`` (Erf is an ONNX op since opset 9): exact in
real arithmetic, not the tanh approximation; in float32 it differs from the erfc form by rounding
(measured: max |Δ| 1.2e-7 on x in [-8, 8]). The model is given back unchanged.
"""

import contextlib
import os
import tempfile

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.compress.quantize.convert import Conversion, converter_reason
from weightkit.compress.quantize.native import KerasRunner, quiet_export

__all__ = ["ONNX_PACKAGES", "OnnxRunner", "convert_onnx", "erf_gelu", "onnx_friendly_gelu"]

ONNX_PACKAGES = "tf2onnx, onnx and onnxruntime (pip install 'weightkit[onnx]')"


def erf_gelu(x):
    """Exact GELU written with Erf: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    Parameters
    ----------
    x : tensor of any shape

    Returns
    -------
    tensor of the shape of ``x``
    """
    ops = import_keras().ops
    return 0.5 * x * (1.0 + ops.erf(x * np.float32(1 / np.sqrt(2))))


@contextlib.contextmanager
def onnx_friendly_gelu(model):
    """Within the block, every layer of ``model`` whose activation is Keras' exact ``gelu`` uses :func:`erf_gelu`.

    Parameters
    ----------
    model : keras.Model

    Yields
    ------
    names : list of str
        The paths of the layers whose activation was swapped, restored when the block ends.
    """
    gelu = import_keras().activations.gelu
    swapped = []
    try:
        # Keras' own recursive walk (nested models and layers kept as attributes); no public one in Keras 3.15.
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if getattr(layer, "activation", None) is gelu:
                swapped.append(layer)
                layer.activation = erf_gelu
        yield [getattr(layer, "path", None) or layer.name for layer in swapped]
    finally:
        for layer in swapped:
            layer.activation = gelu


class OnnxRunner:
    """An ONNX model in onnxruntime (CPU), numpy in and numpy out, inputs fed in model order."""

    def __init__(self, content, input_dtypes=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.dtypes = input_dtypes or ["float32"] * len(self.inputs)

    def _feed(self, x):
        xs = x if isinstance(x, list) else [x]
        return {i.name: np.asarray(a, dtype=np.dtype(t) if np.dtype(t).kind in "iub" else np.float32)
                for i, a, t in zip(self.inputs, xs, self.dtypes)}

    def _call(self, x):
        outputs = [np.asarray(o, np.float32) for o in self.session.run(None, self._feed(x))]
        return outputs if len(outputs) > 1 else outputs[0]

    predict = KerasRunner.predict
    latency_ms = KerasRunner.latency_ms
    throughput = KerasRunner.throughput


def convert_onnx(keras_model, input_dtypes=None, verbose=False):
    """``(Conversion, runner or None, note or None)`` for the ``onnx`` mode.

    Parameters
    ----------
    keras_model : keras.Model
    input_dtypes : list of str, default=None
        One per model input; integer inputs are fed as integers.
    verbose : bool, default=False

    Returns
    -------
    tuple
        ``(Conversion, OnnxRunner or None, str or None)``; the note names the layers whose GELU was
        exported with Erf.
    """
    try:
        import onnxruntime  # noqa: F401 - checked before the slow export
        import tf2onnx  # noqa: F401
    except ImportError:
        return Conversion("onnx", error=f"needs {ONNX_PACKAGES}", converter="keras.export"), None, None
    with tempfile.TemporaryDirectory(prefix="weightkit-onnx-") as directory:
        path = os.path.join(directory, "model.onnx")
        try:
            with quiet_export(verbose), onnx_friendly_gelu(keras_model) as rewritten:
                keras_model.export(path, format="onnx", verbose=verbose)
        except Exception as error:  # noqa: BLE001 - tf2onnx raises many kinds
            return Conversion("onnx", error=converter_reason(error), converter="keras.export"), None, None
        with open(path, "rb") as handle:
            content = handle.read()
    try:
        runner = OnnxRunner(content, input_dtypes)
    except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types
        return Conversion("onnx", error=f"exported, but onnxruntime could not load it: {converter_reason(error)}",
                          converter="keras.export"), None, None
    note = (f"onnx: GELU of {', '.join(rewritten)} exported as 0.5·x·(1 + erf(x/√2)) (tf2onnx writes Keras' "
            "erfc form as an Erfc op onnxruntime has no kernel for); the same function, equal up to float32 "
            "rounding") if rewritten else None
    return Conversion("onnx", content=content, converter="keras.export"), runner, note
