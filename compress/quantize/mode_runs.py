"""The third step of a quantization run: every converted model run on the evaluation set and measured.

:func:`run_every_mode` gives one :class:`~.results.ModeResult` per conversion (failed, skipped or
measured against the :class:`~.measure.Reference`) and the file of each mode that ran.
"""

import os

import numpy as np

from weightkit.analysis.data.batches import n_samples, take
from weightkit.compress.quantize.evaluate import TFLiteModel, time_calls
from weightkit.compress.quantize.measure import per_output
from weightkit.compress.quantize.modes import MODES, mode_file
from weightkit.compress.quantize.results import ModeResult
from weightkit.compress.quantize.signature import SignatureModel

__all__ = ["run_every_mode"]


def run_every_mode(conversions, runners, source, evaluation, reference, options):
    """Run and measure each conversion.

    Parameters
    ----------
    conversions : list of Conversion
    runners : dict of str to object
        Runners already made (Keras-native, ONNX); a TFLite model gets an interpreter here.
    source : ModelSource
    evaluation : EvaluationSet
    reference : Reference
    options : QuantizeOptions

    Returns
    -------
    rows : list of ModeResult
        In the order of ``conversions``.
    contents : dict of str to bytes
        The file of every mode that converted and ran.
    """
    rows, contents = [], {}
    for done, conversion in enumerate(conversions):
        options.tell(done, len(conversions), f"evaluating {conversion.mode}")
        row = ModeResult(conversion.mode, "failed", error=conversion.error, converter=conversion.converter)
        if conversion.ok and _run_one(row, conversion, runners.get(conversion.mode), source, evaluation, reference,
                                      options):
            contents[conversion.mode] = conversion.content
        rows.append(row)
    return rows, contents


def _run_one(row, conversion, runner, source, evaluation, reference, options):
    """Fill ``row`` from one converted model; True when it ran and was measured."""
    x = evaluation.x
    try:
        model = runner or _tflite_runner(conversion, source, options.verbose)
        if conversion.mode == "int16x8" and options.int16x8_limit_s is not None:
            row.error = _too_slow(model, x, options.int16x8_limit_s, options.evaluation_extra_samples)
            if row.error:
                return False
        every = model.predict(x, batch_size=256)
        every = every if isinstance(every, list) else [every]
        outputs = np.asarray(every[0]).reshape(reference.first.shape)
        every[0] = outputs
        row.latency_ms = model.latency_ms(x, repeats=options.latency_repeats)
        row.throughput = model.throughput(x, batch_size=options.batch_size, repeats=options.throughput_repeats)
    except (RuntimeError, ValueError) as error:
        row.error = f"converted, but {_runner_name(conversion.mode)} could not run it: " \
                    f"{' '.join(str(error).split())[:200]}"
        return False
    row.status, row.bytes = "ok", len(conversion.content)
    reference.measure.fill(row, outputs)
    if len(reference.outputs) > 1:
        row.outputs = per_output(source, reference.outputs, every, reference.labels, evaluation.task)
    if options.output_dir is not None:
        row.path = os.path.join(options.output_dir, mode_file(conversion.mode))
    return True


def _too_slow(model, x, limit_s, extra_samples, probe=16):
    """A reason to skip a model whose evaluation is projected over ``limit_s`` seconds, or None."""
    n = n_samples(x)
    sample = take(x, np.arange(min(probe, n)))
    seconds = time_calls(lambda: model.predict(sample, batch_size=len(sample)), 1, warmup=0) / max(1, min(probe, n))
    projected = seconds * (n + extra_samples)
    if projected <= limit_s:
        return None
    return (f"skipped: {1000 * seconds:.1f} ms per sample on TFLite's reference kernels (timed on {min(probe, n)}), "
            f"about {projected:.0f} s for the {n} samples and the timings, over {limit_s:.0f} s; name int16x8 in "
            "--modes to measure it anyway")


def _tflite_runner(conversion, source, verbose):
    if source.several:
        return SignatureModel(conversion.content, source.input_names, quiet=not verbose)
    return TFLiteModel(conversion.content, quiet=not verbose)


def _runner_name(mode):
    return {"tflite": "the LiteRT interpreter", "keras": "Keras", "onnx": "onnxruntime"}[MODES[mode].backend]
