"""The int4-weight TFLite modes: LiteRT's quantizer (ai-edge-quantizer) on the float32 model.

TF 2.21's converter has no int4 setting; ai-edge-quantizer stores weights as INT4 tensors, two
values a byte, per output channel. Two modes:

- ``dynamic-int4``: its dynamic recipe (``add_dynamic_config(num_bits=4)``): int4 weights, float
  activations quantized on the fly inside each kernel; needs no data, like the converter's
  ``dynamic``.
- ``int4``: its static recipe with int4 weights and int8 activations, calibrated on the same
  seeded sample of training inputs as the converter's representative dataset
  (:func:`~weightkit.compress.quantize.litert_quantizer.calibrate`); the model keeps float input and
  output (a QUANTIZE after the input, a DEQUANTIZE before the output, as the converter's ``int8``).

Both start from the converter's float32 ``.tflite``
(:func:`~weightkit.compress.quantize.int16x8.float32_content`). The quantizer has no recipe for
TFLite's fused recurrent ops (UNIDIRECTIONAL_SEQUENCE_LSTM, ..._RNN): they stay float, said in a
note. They are not unrolled as for int16x8: the unrolled graph repeats its ops and tensors at every
step, and int4 weights do not pay for that on small layers (an LSTM(8) on 8 steps: 4,460 bytes fused
in float32, 26,124 unrolled in float32, 23,776 unrolled in dynamic-int4; 4,416 fused in dynamic-int4,
the LSTM float; measured 2026-12-07). Other ops the recipe has no int4
kernel for stay float; for ``int4`` they are named in a note. A model the quantizer refuses is a
failed row with its reason in one line.
"""

from weightkit.compress.quantize.convert import Conversion, _quiet
from weightkit.compress.quantize.diagnose import describe, float_ops
from weightkit.compress.quantize.fused import fused_op_counts
from weightkit.compress.quantize.int16x8 import float32_content
from weightkit.compress.quantize.litert_quantizer import calibrate, calibration_feed, quantize_with, quantizer
from weightkit.compress.quantize.modes import MODES

__all__ = ["INT4_MODES", "convert_int4", "dynamic_int4", "static_int4"]

#: The modes this module makes, in the order of :data:`~weightkit.compress.quantize.modes.MODES`.
INT4_MODES = tuple(name for name, mode in MODES.items() if mode.post_conversion)


def dynamic_int4(float_content):
    """ai-edge-quantizer's dynamic recipe with int4 weights on a float ``.tflite``.

    Parameters
    ----------
    float_content : bytes
        A float32 ``.tflite`` flatbuffer.

    Returns
    -------
    bytes
        Every op with a dynamic int4 recipe (fully connected, convolution, ...) stores its kernel
        as INT4, per output channel; activations stay float.
    """
    q = quantizer(float_content)
    q.add_dynamic_config(regex=".*", operation_name="*", num_bits=4)
    with _quiet(False):
        return bytes(q.quantize().quantized_model)


def static_int4(float_content, feed):
    """ai-edge-quantizer's static recipe with int4 weights and int8 activations, float input and output.

    Parameters
    ----------
    float_content : bytes
        A float32 ``.tflite`` flatbuffer.
    feed : dict
        Its calibration inputs, from
        :func:`~weightkit.compress.quantize.litert_quantizer.calibration_feed`.

    Returns
    -------
    bytes
    """
    return quantize_with(float_content, [".*"], calibrate(float_content, feed, 8), weight_bits=4, float_io=True)


_RECIPES = {"dynamic-int4": lambda float_content, feed: dynamic_int4(float_content), "int4": static_int4}


def convert_int4(modes, conversions, source, calibration, *, calibration_samples=200, seed=0, verbose=False,
                 notes=None):
    """The int4 modes among ``modes``, each quantized by ai-edge-quantizer from the float32 model.

    Parameters
    ----------
    modes : sequence of str
        The modes asked for; those not in :data:`INT4_MODES` are ignored.
    conversions : list of Conversion
        The converter's conversions so far (their float32 model is reused when there is one).
    source : ModelSource
    calibration : ndarray, list of ndarray or None
        Training inputs (the same sample size and seed as the converter's representative
        dataset); ``int4`` needs them.
    calibration_samples : int, default=200
    seed : int, default=0
    verbose : bool, default=False
    notes : list, default=None
        Receives what stayed float in ``int4``, and the fused recurrent ops the quantizer cannot take.

    Returns
    -------
    list of Conversion
        One per int4 mode asked for, in the order of ``modes``; ``converter="ai-edge-quantizer"``.
    """
    wanted = [m for m in modes if m in INT4_MODES]
    if not wanted:
        return []
    float_content = float32_content(conversions, source, verbose)
    if float_content is None:
        return [Conversion(mode, error="the float32 model it quantizes did not convert") for mode in wanted]
    fused = sorted(fused_op_counts(float_content))
    if fused and notes is not None:
        notes.append(f"{', '.join(wanted)}: ai-edge-quantizer has no recipe for the fused {', '.join(fused)}: "
                     "those layers stay float")
    done = []
    for mode in wanted:
        try:
            feed = (calibration_feed(float_content, calibration, source, calibration_samples, seed)
                    if MODES[mode].needs_data else None)
            content = _RECIPES[mode](float_content, feed)
        except Exception as error:  # noqa: BLE001 - the quantizer raises many kinds; reported on the mode
            reason = " ".join(str(error).split())[:200]
            done.append(Conversion(mode, error=f"ai-edge-quantizer failed: {type(error).__name__}: {reason}"))
            continue
        done.append(Conversion(mode, content=content, converter="ai-edge-quantizer"))
        # Dynamic activations are float by design; a static model's float ops are what the recipe skipped.
        left = [(op, layer) for op, layer in float_ops(content) if op not in fused] if MODES[mode].needs_data else []
        if left and notes is not None:
            notes.append(f"{mode}: ai-edge-quantizer left {describe(left)} in float")
    return done
