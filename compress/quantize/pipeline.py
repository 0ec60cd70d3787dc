"""Convert a model in every mode, run each ``.tflite`` and measure it against the float model.

This is the glue: :mod:`.convert` makes the flatbuffers, :class:`.evaluate.TFLiteModel` runs them,
:mod:`.compare` turns outputs into numbers and picks the export. :func:`quantize_model` returns the
flatbuffers and a :class:`.results.QuantizationReport`; :mod:`.output` writes them.
"""

import os

import numpy as np

from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.data.inputs import as_dataset, as_inputs, as_model, is_path
from weightkit.analysis.files.loading import is_saved_model_dir
from weightkit.compress.quantize.compare import (
    accuracy,
    agreement,
    choose_export,
    class_threshold,
    compare_outputs,
    mean_absolute_error,
    output_differences,
    output_kind,
    per_class_accuracy,
    per_element,
    score_drop,
)
from weightkit.compress.quantize.convert import Conversion, convert_modes
from weightkit.compress.quantize.evaluate import TFLiteModel, time_calls
from weightkit.compress.quantize.inputs import integer_input_notes
from weightkit.compress.quantize.int16x8 import float32_for_quantizer, rescue_int16x8
from weightkit.compress.quantize.modes import MODE_NAMES, MODES, mode_file
from weightkit.compress.quantize.native import convert_keras_mode, convert_onnx
from weightkit.compress.quantize.results import ExportChoice, ModeResult, QuantizationReport, ReferenceResult
from weightkit.compress.quantize.sampling import UNIFORM, input_sampler, random_inputs
from weightkit.compress.quantize.sensitivity_run import run_sensitivity
from weightkit.compress.quantize.shapes import fix_to_data
from weightkit.compress.quantize.signature import SignatureModel
from weightkit.compress.quantize.source import ModelSource, keras_source, output_names, saved_model_source

__all__ = ["quantize_model", "random_inputs", "RANDOM_INPUTS"]

RANDOM_INPUTS = UNIFORM
SANITY = "agreement on random inputs is only a sanity check: pass --data for accuracy on real inputs"


def _output_width(shape):
    return int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1


def _check_modes(modes, data, export):
    for mode in modes:
        if mode not in MODES:
            raise WeightkitError(f"--modes: unknown mode {mode!r}; expected some of {', '.join(MODE_NAMES)}.")
    needing = [m for m in modes if MODES[m].needs_data]
    if needing and data is None:
        raise WeightkitError(
            f"--modes {','.join(needing)}: {'needs' if len(needing) == 1 else 'need'} calibration data for the "
            "representative dataset; pass --data DATA (training inputs) or leave "
            f"{'it' if len(needing) == 1 else 'them'} out of --modes."
        )
    if export is not None and export not in modes:
        raise WeightkitError(f"--export {export}: not among --modes {','.join(modes)}; add it to --modes.")


class _Measure:
    """Per-mode metrics against the reference outputs (and labels, when there is data)."""

    def __init__(self, reference, dataset, kind, threshold, y=None):
        # Outputs with positions (a mask, a sequence) are measured per element: one row per pixel or step.
        self.reference, _, self.y = per_element(reference, reference, y)
        reference = self.reference
        self.dataset = dataset if y is not None else None
        self.kind = kind
        self.threshold = threshold
        self.classes = kind != "regression" and self.dataset is not None
        self.n_classes = None
        if self.classes:
            self.n_classes = max(dataset.n_classes or 0, 2 if kind == "binary" else reference.shape[-1])
        self.per_class_reference = self._per_class(reference)

    def _per_class(self, outputs):
        if not self.classes:
            return None
        return per_class_accuracy(self._rows(outputs), self.y, self.kind, self.n_classes, self.threshold)

    def _rows(self, outputs):
        return per_element(outputs, outputs)[0]

    def task_scores(self, outputs):
        """(accuracy, mae) on the test split; Nones without data."""
        if self.dataset is None:
            return None, None
        outputs = self._rows(outputs)
        if self.kind == "regression":
            return None, mean_absolute_error(outputs, self.y)
        return accuracy(outputs, self.y, self.kind, self.threshold), None

    def fill(self, row, outputs):
        row.accuracy, row.mae = self.task_scores(outputs)
        outputs = self._rows(outputs)
        row.max_abs_diff, row.mean_abs_diff = output_differences(self.reference, outputs)
        row.agreement = agreement(self.reference, outputs, self.kind, threshold=self.threshold)
        if self.classes:
            change = self._per_class(outputs) - self.per_class_reference
            row.per_class_accuracy_change = [None if np.isnan(v) else float(v) for v in change]


def _check_labels(y, dataset, reference, kind):
    if dataset is None or y is None or kind != "regression":
        return
    if np.asarray(y).size != reference.size:
        raise WeightkitError(
            f"--data {dataset.source}: {np.asarray(y).size // max(1, len(reference))} target values "
            f"per sample but the model outputs {reference.size // max(1, len(reference))}; give one target per output."
        )


def _as_source(model, unsafe):
    """A :class:`ModelSource` from a source, a Keras model, a model file or a SavedModel folder."""
    if isinstance(model, ModelSource):
        return model
    if is_path(model) and is_saved_model_dir(os.fspath(model)):
        return saved_model_source(os.fspath(model), unsafe=unsafe)
    loaded = as_model(model, unsafe=unsafe)
    return keras_source(loaded.model, path=loaded.path)


def _as_data(data, source, seed):
    """``(dataset, inputs)``: a Dataset (labels, splits) or an array of unlabelled inputs, or neither."""
    if data is None:
        return None, None
    if isinstance(data, Dataset) or is_path(data):
        view = source.keras_model if source.keras_model is not None else source.shape_view()
        return as_dataset(data, view, seed=seed), None
    inputs, _ = as_inputs(data, source.keras_model)  # arrays: no model needed
    return None, _inputs_of(list(inputs) if isinstance(inputs, (list, tuple)) else inputs, source)


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
    modes = list(modes)
    if mixed and "mixed" not in modes:
        modes.append("mixed")
    _check_modes(modes, data, export)
    source = _as_source(model, unsafe)
    dataset, inputs = _as_data(data, source, seed)
    source, notes = fix_to_data(source, inputs if dataset is None else dataset.x_train)  # (None, None, 3) inputs
    if dataset is not None:
        x = _inputs_of(dataset.x_test, source)
        evaluation = f"test split of {dataset.source} ({n_samples(x)} samples)"
        task = dataset.task
    elif inputs is not None:
        x = inputs
        evaluation = f"{n_samples(x)} given inputs; no labels"
        task = None
        notes.append(f"data without labels: outputs compared on the {n_samples(x)} given inputs, which also calibrate "
                     "the integer modes; only agreement and output error are measured, not accuracy")
    else:
        count = len(source.keras_model.inputs) if source.several else 1
        x = [random_inputs(source.keras_model.inputs[i].shape if source.several else source.input_shape,
                           random_samples, seed, model=source.keras_model, index=i) for i in range(count)]
        x = x if len(x) > 1 else x[0]
        ranges = sorted({input_sampler(source.keras_model, i)[0] for i in range(count)})
        evaluation = f"{random_samples} random inputs ({'; '.join(ranges)}); no labels"
        task = None
        notes.append(f"no --data: outputs compared on {random_samples} random inputs ({'; '.join(ranges)}) of the "
                     f"model's input {'shapes' if count > 1 else 'shape'}; only agreement and output error are "
                     f"measured, not accuracy; {SANITY}")
    references = source.predict(x)
    references = references if isinstance(references, list) else [references]
    reference = references[0]
    labels = _labels_per_output(dataset, len(references))
    kind = output_kind(_output_width(source.output_shape), task)
    _check_labels(labels[0], dataset, reference, kind)
    threshold = class_threshold(reference, kind)
    measure = _Measure(reference, dataset, kind, threshold, labels[0])
    ref_accuracy, ref_mae = measure.task_scores(reference)
    timing_batch = _batch_of(x, batch_size)
    ref_row = ReferenceResult(
        name=source.name, kind=source.kind, bytes=source.bytes, accuracy=ref_accuracy, mae=ref_mae,
        latency_ms=1000.0 * time_calls(lambda: source.call(take(x, np.arange(1))), latency_repeats, warmup=2),
        throughput=batch_size / time_calls(lambda: source.call(timing_batch), throughput_repeats, warmup=1))

    calibration = inputs if dataset is None else dataset.x_train
    tflite = [m for m in modes if MODES[m].backend == "tflite"]
    conversions = convert_modes(source, tflite, calibration=calibration,
                                calibration_samples=calibration_samples, seed=seed, verbose=verbose,
                                progress=progress, notes=notes)
    conversions = rescue_int16x8(conversions, source, calibration, calibration_samples=calibration_samples,
                                 seed=seed, verbose=verbose, notes=notes)
    notes.extend(integer_input_notes(source))
    runners = {}
    sensitivity_report = None
    if sensitivity or "mixed" in modes:
        if progress:
            progress(len(conversions), len(modes), "per-layer sensitivity")
        sensitivity_report, content = run_sensitivity(
            source, float32_for_quantizer(conversions, source, verbose, notes), calibration, x, references, y=labels,
            kind=kind, threshold=threshold, task=task, mixed="mixed" in modes, max_drop=max_drop,
            calibration_samples=calibration_samples, seed=seed, mode=sensitivity_mode, progress=progress)
        if content is not None:
            conversions.append(Conversion("mixed", content=content, converter="ai-edge-quantizer"))
            kept, how = sensitivity_report.mixed["kept_float"], sensitivity_mode
            notes.append(f"mixed: {how} by ai-edge-quantizer, the {len(kept)} most sensitive layers kept float "
                         f"({', '.join(kept)}): the fewest within --max-drop {max_drop:g}" if kept else
                         f"mixed: every layer {how} by ai-edge-quantizer (within --max-drop {max_drop:g} with none "
                         "kept float)")
    for mode in (m for m in modes if MODES[m].backend not in ("tflite", "mixed")):
        if progress:
            progress(len(conversions), len(modes), f"converting {mode}")
        conversion, runners[mode], note = _convert_native(mode, source, verbose)
        conversions.append(conversion)
        if note:
            _add_note(notes, note)
    conversions.sort(key=lambda c: modes.index(c.mode))
    rows, contents = [], {}
    for done, conversion in enumerate(conversions):
        if progress:
            progress(done, len(conversions), f"evaluating {conversion.mode}")
        row = ModeResult(conversion.mode, "failed", error=conversion.error, converter=conversion.converter)
        if conversion.ok:
            try:
                model = runners.get(conversion.mode) or _tflite_runner(conversion, source, verbose)
                if conversion.mode == "int16x8" and int16x8_limit_s is not None:
                    row.error = _too_slow(model, x, int16x8_limit_s, latency_repeats + throughput_repeats * batch_size)
                    if row.error:
                        rows.append(row)
                        continue
                every = model.predict(x, batch_size=256)
                every = every if isinstance(every, list) else [every]
                outputs = np.asarray(every[0]).reshape(reference.shape)
                every[0] = outputs
                row.latency_ms = model.latency_ms(x, repeats=latency_repeats)
                row.throughput = model.throughput(x, batch_size=batch_size, repeats=throughput_repeats)
            except (RuntimeError, ValueError) as error:
                row.error = f"converted, but {_runner_name(conversion.mode)} could not run it: " \
                            f"{' '.join(str(error).split())[:200]}"
            else:
                row.status, row.bytes = "ok", len(conversion.content)
                measure.fill(row, outputs)
                if len(references) > 1:
                    row.outputs = _per_output(source, references, every, labels, task)
                contents[conversion.mode] = conversion.content
                if output_dir is not None:
                    row.path = os.path.join(output_dir, mode_file(conversion.mode))
        rows.append(row)

    basis = "agreement" if measure.dataset is None else ("mae" if kind == "regression" else "accuracy")
    float_bytes = contents.get("float32")
    for row in rows:
        if row.ok:
            row.size_ratio = row.bytes / len(float_bytes) if float_bytes else None
            row.drop = score_drop(basis, ref_mae if basis == "mae" else ref_accuracy,
                                  {"accuracy": row.accuracy, "mae": row.mae, "agreement": row.agreement}[basis])
    if "int16x8" in contents:
        notes.append("int16x8 runs on TFLite's reference kernels: slow on CPU, so its latency is not comparable")
    report = QuantizationReport(model=source.name, data=None if dataset is None else dataset.source,
                                evaluation=evaluation, n_samples=n_samples(x), output_kind=kind, drop_basis=basis,
                                max_drop=max_drop, reference=ref_row, modes=rows, notes=notes,
                                sensitivity=sensitivity_report)
    # The automatic choice is among the TFLite models (the deployable file); --export may name any mode.
    candidates = [{"mode": r.mode, "bytes": r.bytes, "drop": r.drop} for r in rows
                  if r.ok and (MODES[r.mode].backend == "tflite" or r.mode == export)]
    if not candidates:
        reasons = "; ".join(f"{r.mode}: {r.error}" for r in rows if not r.ok) or "no TFLite mode among --modes"
        raise WeightkitError(f"{source.name}: no mode could be converted ({reasons}).")
    mode, reason = choose_export(candidates, max_drop=max_drop, export=export, basis=basis, order=modes)
    name = "model" + MODES[mode].extension
    path = os.path.join(output_dir, name) if output_dir is not None else name
    report.exported = ExportChoice(mode=mode, path=path, reason=reason)
    return contents, report


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


def _add_note(notes, note):
    """Append ``"mode: text"``, or add the mode to an earlier note with the same text."""
    mode, text = note.split(": ", 1)
    for index, earlier in enumerate(notes):
        if earlier.endswith(": " + text) and earlier.split(": ", 1)[1] == text:
            notes[index] = f"{earlier.split(': ', 1)[0]}, {mode}: {text}"
            return
    notes.append(note)


def _tflite_runner(conversion, source, verbose):
    if source.several:
        return SignatureModel(conversion.content, source.input_names, quiet=not verbose)
    return TFLiteModel(conversion.content, quiet=not verbose)


def _runner_name(mode):
    return {"tflite": "the LiteRT interpreter", "keras": "Keras", "onnx": "onnxruntime"}[MODES[mode].backend]


def _convert_native(mode, source, verbose):
    """A keras-* or onnx mode: ``(Conversion, runner, note)``; these need the Keras model."""
    if source.keras_model is None:
        return Conversion(mode, error=f"needs the Keras model ({source.kind} given); quantize the .keras file"), \
            None, None
    if MODES[mode].backend == "keras":
        return convert_keras_mode(mode, source.keras_model, verbose=verbose)
    return convert_onnx(source.keras_model, input_dtypes=source.input_dtypes, verbose=verbose)


def _batch_of(x, batch_size):
    if isinstance(x, list):
        return take(x, np.arange(batch_size) % n_samples(x))
    reps = -(-batch_size // len(x))
    return np.concatenate([x] * reps)[:batch_size] if reps > 1 else x[:batch_size]


def _inputs_of(x, source):
    """Test inputs as the model takes them: float32 for one input; for several, each array in its own type."""
    if isinstance(x, (list, tuple)):
        dtypes = source.input_dtypes or ["float32"] * len(x)
        arrays = [np.asarray(a, dtype=np.dtype(t) if np.dtype(t).kind in "iub" else np.float32)
                  for a, t in zip(x, dtypes)]
        return arrays if len(arrays) > 1 else arrays[0]
    return np.asarray(x, dtype=np.float32)


def _labels_per_output(dataset, count):
    if dataset is None:
        return [None] * count
    y = dataset.y_test
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    return ys + [None] * (count - len(ys))


def _per_output(source, references, outputs, labels, first_task):
    """Each output's comparison (agreement, output error, accuracy or MAE where labelled), by output name."""
    names = output_names(source, len(references))
    activations = output_activations(source.keras_model) if source.keras_model is not None else []
    result = {}
    for k, (reference, candidate, y) in enumerate(zip(references, outputs, labels)):
        activation = activations[k] if k < len(activations) else None
        if k == 0:
            task = first_task
        elif y is not None:
            task = "classification" if np.issubdtype(np.asarray(y).dtype, np.integer) else "regression"
        else:
            task = "classification" if activation in ("softmax", "sigmoid") else None
        compared = compare_outputs(reference, np.asarray(candidate).reshape(reference.shape), y, task=task)
        compared.pop("samples", None)
        result[names[k]] = compared
    return result
