"""The second step of a quantization run: every mode converted (TFLite, sensitivity and mixed, Keras-native, ONNX).

:func:`convert_every_mode` returns the :class:`~.convert.Conversion` of each mode in the order of
``options.modes``, the runners of the modes that are not TFLite flatbuffers, and the per-layer
sensitivity report when it was asked for (or needed by ``mixed``).
"""

from weightkit.compress.quantize.convert import Conversion, convert_modes
from weightkit.compress.quantize.inputs import integer_input_notes
from weightkit.compress.quantize.int4 import convert_int4
from weightkit.compress.quantize.int16x8 import float32_for_quantizer, rescue_int16x8
from weightkit.compress.quantize.modes import MODES
from weightkit.compress.quantize.native import convert_keras_mode
from weightkit.compress.quantize.onnx_export import convert_onnx
from weightkit.compress.quantize.sensitivity_run import run_sensitivity

__all__ = ["convert_every_mode"]


def convert_every_mode(source, evaluation, reference, options, notes):
    """Convert ``source`` in every mode of ``options.modes``.

    Parameters
    ----------
    source : ModelSource
    evaluation : EvaluationSet
        Its ``calibration`` inputs make the representative dataset; its ``x`` measures sensitivity.
    reference : Reference
        The float model's outputs, which the sensitivity scores layers against.
    options : QuantizeOptions
    notes : list of str
        Appended to: what each converter did or could not do.

    Returns
    -------
    conversions : list of Conversion
        One per mode, in the order of ``options.modes``.
    runners : dict of str to object
        The runner of each Keras-native or ONNX mode that converted (a TFLite model gets its
        interpreter when it is evaluated).
    sensitivity : SensitivityReport or None
    """
    conversions = _convert_tflite(source, evaluation.calibration, options, notes)
    sensitivity = None
    if options.wants_sensitivity:
        options.tell(len(conversions), len(options.modes), "per-layer sensitivity")
        sensitivity, content = _run_sensitivity(source, conversions, evaluation, reference, options, notes)
        if content is not None:
            conversions.append(Conversion("mixed", content=content, converter="ai-edge-quantizer"))
            notes.append(_mixed_note(sensitivity.mixed["kept_float"], options))
    runners = {}
    for mode in (m for m in options.modes if MODES[m].backend not in ("tflite", "mixed")):
        options.tell(len(conversions), len(options.modes), f"converting {mode}")
        conversion, runners[mode], note = _convert_native(mode, source, options.verbose)
        conversions.append(conversion)
        if note:
            _add_note(notes, note)
    conversions.sort(key=lambda c: options.modes.index(c.mode))
    return conversions, runners, sensitivity


def _convert_tflite(source, calibration, options, notes):
    """The TFLite converter's modes, int16x8 rescued by ai-edge-quantizer where the converter failed it, then the
    modes ai-edge-quantizer makes from the float32 model (int4 weights)."""
    tflite = [m for m in options.modes if MODES[m].backend == "tflite" and not MODES[m].post_conversion]
    conversions = convert_modes(source, tflite, calibration=calibration,
                                calibration_samples=options.calibration_samples, seed=options.seed,
                                verbose=options.verbose, progress=options.progress, notes=notes)
    conversions = rescue_int16x8(conversions, source, calibration, calibration_samples=options.calibration_samples,
                                 seed=options.seed, verbose=options.verbose, notes=notes)
    conversions += convert_int4(options.modes, conversions, source, calibration,
                                calibration_samples=options.calibration_samples, seed=options.seed,
                                verbose=options.verbose, notes=notes)
    notes.extend(integer_input_notes(source))
    return conversions


def _run_sensitivity(source, conversions, evaluation, reference, options, notes):
    """``(SensitivityReport, mixed .tflite bytes or None)``: each layer quantized alone, and the mixed model."""
    return run_sensitivity(
        source, float32_for_quantizer(conversions, source, options.verbose, notes), evaluation.calibration,
        evaluation.x, reference.outputs, y=reference.labels, kind=reference.kind, threshold=reference.threshold,
        task=evaluation.task, mixed="mixed" in options.modes, max_drop=options.max_drop,
        calibration_samples=options.calibration_samples, seed=options.seed, mode=options.sensitivity_mode,
        progress=options.progress)


def _mixed_note(kept, options):
    how, max_drop = options.sensitivity_mode, options.max_drop
    if kept:
        return (f"mixed: {how} by ai-edge-quantizer, the {len(kept)} most sensitive layers kept float "
                f"({', '.join(kept)}): the fewest within --max-drop {max_drop:g}")
    return (f"mixed: every layer {how} by ai-edge-quantizer (within --max-drop {max_drop:g} with none "
            "kept float)")


def _convert_native(mode, source, verbose):
    """A keras-* or onnx mode: ``(Conversion, runner, note)``; these need the Keras model."""
    if source.keras_model is None:
        return Conversion(mode, error=f"needs the Keras model ({source.kind} given); quantize the .keras file"), \
            None, None
    if MODES[mode].backend == "keras":
        return convert_keras_mode(mode, source.keras_model, verbose=verbose)
    return convert_onnx(source.keras_model, input_dtypes=source.input_dtypes, verbose=verbose)


def _add_note(notes, note):
    """Append ``"mode: text"``, or add the mode to an earlier note with the same text."""
    mode, text = note.split(": ", 1)
    for index, earlier in enumerate(notes):
        if earlier.endswith(": " + text) and earlier.split(": ", 1)[1] == text:
            notes[index] = f"{earlier.split(': ', 1)[0]}, {mode}: {text}"
            return
    notes.append(note)
