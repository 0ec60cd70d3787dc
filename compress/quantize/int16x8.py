"""int16x8 where TF 2.21's own 16x8 quantizer fails: LiteRT's quantizer on the float32 model instead.

Two failures are known (measured 2026-12-01, TF 2.21):

- **Integer inputs.** The 16x8 converter tries to quantize an integer input (token ids feeding an
  Embedding), or an integer tensor the model computes (position ids ``zeros_like(x) + arange(n)``
  feeding a position Embedding), and stops with "Empty min/max". ai-edge-quantizer with an int16-activation /
  int8-weight recipe on the float32 ``.tflite`` leaves the ``int32`` input alone.
- **A bias with a NaN scale.** A GRU (``reset_after=True``, Keras' default) adds its recurrent
  bias after the matrix product of the state; at the first step the state is the zero initial
  state, whose range is empty, so the 16x8 quantizer gives that bias a NaN scale and stores it
  as zeros in every step: the zoo's random-weight ``gru_sequences`` then agreed 0.71 with Keras
  per step, its mean output error 0.28 (int8: 1.0 and 0.006). :func:`nan_scale_tensors` finds
  such tensors.

In both cases :func:`rescue_int16x8` replaces the converter's result with the quantizer's and
says so in a note; its calibration widens empty ranges
(:func:`~weightkit.compress.quantize.litert_quantizer.widen_empty_ranges`), which keeps that bias: the same
GRU agrees 1.0, mean error 0.0016. An LSTM the converter fused (UNIDIRECTIONAL_SEQUENCE_LSTM, which
the quantizer cannot take in 16x8) is converted again unrolled first when it has at most
:data:`~weightkit.compress.quantize.unroll.UNROLL_MAX_STEPS` steps. The quantizer keeps the FILL that makes
a recurrent layer's zero initial state in float (a constant, no arithmetic) and gives the model an
int16 output (dequantized with its scale when the model is run here).
"""

import numpy as np

from weightkit.compress.quantize.convert import Conversion, convert_modes
from weightkit.compress.quantize.diagnose import describe, float_ops
from weightkit.compress.quantize.evaluate import make_interpreter
from weightkit.compress.quantize.fused import fused_op_counts
from weightkit.compress.quantize.litert_quantizer import calibrate, calibration_feed, quantize_with
from weightkit.compress.quantize.unroll import UNROLL_MAX_STEPS

__all__ = ["float32_content", "float32_for_quantizer", "nan_scale_tensors", "rescue_int16x8"]

_CONSTANT_OPS = {"FILL"}  # float ops with no arithmetic (a zero initial state), acceptable in an integer model


def nan_scale_tensors(content):
    """Names of the tensors of a ``.tflite`` model whose quantization scale is NaN (their values are lost)."""
    interpreter = make_interpreter(content)
    found = []
    for details in interpreter.get_tensor_details():
        scales = np.asarray(details.get("quantization_parameters", {}).get("scales", []), dtype=np.float64)
        if scales.size and np.isnan(scales).any():
            found.append(details["name"])
    return found


def float32_content(conversions, source, verbose=False):
    """The float32 ``.tflite`` bytes among ``conversions``, or converted now; None when it fails."""
    done = next((c.content for c in conversions if c.mode == "float32" and c.ok), None)
    if done is not None:
        return done
    (conversion,) = convert_modes(source, ["float32"], verbose=verbose)
    return conversion.content


def float32_for_quantizer(conversions, source, verbose=False, notes=None):
    """The float32 model ai-edge-quantizer can quantize throughout.

    It has no recipe for TFLite's fused recurrent ops (UNIDIRECTIONAL_SEQUENCE_LSTM, ..._RNN): a
    model whose recurrent layers the converter fused is converted again unrolled
    (``convert_modes(..., fuse=False)``) when its sequence has at most
    :data:`~weightkit.compress.quantize.unroll.UNROLL_MAX_STEPS` steps; a longer one keeps the fused op, which
    then stays float (said in ``notes``).

    Returns
    -------
    bytes or None
    """
    content = float32_content(conversions, source, verbose)
    counts = fused_op_counts(content) if content is not None and source.keras_model is not None else {}
    if not counts:
        return content
    steps = source.input_shape[1] if len(source.input_shape) > 1 else None
    unrolled = None
    if steps is not None and int(steps) <= UNROLL_MAX_STEPS:
        (conversion,) = convert_modes(source, ["float32"], verbose=verbose, fuse=False)
        unrolled = conversion.content
    ops = ", ".join(sorted(counts))
    if notes is not None:
        notes.append(f"ai-edge-quantizer has no recipe for the fused {ops}: "
                     + (f"it quantized a float32 model with the recurrent layers unrolled over their {int(steps)} "
                        "steps" if unrolled is not None else "those layers stay float in what it quantizes"))
    return unrolled or content


def _why(conversion, integer_inputs):
    """Why TF's int16x8 result cannot stand, or None when it can."""
    if not conversion.ok:
        error = conversion.error or ""
        if integer_inputs and ("Empty min/max" in error or "quantize the integer input" in error):
            return "TF 2.21's 16x8 quantizer tries to quantize the integer input (token ids) and fails"
        if "Empty min/max" in error:  # an integer tensor the model computes (a transformer's position ids)
            return "TF 2.21's 16x8 quantizer tries to quantize an integer tensor of the model (position ids) and fails"
        return None
    lost = nan_scale_tensors(conversion.content)
    if lost:
        return (f"TF 2.21's 16x8 quantizer gave {len(lost)} tensor{'s' if len(lost) > 1 else ''} a NaN scale "
                f"({', '.join(lost[:2])}{', ...' if len(lost) > 2 else ''}; a GRU's recurrent bias, added to the "
                "product of the zero initial state, is one), which zeroes them")
    return None


def rescue_int16x8(conversions, source, calibration, *, calibration_samples=200, seed=0, verbose=False,
                   notes=None):
    """Replace a failed or broken TF int16x8 conversion by ai-edge-quantizer's a16w8 model.

    Parameters
    ----------
    conversions : list of Conversion
        From :func:`~weightkit.compress.quantize.convert.convert_modes`; changed in place.
    source : ModelSource
    calibration : ndarray or list of ndarray
        Training inputs (the same sample size and seed as the converter's representative dataset).
    calibration_samples : int, default=200
    seed : int, default=0
    verbose : bool, default=False
    notes : list, default=None
        Receives one sentence when int16x8 was rescued.

    Returns
    -------
    list of Conversion
    """
    index = next((i for i, c in enumerate(conversions) if c.mode == "int16x8"), None)
    if index is None or calibration is None:
        return conversions
    dtypes = source.input_dtypes or [source.input_dtype]
    why = _why(conversions[index], any(np.dtype(t).kind in "iub" for t in dtypes))
    if why is None:
        return conversions
    float_content = float32_for_quantizer(conversions, source, verbose)
    if float_content is None:
        return conversions
    try:
        feed = calibration_feed(float_content, calibration, source, calibration_samples, seed)
        content = quantize_with(float_content, [".*"], calibrate(float_content, feed, 16), activation_bits=16)
    except Exception as error:  # noqa: BLE001 - the quantizer raises many kinds; reported on the mode
        conversions[index] = Conversion("int16x8", error=f"{why}; ai-edge-quantizer failed too "
                                                         f"({type(error).__name__}: {' '.join(str(error).split())[:160]})")
        return conversions
    left = [(op, layer) for op, layer in float_ops(content) if op not in _CONSTANT_OPS]
    if left:
        conversions[index] = Conversion("int16x8", error=f"{why}; ai-edge-quantizer left {describe(left)} in float",
                                        converter="ai-edge-quantizer")
        return conversions
    conversions[index] = Conversion("int16x8", content=content, converter="ai-edge-quantizer")
    if notes is not None:
        notes.append(f"int16x8: {why}; quantized instead by ai-edge-quantizer (int16 activations, int8 weights) on "
                     "the float32 model, which leaves integer inputs alone and gives the model an int16 output")
    return conversions
