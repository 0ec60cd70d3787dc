"""Convert a model in every mode, run each ``.tflite`` and measure it against the float model.

This is the glue, a short list of steps, each in a module of its own: :mod:`.options` checks the
settings once (:class:`~.options.QuantizeOptions`); :mod:`.evaluation_set` loads the model and picks
the inputs every mode is compared on; :mod:`.measure` runs the float model (the reference);
:mod:`.conversions` converts every mode (with :mod:`.convert`, :mod:`.native` and the sensitivity);
:mod:`.mode_runs` runs and measures each converted model; :func:`quantize_model` then scores the
drops and picks the export. It returns the flatbuffers and a :class:`.results.QuantizationReport`;
:mod:`.output` writes them.
"""

import os

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.errors import WeightkitError
from weightkit.compress.quantize.compare import choose_export, score_drop
from weightkit.compress.quantize.conversions import convert_every_mode
from weightkit.compress.quantize.evaluation_set import prepare_inputs
from weightkit.compress.quantize.measure import measure_reference
from weightkit.compress.quantize.mode_runs import run_every_mode
from weightkit.compress.quantize.modes import MODE_NAMES, MODES
from weightkit.compress.quantize.options import QuantizeOptions
from weightkit.compress.quantize.results import ExportChoice, QuantizationReport
from weightkit.compress.quantize.sampling import UNIFORM, random_inputs

__all__ = ["quantize_model", "run_quantization", "random_inputs", "RANDOM_INPUTS", "QuantizeOptions"]

RANDOM_INPUTS = UNIFORM


def quantize_model(model, modes=MODE_NAMES, data=None, *, calibration_samples=200, max_drop=1.0, export=None,
                   seed=0, random_samples=256, latency_repeats=50, throughput_repeats=10, batch_size=64,
                   output_dir=None, verbose=False, progress=None, unsafe=False, sensitivity=False, mixed=False,
                   int16x8_limit_s=60.0, sensitivity_mode="int8"):
    """Convert a model in each mode, evaluate every ``.tflite`` and choose the one to export.

    Parameters
    ----------
    model : keras.Model, ModelSource, str or os.PathLike
        A Keras model; a ``.keras`` / ``.h5`` path (loaded with :func:`weightkit.analysis.load_model`, safe
        mode unless ``unsafe``); a SavedModel folder; or a source from
        :func:`~weightkit.compress.quantize.source.keras_source` /
        :func:`~weightkit.compress.quantize.source.saved_model_source`.
    modes : sequence of str, default=all modes
    data : Dataset, ndarray, str or os.PathLike, default=None
        A dataset fitted to the model's input, or a data specification loaded for the model: its
        training inputs calibrate the integer modes and its test split measures accuracy (or
        MAE). An array of inputs calibrates and is compared on, without labels. Without data,
        agreement and output error are measured on random inputs and the integer modes cannot
        run.
    calibration_samples : int, default=200
        Size of the seeded random sample of training inputs used as representative dataset.
    max_drop : float, default=1.0
        Largest acceptable drop for the automatic export choice (see
        :data:`~weightkit.compress.quantize.compare.DROP_BASES` for the unit).
    export : str, default=None
        Export this mode instead of choosing.
    seed : int, default=0
    random_samples : int, default=256
        Random inputs drawn when there is no dataset.
    latency_repeats, throughput_repeats : int, default=50, 10
        Timed runs whose median is reported.
    batch_size : int, default=64
        Batch of the throughput measurement.
    output_dir : str, default=None
        Folder the files will be written to; used to fill in the report's paths.
    verbose : bool, default=False
        Let the converter print its logs.
    progress : callable, default=None
        Called as ``progress(done, total, what)``.
    unsafe : bool, default=False
        Load a model path with its embedded code; run a SavedModel whose graph holds ops that are
        not pure math.
    sensitivity : bool, default=False
        Also measure each layer quantized alone (``sensitivity_mode``, the rest float):
        ``report.sensitivity``; over every output of a model with several.
    mixed : bool, default=False
        Also build the ``mixed`` model: the k most sensitive layers float, the rest quantized
        (``sensitivity_mode``), the smallest k within ``max_drop`` (as ``"mixed"`` in ``modes``).
    sensitivity_mode : {"int8", "int4", "int16x8"}, default="int8"
        The per-layer recipe: int8 weights and activations, int4 weights (int8 activations), or
        int8 weights with int16 activations.
    int16x8_limit_s : float or None, default=60.0
        int16x8 runs on TFLite's reference kernels: it is first timed on a few samples and
        skipped (with its projected time) when the whole evaluation would take longer. None
        measures it whatever it costs (the command does so when ``--modes`` names it).

    Returns
    -------
    contents : dict of str to bytes
        The file of every converted mode (what :func:`write_outputs` writes): a ``.tflite``
        flatbuffer, or the ``.keras`` / ``.onnx`` bytes of the keras-* and onnx modes.
    report : QuantizationReport
    """
    options = QuantizeOptions.checked(
        modes, data, mixed=mixed, calibration_samples=calibration_samples, max_drop=max_drop, export=export,
        seed=seed, random_samples=random_samples, latency_repeats=latency_repeats,
        throughput_repeats=throughput_repeats, batch_size=batch_size, output_dir=output_dir, verbose=verbose,
        progress=progress, unsafe=unsafe, sensitivity=sensitivity, sensitivity_mode=sensitivity_mode,
        int16x8_limit_s=int16x8_limit_s)
    return run_quantization(model, data, options)


def run_quantization(model, data, options):
    """:func:`quantize_model` with its settings already gathered and checked.

    Parameters
    ----------
    model : keras.Model, ModelSource, str or os.PathLike
    data : Dataset, ndarray, str, os.PathLike or None
    options : QuantizeOptions

    Returns
    -------
    contents : dict of str to bytes
    report : QuantizationReport
    """
    source, evaluation, notes = prepare_inputs(model, data, options)
    reference = measure_reference(source, evaluation, options)
    conversions, runners, sensitivity = convert_every_mode(source, evaluation, reference, options, notes)
    rows, contents = run_every_mode(conversions, runners, source, evaluation, reference, options)
    _score_drops(rows, contents, reference)
    if "int16x8" in contents:
        notes.append("int16x8 runs on TFLite's reference kernels: slow on CPU, so its latency is not comparable")
    report = QuantizationReport(model=source.name, data=None if evaluation.dataset is None else
                                evaluation.dataset.source, evaluation=evaluation.description,
                                n_samples=n_samples(evaluation.x), output_kind=reference.kind,
                                drop_basis=reference.measure.basis, max_drop=options.max_drop, reference=reference.row,
                                modes=rows, notes=notes, sensitivity=sensitivity)
    report.exported = _export_choice(source, rows, reference.measure.basis, options)
    return contents, report


def _score_drops(rows, contents, reference):
    """Each measured row's size against float32's and its drop from the reference, in the report's basis."""
    basis, float_bytes = reference.measure.basis, contents.get("float32")
    for row in rows:
        if row.ok:
            row.size_ratio = row.bytes / len(float_bytes) if float_bytes else None
            row.drop = score_drop(basis, reference.score,
                                  {"accuracy": row.accuracy, "mae": row.mae, "agreement": row.agreement}[basis])


def _export_choice(source, rows, basis, options):
    """The mode to export as ``model.<extension>``: ``options.export``, or the smallest TFLite model within the drop."""
    # The automatic choice is among the TFLite models (the deployable file); --export may name any mode.
    candidates = [{"mode": r.mode, "bytes": r.bytes, "drop": r.drop} for r in rows
                  if r.ok and (MODES[r.mode].backend == "tflite" or r.mode == options.export)]
    if not candidates:
        reasons = "; ".join(f"{r.mode}: {r.error}" for r in rows if not r.ok) or "no TFLite mode among --modes"
        raise WeightkitError(f"{source.name}: no mode could be converted ({reasons}).")
    mode, reason = choose_export(candidates, max_drop=options.max_drop, export=options.export, basis=basis,
                                 order=list(options.modes))
    name = "model" + MODES[mode].extension
    path = os.path.join(options.output_dir, name) if options.output_dir is not None else name
    return ExportChoice(mode=mode, path=path, reason=reason)
