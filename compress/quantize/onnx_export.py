"""The ``onnx`` mode: ``model.export(path, format="onnx")`` (tf2onnx), run in onnxruntime.

Keras' exact GELU (``activation="gelu"``, ``approximate=False``) reaches TensorFlow as
``0.5 * x * erfc(-x / sqrt(2))``; tf2onnx has no ONNX mapping for Erfc at any opset and writes it as
an op of that name, which onnxruntime refuses to load ("No Op registered for Erfc"). The export
therefore runs every layer whose activation is Keras' ``gelu`` with :func:`erf_gelu`, the same
function written ``0.5 * x * (1 + erf(x / sqrt(2)))`` (Erf is an ONNX op since opset 9): exact in
real arithmetic, not the tanh approximation; in float32 it differs from the erfc form by rounding
(measured: max |Δ| 9.5e-7 on x in [-8, 8], outputs up to 8). The model is given back unchanged.

The export itself is Keras' own route (an :class:`keras.export.ExportArchive` endpoint given to
``tf2onnx.convert.from_function``) with one repair: a constant the traced function captures (the
zoo's position ids, ``keras.ops.arange`` evaluated when the model was built) reaches tf2onnx as a
placeholder, which ``model.export(format="onnx")`` leaves as a graph input onnxruntime is never fed.
:func:`onnx_bytes` writes each such capture into the ONNX graph as an initializer holding its value.
"""

import contextlib

import numpy as np

from weightkit.analysis._tf import import_keras, import_tensorflow
from weightkit.compress.quantize.convert import Conversion, converter_reason
from weightkit.compress.quantize.export_swaps import layer_path, sublayers
from weightkit.compress.quantize.native import KerasRunner, quiet_export

__all__ = ["ONNX_PACKAGES", "OnnxRunner", "convert_onnx", "erf_gelu", "onnx_bytes", "onnx_friendly_gelu"]

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
        for layer in sublayers(model):
            if getattr(layer, "activation", None) is gelu:
                swapped.append(layer)
                layer.activation = erf_gelu
        yield [layer_path(layer) for layer in swapped]
    finally:
        for layer in swapped:
            layer.activation = gelu


def onnx_bytes(keras_model):
    """The serialized ONNX model of ``keras_model`` (tf2onnx, default opset), captured constants as initializers.

    Parameters
    ----------
    keras_model : keras.Model
        A model with static inputs (``keras_model.inputs``), called or loaded.

    Returns
    -------
    bytes
    """
    import tf2onnx
    from onnx import numpy_helper

    tf, keras = import_tensorflow(), import_keras()
    specs = [tf.TensorSpec(t.shape, t.dtype, name=getattr(t, "name", None)) for t in keras_model.inputs]
    signature = specs if len(specs) == 1 else [specs]
    serve = keras.export.ExportArchive().track_and_add_endpoint("serve", keras_model, signature)
    _patch_tf2onnx()
    proto, _ = tf2onnx.convert.from_function(serve, signature)
    captured = {inner.name: outer for outer, inner in serve.get_concrete_function(*signature).graph.captures
                if outer.dtype != tf.resource}
    for graph_input in [i for i in proto.graph.input if i.name in captured]:
        proto.graph.input.remove(graph_input)
        proto.graph.initializer.append(numpy_helper.from_array(np.asarray(captured[graph_input.name]),
                                                               graph_input.name))
    return proto.SerializeToString()


def _patch_tf2onnx():
    # Keras' own patch of tf2onnx for numpy >= 2 (np.object, np.cast), which model.export(format="onnx") applies.
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    patch_tf2onnx()


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
    try:
        with quiet_export(verbose), onnx_friendly_gelu(keras_model) as rewritten:
            content = onnx_bytes(keras_model)
    except Exception as error:  # noqa: BLE001 - tf2onnx raises many kinds
        return Conversion("onnx", error=converter_reason(error), converter="keras.export"), None, None
    try:
        runner = OnnxRunner(content, input_dtypes)
    except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types
        return Conversion("onnx", error=f"exported, but onnxruntime could not load it: {converter_reason(error)}",
                          converter="keras.export"), None, None
    note = (f"onnx: GELU of {', '.join(rewritten)} exported as 0.5·x·(1 + erf(x/√2)) (tf2onnx writes Keras' "
            "erfc form as an Erfc op onnxruntime has no kernel for); the same function, equal up to float32 "
            "rounding") if rewritten else None
    return Conversion("onnx", content=content, converter="keras.export"), runner, note
