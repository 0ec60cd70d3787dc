"""The post-training quantization modes and the converter settings each one stands for.

One registry maps a mode name to its settings; :func:`configure_converter` applies them to a
``tf.lite.TFLiteConverter``. Settings follow the TFLite post-training quantization guide:

=========  ===================================================================================
float32    no optimization: the float reference, in TFLite form
dynamic    ``optimizations=[DEFAULT]``: int8 weights, float activations (dynamic range)
float16    ``DEFAULT`` + ``target_spec.supported_types=[float16]``: float16 weights
int8       ``DEFAULT`` + representative dataset + ``supported_ops=[TFLITE_BUILTINS_INT8]``:
           integer kernels inside, float input and output (a QUANTIZE/DEQUANTIZE at the edges)
int8-io    as int8, plus ``inference_input_type = inference_output_type = int8``
int16x8    ``DEFAULT`` + representative dataset + ``supported_ops=[EXPERIMENTAL_TFLITE_BUILTINS_
           ACTIVATIONS_INT16_WEIGHTS_INT8]``: int16 activations, int8 weights (reference kernels:
           slow on CPU, its latency is not comparable)
=========  ===================================================================================

``dynamic-int4`` and ``int4`` are ``.tflite`` files too, but made after conversion by LiteRT's
quantizer (ai-edge-quantizer) from the float32 model (:mod:`.int4`, ``post_conversion``): int4
weights (two a byte, per channel) with float activations (its dynamic recipe), or with int8
activations and float input and output (its static recipe, calibrated like int8).
"""

from dataclasses import dataclass

from weightkit.analysis._tf import import_tensorflow
from weightkit.analysis.errors import WeightkitError

__all__ = ["DATA_FREE_MODES", "MODES", "MODE_NAMES", "TFLITE_MODES", "QuantizationMode", "configure_converter",
           "mode_file", "parse_modes"]


@dataclass(frozen=True)
class QuantizationMode:
    """One post-training quantization mode.

    Attributes
    ----------
    name : str
    needs_data : bool
        Needs a representative (calibration) dataset.
    integer_only : bool
        Promises integer kernels throughout: a converted model that still computes in float
        (an op the quantizer left alone) does not deliver the mode and is reported as failed.
    description : str
    backend : {"tflite", "mixed", "keras", "onnx"}, default="tflite"
        What converts and runs it: the TFLite converter and LiteRT, Keras' own
        ``model.quantize`` (a ``.keras`` file run by Keras), or ``model.export(format="onnx")``
        run in onnxruntime; ``mixed`` is a TFLite model quantized per layer after conversion
        (:mod:`weightkit.compress.quantize.sensitivity`).
    post_conversion : bool, default=False
        A ``tflite`` mode that LiteRT's quantizer (ai-edge-quantizer) makes from the float32
        ``.tflite`` (:mod:`weightkit.compress.quantize.int4`), not the converter's settings.
    """

    name: str
    needs_data: bool
    integer_only: bool
    description: str
    backend: str = "tflite"
    post_conversion: bool = False

    @property
    def extension(self):
        """The file extension of the mode's model: ``.tflite``, ``.keras`` or ``.onnx``."""
        return {"tflite": ".tflite", "mixed": ".tflite", "keras": ".keras", "onnx": ".onnx"}[self.backend]


MODES = {mode.name: mode for mode in (
    QuantizationMode("float32", False, False, "float32 weights and activations"),
    QuantizationMode("dynamic", False, False, "int8 weights, float activations (dynamic range)"),
    QuantizationMode("float16", False, False, "float16 weights"),
    QuantizationMode("int8", True, True, "int8 weights and activations, float input and output"),
    QuantizationMode("int8-io", True, True, "int8 weights and activations, int8 input and output"),
    QuantizationMode("int16x8", True, True, "int16 activations, int8 weights"),
    QuantizationMode("dynamic-int4", False, False, "int4 weights per channel, float activations (dynamic range), "
                                                   "by ai-edge-quantizer", post_conversion=True),
    QuantizationMode("int4", True, False, "int4 weights per channel, int8 activations, float input and output, by "
                                          "ai-edge-quantizer", post_conversion=True),
    QuantizationMode("keras-int8", False, False, "Keras model.quantize('int8'): int8 weights of Dense, EinsumDense, "
                                                 "Embedding", "keras"),
    QuantizationMode("keras-int4", False, False, "Keras model.quantize('int4'): int4 weights of Dense, EinsumDense",
                     "keras"),
    QuantizationMode("keras-float8", False, False, "Keras model.quantize('float8'): float8 Dense, EinsumDense",
                     "keras"),
    QuantizationMode("mixed", True, False, "int8 except the k most sensitive layers (kept float), the smallest k "
                                           "within --max-drop (ai-edge-quantizer)", "mixed"),
    QuantizationMode("onnx", False, False, "ONNX through model.export(format='onnx') (tf2onnx), run in onnxruntime",
                     "onnx"),
)}
MODE_NAMES = tuple(MODES)
TFLITE_MODES = tuple(name for name, mode in MODES.items() if mode.backend == "tflite")
DATA_FREE_MODES = tuple(name for name, mode in MODES.items() if not mode.needs_data)


def mode_file(mode):
    """``model_<mode>.tflite`` (``.keras``, ``.onnx``): the file a mode's model is written to."""
    return f"model_{mode}{MODES[mode].extension}"


def parse_modes(text):
    """Turn ``"float32,int8"`` into ``["float32", "int8"]``, checked, duplicates dropped.

    Parameters
    ----------
    text : str or sequence of str

    Returns
    -------
    list of str
        In the order given.

    Raises
    ------
    WeightkitError
        For an unknown or empty list, naming the allowed modes.
    """
    words = text.split(",") if isinstance(text, str) else list(text)
    names = []
    for word in (w.strip().lower() for w in words):
        if not word:
            continue
        if word not in MODES:
            raise WeightkitError(
                f"--modes: unknown mode {word!r}; expected a comma-separated list of {', '.join(MODE_NAMES)}."
            )
        if word not in names:
            names.append(word)
    if not names:
        raise WeightkitError(f"--modes: no mode given; expected a comma-separated list of {', '.join(MODE_NAMES)}.")
    return names


def configure_converter(converter, mode, representative_dataset=None, integer_inputs=False):
    """Apply a mode's settings to a ``tf.lite.TFLiteConverter``.

    Parameters
    ----------
    converter : tf.lite.TFLiteConverter
    mode : str
        A key of :data:`MODES`.
    representative_dataset : callable, default=None
        A generator function yielding ``[sample]`` lists, each sample of shape (1, ...);
        required by the modes that need data.
    integer_inputs : bool, default=False
        The model takes integers (token ids for an Embedding): int8-io then keeps its input
        integer (``inference_input_type`` is left alone, only the output becomes int8).

    Returns
    -------
    converter : tf.lite.TFLiteConverter
    """
    tf = import_tensorflow()
    spec = MODES[mode]
    if spec.post_conversion:
        raise WeightkitError(f"mode {mode}: made by ai-edge-quantizer from the float32 model, not by the converter "
                             "(weightkit.compress.quantize.int4.convert_int4).")
    if spec.needs_data and representative_dataset is None:
        raise WeightkitError(f"mode {mode}: needs calibration data; pass --data DATA or leave {mode} out of --modes.")
    if mode == "float32":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if spec.needs_data:
        converter.representative_dataset = representative_dataset
    if mode in ("int8", "int8-io"):
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if mode == "int8-io":
        if not integer_inputs:
            converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if mode == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter
