"""The whole journey on one trained model: analyze, retrain, merge, quantize, and measure every stage.

:func:`run_journey` calls the same library functions the commands do
(:func:`weightkit.analysis.analyze` or a caller's analyzer, :func:`weightkit.compress.retrain`,
:func:`weightkit.compress.merge_neurons`, :func:`weightkit.compress.quantize_model`), writes each
stage's files into a folder, and returns a :class:`Journey`: one :class:`Stage` per model it made,
each measured the same way (parameters, file size, held-out accuracy, agreement with the original,
mean |r|, redundant groups). ``weightkit.reports.journey_page`` renders it; nothing here draws a page.

The stages, in order:

``original``
    The trained model as given.
``merged``
    The original with every redundant group merged (``threshold``, default r ≥ 0.9): the groups
    ``weightkit analyze`` finds, folded into their twins.
``merged-ratio``
    The original with ``ratio`` of each layer's neurons merged away, most similar pairs first.
``retrained``
    The original fine-tuned with the decorrelation regularizer.
``retrained-merged-ratio``
    The retrained model merged at the same ratio: does decorrelating first help or hurt a hard cut?
``shrunk``
    The headline: :func:`weightkit.compress.shrink.shrink_model` on the original (per-layer merge
    sensitivity, an allocation within ``max_drop`` points, a distillation fine-tune), with its
    ``model.tflite``, ``shrink.json`` and a ``frontier.png`` on which the stages above are
    labelled points (:mod:`weightkit.demo.headline`).
``<mode>``
    The ``shrunk`` model in each quantization mode, as shrink's quantize stage converted it (the
    held-out accuracy here; shrink chose on its validation split). :func:`choose_quantize_source`
    is the rule earlier demos used to pick the quantized stage.
"""

import os
import time

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.demo.stages import Journey, Stage

__all__ = [
    "DEMO_MODES",
    "KERAS_STAGES",
    "Journey",
    "Stage",
    "choose_quantize_source",
    "pooled_mean_abs_r",
    "run_journey",
    "save_plain",
]

#: Quantization modes of a journey unless told otherwise.
DEMO_MODES = ("float32", "dynamic", "float16", "int8")

#: The Keras stages in the order they are made, with their titles.
KERAS_STAGES = {
    "original": "original",
    "merged": "merged: redundant groups",
    "merged-ratio": "merged: ratio",
    "retrained": "retrained (decorrelation)",
    "retrained-merged-ratio": "retrained, then merged: ratio",
    "shrunk": "shrink: merged by layer sensitivity, distilled",
}


def pooled_mean_abs_r(result):
    """Mean |Pearson r| over every within-layer pair of neurons, all analyzed entries pooled.

    Each entry's mean |r| is weighted by its number of pairs ``n (n - 1) / 2``, so the result is
    the plain mean over all pairs.

    Parameters
    ----------
    result : analysis.ModelAnalysis

    Returns
    -------
    float or None
        None when no entry has two neurons.
    """
    pairs = np.array([layer.neurons * (layer.neurons - 1) / 2 for layer in result.layers], dtype=np.float64)
    values = np.array([layer.pearson_mean_abs_offdiag for layer in result.layers], dtype=np.float64)
    if not pairs.sum():
        return None
    return float(np.sum(pairs * values) / pairs.sum())


def save_plain(model, path):
    """Save ``model`` as ``.keras`` without optimizer state, so file sizes compare weights alone.

    A compiled, trained model's archive also holds the optimizer's slots (two more copies of the
    weights for Adam); an uncompiled copy with the same weights leaves them out.
    """
    if getattr(model, "optimizer", None) is not None:
        # Not keras.models.clone_model: Keras 3 clones the compile state, optimizer included.
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
        model = copy
    model.save(path)
    return os.path.getsize(path)


def choose_quantize_source(stages, max_drop):
    """The smallest Keras stage within ``max_drop`` accuracy points of the original.

    Parameters
    ----------
    stages : list of Stage
        The first is the original.
    max_drop : float
        In accuracy points (1.0 = one percentage point).

    Returns
    -------
    Stage
        Fewest parameters among those that qualify; the earliest on ties (the original always
        qualifies).
    """
    keras_stages = [s for s in stages if s.kind == "keras"]
    floor = keras_stages[0].accuracy - max_drop / 100.0 - 1e-12
    fits = [s for s in keras_stages if s.accuracy >= floor]
    return min(fits, key=lambda s: (s.params, keras_stages.index(s)))


def _default_analyzer(model, stage, directory):
    from weightkit.analysis import analyze

    return analyze(model, path=stage.path, include_bias=True)  # rows as merge compares them (its default)


class _Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, stage):
        stage.seconds = time.perf_counter() - self.wall
        stage.cpu_seconds = time.process_time() - self.cpu


def _join(*parts):
    return "/".join(part.strip("/") for part in parts if part)


def run_journey(model, dataset, directory, *, prefix="", name=None, retrain_epochs=10, strength=None, ratio=0.5,
                threshold=None, modes=DEMO_MODES, max_drop=1.0, calibration_samples=200, seed=0, analyzer=None,
                progress=None, on_stage=None, fast_shrink=False):
    """Analyze, retrain, merge and quantize a trained classifier; measure and save every stage.

    Parameters
    ----------
    model : keras.Model
        Trained; not modified.
    dataset : weightkit.analysis.data.datasets.Dataset
        Fitted to the model (:func:`weightkit.analysis.data.datasets.fit_to_model`), classification. Its training
        split retrains and calibrates, its held-out split measures every stage.
    directory : str
        An existing folder the stages are written into (``original`` at its top, the others in
        subfolders named by their key, quantized models in ``quantized/``).
    prefix : str, default=""
        The folder's path relative to the page that will link the files (``digits_mlp``).
    name : str, default=None
        File name stem of the original (``model.name`` when None).
    retrain_epochs : int, default=10
    strength : float, default=None
        Decorrelation strength (:data:`weightkit.compress.decorrelate.training.DEFAULT_STRENGTH` when None).
    ratio : float, default=0.5
        Share of each layer's neurons the ratio merges remove.
    threshold : float, default=None
        Pearson r of the groups merged in ``merged`` (0.9 when None).
    modes : sequence of str, default=DEMO_MODES
        Quantization modes.
    max_drop : float, default=1.0
        The shrink budget: accuracy points the headline model may lose.
    calibration_samples : int, default=200
        Kept for the settings record; shrink calibrates on its own calibration split.
    seed : int, default=0
    analyzer : callable, default=None
        ``analyzer(model, stage, folder) -> analysis.ModelAnalysis`` for each Keras stage, with
        ``folder`` the stage's absolute folder; it may add files to ``stage.files``. Default:
        :func:`weightkit.analysis.analyze` (no files). ``weightkit demo`` writes a report here.
    progress : callable, default=None
        ``progress(done, total, what)`` before each stage.
    on_stage : callable, default=None
        ``on_stage(stage)`` after each stage is measured.
    fast_shrink : bool, default=False
        Shrink with :data:`weightkit.demo.headline.FAST_SHRINK` instead of ``DEMO_SHRINK``.

    Returns
    -------
    Journey
    """
    from weightkit.compress.decorrelate.training import DEFAULT_STRENGTH, retrain
    from weightkit.compress.merge import merge_neurons
    from weightkit.compress.merge.reporting.report import compare_models
    from weightkit.compress.quantize import TFLiteModel, write_outputs
    from weightkit.compress.quantize.compare import compare_outputs
    from weightkit.reports.quantize_plot import plot_comparison
    from weightkit.demo.headline import shrink_for_journey, write_frontier

    if dataset.task != "classification":
        raise WeightkitError(f"{dataset.source}: the journey measures accuracy; give a classification dataset.")
    strength = DEFAULT_STRENGTH if strength is None else float(strength)
    threshold = 0.9 if threshold is None else float(threshold)
    modes = list(modes)
    analyzer = analyzer or _default_analyzer
    name = name or model.name
    settings = {"retrain_epochs": int(retrain_epochs), "strength": strength, "ratio": float(ratio),
                "threshold": threshold, "modes": modes, "max_drop": float(max_drop),
                "calibration_samples": int(calibration_samples), "seed": int(seed),
                "fast_shrink": bool(fast_shrink)}
    journey = Journey(model=name, data=dataset.source, test_samples=len(dataset.x_test), settings=settings)
    journey.notes.append("Keras stages are saved without optimizer state, so their file sizes compare weights "
                         "and architecture alone")
    total = len(KERAS_STAGES) + 1
    written = {}  # stage key -> (absolute path of its model file, the model)
    done = [0]

    def step(what):
        if progress is not None:
            progress(done[0], total, f"{name}: {what}")
        done[0] += 1

    def keras_stage(key, keras_model, source, details, clock, title=None, extra_files=None):
        folder = prefix if key == "original" else _join(prefix, key)
        absolute = directory if key == "original" else os.path.join(directory, key)
        os.makedirs(absolute, exist_ok=True)
        file_name = f"{name}.keras" if key == "original" else "model.keras"
        stage = Stage(key=key, title=title or KERAS_STAGES[key], kind="keras", source=source, folder=folder,
                      path=_join(folder, file_name), details=details)
        written[key] = (os.path.join(absolute, file_name), keras_model)
        stage.bytes = save_plain(keras_model, written[key][0])
        stage.params = int(keras_model.count_params())
        evaluation = compare_models(model, keras_model, dataset.x_test, dataset.y_test, task=dataset.task)
        stage.accuracy, stage.agreement = evaluation["accuracy_after"], evaluation["agreement"]
        stage.details.setdefault("max_abs_output_difference", evaluation["max_abs_output_difference"])
        for label, (relative, write) in (extra_files or {}).items():
            write(os.path.join(absolute, relative))
            stage.files[label] = _join(folder, relative)
        result = analyzer(keras_model, stage, absolute)
        stage.analysis = result
        stage.mean_abs_r = pooled_mean_abs_r(result)
        stage.groups = int(sum(len(layer.groups) for layer in result.layers))
        stage.removable = int(result.removable)
        clock.stop(stage)
        journey.stages.append(stage)
        if on_stage is not None:
            on_stage(stage)
        return stage

    def merge_stage(key, source_model, source_key, clock, **options):
        # As `weightkit merge --data` does: measured against the model it was merged from.
        merged, report = merge_neurons(source_model, "weights", evaluate_on=dataset, **options)
        document = report.to_dict()
        rule = f"ratio {ratio:g}" if "ratio" in options else f"every group with r ≥ {threshold:g}"
        details = {"rule": rule, "neurons_removed": report.removed, "params_before": report.params_before,
                   "params_after": report.params_after,
                   "exact_merges": int(sum(layer.to_dict()["exact_merges"] for layer in report.layers))}
        title = KERAS_STAGES[key] + (f" {ratio:g}" if "ratio" in options else f" (r ≥ {threshold:g})")

        def write_json(path):
            from weightkit.analysis.files.io import atomic_write_json

            atomic_write_json(path, {**document, "input": source_key})

        return keras_stage(key, merged, source_key, details, clock, title=title,
                           extra_files={"json": ("merge.json", write_json)})

    step("original (analyze, report)")
    keras_stage("original", model, None, {}, _Clock())

    step(f"merge redundant groups (r ≥ {threshold:g})")
    merge_stage("merged", model, "original", _Clock(), metric="pearson", threshold=threshold)

    step(f"merge ratio {ratio:g}")
    merge_stage("merged-ratio", model, "original", _Clock(), metric="pearson", ratio=ratio)

    step(f"retrain {retrain_epochs} epochs with the decorrelation regularizer")
    clock = _Clock()
    retrained, retrain_result = retrain(model, dataset, strength=strength, epochs=retrain_epochs, seed=seed)
    details = {"epochs": int(retrain_epochs), "strength": strength, "loss": retrain_result.loss,
               "accuracy_before": retrain_result.before["accuracy"],
               "accuracy_after": retrain_result.after["accuracy"],
               "mean_abs_r": {entry: {"before": retrain_result.before["layers"][entry]["mean_abs_r"],
                                      "after": retrain_result.after["layers"][entry]["mean_abs_r"]}
                              for entry in retrain_result.before["layers"]}}

    def write_retrain_json(path):
        from weightkit.analysis.files.io import atomic_write_json

        atomic_write_json(path, {"model": "original", "data": dataset.source, **retrain_result.to_dict()})

    def write_retrain_plot(path):
        from weightkit.reports.retrain_plot import plot_retrain

        plot_retrain(retrain_result, path)

    keras_stage("retrained", retrained, "original", details, clock,
                extra_files={"json": ("retrain.json", write_retrain_json),
                             "plot": ("retrain.png", write_retrain_plot)})

    step(f"merge the retrained model, ratio {ratio:g}")
    merge_stage("retrained-merged-ratio", retrained, "retrained", _Clock(), metric="pearson", ratio=ratio)

    step(f"shrink within {max_drop:g} point(s), then quantize: {', '.join(modes)}")
    clock = _Clock()
    outcome = shrink_for_journey(model, dataset, max_drop=max_drop, modes=modes, seed=seed, fast=fast_shrink)
    shrink_files = {}

    def write_shrink(path):
        shrink_files.update(write_frontier(outcome, journey.stages, os.path.dirname(path)))
        with open(path, "wb") as handle:
            handle.write(outcome.tflite)

    merged = outcome.result.merged
    source_stage = keras_stage("shrunk", outcome.model, "original",
                               {"removed": merged["removed"], "validation_drop_points": merged["drop"],
                                "fine_tune": merged["fine_tune"] and {k: merged["fine_tune"][k] for k in
                                                                      ("epochs_run", "best_epoch", "strategy")},
                                "export": outcome.result.export}, clock,
                               extra_files={"tflite": ("model.tflite", write_shrink)})
    source_stage.files.update({label: _join(source_stage.folder, name) for label, name in shrink_files.items()})
    journey.quantized_from = source_stage.key
    sizes = outcome.result.splits
    journey.notes.append(f"shrunk: chosen on {sizes['validation']} of the held-out digits (validation); the table "
                         f"measures all {len(dataset.x_test)}, and shrink.json the other {sizes['test']} alone "
                         f"(test accuracy {outcome.result.export['test_accuracy']:.4f} as "
                         f"{outcome.result.export['mode']}, {outcome.result.export['ratio']:.1f}x smaller than the "
                         "original's float32 .tflite)")
    clock = _Clock()
    contents, report = outcome.contents, outcome.quantization
    quantized_folder = _join(prefix, "quantized")
    absolute = os.path.join(directory, "quantized")
    os.makedirs(absolute, exist_ok=True)
    for row in report.modes:  # the paths in comparison.json are the journey's
        if row.ok:
            row.path = _join(quantized_folder, f"model_{row.mode}.tflite")
    report.exported.path = _join(quantized_folder, "model.tflite")
    write_outputs(report, contents, absolute)
    plot_comparison(report, os.path.join(absolute, "comparison.png"))
    reference = np.asarray(model.predict(dataset.x_test, batch_size=256, verbose=0), dtype=np.float32)
    elapsed_wall, elapsed_cpu = time.perf_counter() - clock.wall, time.process_time() - clock.cpu
    converted = [row for row in report.modes if row.ok]
    for row in report.modes:
        stage = Stage(key=row.mode, title=f"quantized: {row.mode}", kind="tflite", source=source_stage.key,
                      folder=quantized_folder, params=source_stage.params,
                      files={"json": _join(quantized_folder, "comparison.json"),
                             "plot": _join(quantized_folder, "comparison.png")})
        if not row.ok:
            journey.notes.append(f"{row.mode}: not converted: {row.error}")
            continue
        stage.path = _join(quantized_folder, f"model_{row.mode}.tflite")
        stage.bytes = int(row.bytes)
        outputs = TFLiteModel(contents[row.mode]).predict(dataset.x_test, batch_size=256).reshape(reference.shape)
        compared = compare_outputs(reference, outputs, dataset.y_test, task=dataset.task)
        stage.accuracy, stage.agreement = compared["accuracy_after"], compared["agreement"]
        stage.details = {"validation_agreement_with_source": row.agreement, "validation_drop_points": row.drop,
                         "max_abs_diff": row.max_abs_diff, "size_ratio": row.size_ratio,
                         "latency_ms": row.latency_ms}
        # One conversion run made every mode: its time is shared out evenly.
        stage.seconds, stage.cpu_seconds = elapsed_wall / len(converted), elapsed_cpu / len(converted)
        journey.stages.append(stage)
        if on_stage is not None:
            on_stage(stage)
    if report.exported is not None:
        journey.notes.append(f"quantize exported {report.exported.mode} as {quantized_folder}/model.tflite: "
                             f"{report.exported.reason}")
    if progress is not None:
        progress(total, total, f"{name}: done")
    return journey
