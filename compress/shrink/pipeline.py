"""``shrink_model``: the smallest model within an accuracy budget, in stages that resume.

1. ``original``: the original's accuracy and its float32 ``.tflite`` size.
2. ``sensitivity``: per-layer merge curves (:mod:`.sensitivity`) on the calibration/validation splits.
3. ``search``: the greedy path through them (:mod:`.allocation`), searched by bisection for the
   deepest allocation whose validation drop, after a distillation fine-tune where the merge cost
   more than half the budget (:mod:`.distill`), stays within the merge share of the budget.
4. ``quantize``: :func:`weightkit.compress.quantize.quantize_model` on the chosen float model, the smallest
   mode within the budget that remains, every ``.tflite`` run in LiteRT.

Every choice reads the validation split; the test split is scored for the report only
(:mod:`.splits`).
"""

import time

from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.data.inputs import as_dataset, as_model
from weightkit.compress.quantize import TFLiteModel, quantize_model
from weightkit.compress.shrink.allocation import greedy_path
from weightkit.compress.shrink.checkpoint import STAGES, Checkpoint
from weightkit.compress.shrink.costs import TARGETS
from weightkit.compress.shrink.distill import distill
from weightkit.compress.shrink.result import FLOAT_BYTES, Candidate, ShrinkResult
from weightkit.compress.shrink.scores import predict_probabilities, score_outputs
from weightkit.compress.shrink.search import search_path
from weightkit.compress.shrink.sensitivity import DEFAULT_FRACTIONS, LayerSensitivity, measure_sensitivity
from weightkit.compress.shrink.splits import split_for_shrink
from weightkit.compress.shrink.strip import strip_names

__all__ = ["DEFAULT_MODES", "ShrinkOutcome", "shrink_model"]

#: Quantization modes tried unless told otherwise (int16x8 runs on slow reference kernels).
DEFAULT_MODES = ("float32", "dynamic", "float16", "int8", "int8-io")


class ShrinkOutcome:
    """The products of a run: ``model`` (the merged float Keras model), ``tflite`` (the exported
    bytes), ``contents`` (every mode's bytes), ``quantization`` (the QuantizationReport) and ``result``."""

    def __init__(self, model, tflite, contents, quantization, result):
        self.model, self.tflite, self.contents = model, tflite, contents
        self.quantization, self.result = quantization, result


def _budget_reason(quantization, max_drop, merged_drop, remaining):
    """Why the quantize stage exported its mode, in the budget the user set (``quantize_model`` was given
    only what merging left of it, which is no ``--max-drop`` of anyone's)."""
    row = next(r for r in quantization.modes if r.mode == quantization.exported.mode)
    merged = f"lost {merged_drop:.2f}" if merged_drop >= 0 else f"gained {-merged_drop:.2f}"
    left = f"the {remaining:.2f} points that --max-drop {max_drop:g} leaves after merging ({merged} points)"
    if row.drop <= remaining:
        return (f"smallest model ({row.bytes:,} bytes) whose drop against the merged model ({row.drop:.2f} points) "
                f"is within {left}")
    return (f"no mode within {left}; exported the one with the smallest drop ({row.drop:.2f} points, "
            f"{row.bytes:,} bytes)")


def _check(model, max_drop, target, fine_tune_epochs, quantize_reserve):
    if target not in TARGETS:
        raise WeightkitError(f"--target {target}: expected one of {', '.join(TARGETS)}.")
    if not max_drop >= 0:
        raise WeightkitError(f"--max-drop {max_drop}: must be at least 0 (accuracy points), e.g. 1.")
    if fine_tune_epochs < 0:
        raise WeightkitError(f"--fine-tune-epochs {fine_tune_epochs}: must be 0 (no fine-tune) or more.")
    if not 0.0 <= quantize_reserve < 1.0:
        raise WeightkitError(f"quantize_reserve={quantize_reserve}: must be in [0, 1).")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise WeightkitError(f"model {model.name!r}: shrink takes models with one input and one output "
                             f"(this one has {len(model.inputs)} and {len(model.outputs)}); use merge and quantize.")
    width = model.outputs[0].shape[-1]
    if width is None or int(width) < 2 or len(model.outputs[0].shape) != 2:
        raise WeightkitError(f"model {model.name!r}: shrink keeps a classifier's accuracy; its output must be one "
                             "score per class, shape (batch, n_classes) with 2 classes or more.")


def shrink_model(model, dataset, *, max_drop=1.0, target="size", fine_tune_epochs=30, fine_tune=None,
                 modes=DEFAULT_MODES, fractions=DEFAULT_FRACTIONS, quantize_reserve=0.25, max_probes=4,
                 temperature=4.0, alpha=0.7, calibration_samples=200, seed=0, work_dir=None, resume=False,
                 progress=None, on_stage=None, unsafe=False):
    """Merge, fine-tune and quantize a classifier to the smallest model within ``max_drop`` accuracy points.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        One input, one class-score output; not modified.
    dataset : Dataset, str or os.PathLike
        Labelled classification data fitted to the model (or a data specification): its training
        split is cut into calibration, fine-tune and validation splits, its test split is the
        final evaluation (:func:`weightkit.compress.shrink.splits.split_for_shrink`).
    max_drop : float, default=1.0
        Accuracy points the export may lose against the original on the validation split.
    target : {"size", "params", "latency"}, default="size"
        What the allocation removes most of (:data:`weightkit.compress.shrink.costs.TARGETS`); ``latency``
        also exports the fastest mode within the budget instead of the smallest.
    fine_tune_epochs : int, default=30
        Most epochs of the distillation fine-tune (early-stopped on validation); 0: none.
    fine_tune : bool, default=None
        None: fine-tune a merge whose validation drop exceeds half the budget; True: always;
        False: never.
    modes : sequence of str, default=DEFAULT_MODES
    fractions : sequence of float, default=DEFAULT_FRACTIONS
        Fractions of each layer tried by the sensitivity stage.
    quantize_reserve : float, default=0.25
        Share of the budget kept for quantization: merging may spend the rest.
    max_probes : int, default=4
        Allocations the search merges (and fine-tunes) at most.
    temperature, alpha : float, default=4.0, 0.7
        See :func:`weightkit.compress.shrink.distill.distill`.
    calibration_samples : int, default=200
        Representative dataset of the integer modes (from the calibration split).
    seed : int, default=0
    work_dir : str, default=None
        Folder for the stage checkpoints; required for ``resume``.
    resume : bool, default=False
    progress : callable, default=None
        ``progress(done, total, what)``.
    on_stage : callable, default=None
        ``on_stage(stage, seconds, resumed)`` when a stage is finished (or read from the checkpoint).
    unsafe : bool, default=False

    Returns
    -------
    ShrinkOutcome
    """
    loaded = as_model(model, unsafe=unsafe)
    original = loaded.model
    _check(original, float(max_drop), target, int(fine_tune_epochs), float(quantize_reserve))
    if resume and work_dir is None:
        raise WeightkitError("resume=True needs the work_dir of the interrupted run.")
    dataset = as_dataset(dataset, original, seed=seed)
    splits = split_for_shrink(dataset, seed=seed)
    modes = list(modes)
    settings = {"max_drop": float(max_drop), "target": target, "fine_tune_epochs": int(fine_tune_epochs),
                "fine_tune": fine_tune, "modes": modes, "fractions": [float(f) for f in fractions],
                "quantize_reserve": float(quantize_reserve), "max_probes": int(max_probes),
                "temperature": float(temperature), "alpha": float(alpha),
                "calibration_samples": int(calibration_samples), "seed": int(seed), "data": dataset.source,
                "splits": splits.sizes()}
    checkpoint = Checkpoint(work_dir, settings, resume=resume)
    activation = output_activations(original)[0]
    teacher = {name: predict_probabilities(original, x, activation)
               for name, x in (("validation", splits.x_validation), ("test", splits.x_test),
                               ("fine_tune", splits.x_fine_tune))}
    result = ShrinkResult(model=original.name, data=dataset.source, max_drop=float(max_drop), target=target,
                          settings=settings, splits=splits.sizes(), notes=list(loaded.notes))

    def stage_done(name, started, resumed):
        stored = checkpoint.done(name)
        seconds = stored.get("seconds", time.perf_counter() - started) if resumed else time.perf_counter() - started
        result.stages[name] = round(float(seconds), 2)
        if on_stage is not None:
            on_stage(name, seconds, resumed)

    def report(done, what):
        if progress is not None:
            progress(done, len(STAGES), what)

    # 1. original
    started, stored = time.perf_counter(), checkpoint.done("original")
    resumed = stored is not None
    if not resumed:
        report(0, "original: scoring and converting to float32 .tflite")
        contents, _ = quantize_model(original, ["float32"], splits.quantize_view(), seed=seed, latency_repeats=3,
                                     throughput_repeats=1)
        validation = score_outputs(teacher["validation"], splits.y_validation)["accuracy"]
        test = score_outputs(teacher["test"], splits.y_test)["accuracy"]
        tflite_test = score_outputs(predict_probabilities(TFLiteModel(contents["float32"]), splits.x_test,
                                                          activation), splits.y_test)["accuracy"]
        stored = {"params": int(original.count_params()), "validation_accuracy": validation, "test_accuracy": test,
                  "float32_tflite_bytes": len(contents["float32"]), "float32_tflite_test_accuracy": tflite_test,
                  "seconds": time.perf_counter() - started}
        checkpoint.finish("original", stored)
    result.original = {k: v for k, v in stored.items() if k != "seconds"}
    stage_done("original", started, resumed)
    base = result.original
    result.candidates.append(Candidate("original", "original", "keras", base["params"],
                                       base["params"] * FLOAT_BYTES, base["validation_accuracy"],
                                       base["test_accuracy"], 1.0, estimated=True, within_budget=True,
                                       title="original (float Keras)"))
    result.candidates.append(Candidate("original:float32", "original", "tflite", base["params"],
                                       base["float32_tflite_bytes"], base["validation_accuracy"],
                                       base["float32_tflite_test_accuracy"], within_budget=True,
                                       title="original, float32 .tflite"))

    # 2. sensitivity
    started, stored = time.perf_counter(), checkpoint.done("sensitivity")
    resumed = stored is not None
    if not resumed:
        report(1, "sensitivity: merging each layer alone")
        curves = measure_sensitivity(original, splits.x_calibration, splits.x_validation, splits.y_validation,
                                     teacher["validation"], activation, fractions=fractions, target=target,
                                     seed=seed, progress=progress and (lambda d, t, w: progress(1, len(STAGES), w)))
        stored = {"curves": [c.to_dict() for c in curves], "seconds": time.perf_counter() - started}
        checkpoint.finish("sensitivity", stored)
    curves = [LayerSensitivity(**c) for c in stored["curves"]]
    result.sensitivity = stored["curves"]
    stage_done("sensitivity", started, resumed)

    # 3. search
    path = greedy_path({c.name: c.levels("kl") for c in curves})
    removals = [{c.name: (c.points[a.levels[c.name] - 1]["removed"] if a.levels[c.name] else 0) for c in curves}
                for a in path]
    result.path = [{**a.to_dict(), "removals": r} for a, r in zip(path, removals)]
    started, stored = time.perf_counter(), checkpoint.done("search")
    resumed = stored is not None
    budget = float(max_drop) * (1.0 - float(quantize_reserve))
    if not resumed:
        report(2, "search: merging along the greedy path")

        def tune(student):
            return distill(student, teacher["fine_tune"], splits.x_fine_tune, splits.y_fine_tune,
                           splits.x_validation, splits.y_validation, teacher["validation"], activation,
                           epochs=fine_tune_epochs, temperature=temperature, alpha=alpha, seed=seed,
                           progress=progress and (lambda d, t, w: progress(2, len(STAGES), w)))

        found = search_path(original, splits, teacher, activation, removals, base["validation_accuracy"],
                            budget=budget, max_drop=float(max_drop), tune=tune if fine_tune_epochs else None,
                            fine_tune=fine_tune, max_probes=max_probes, seed=seed,
                            progress=progress and (lambda w: progress(2, len(STAGES), w)))
        chosen_model = found.pop("model")
        stored = {**found, "seconds": time.perf_counter() - started}
        checkpoint.finish("search", stored, models={"merged": chosen_model})
    else:
        chosen_model = checkpoint.model("merged")
    result.probes, result.merged = stored["probes"], stored["merged"]
    stage_done("search", started, resumed)
    for probe in result.probes:
        for suffix, key in (("", "before"), ("+fine-tune", "after")):
            if probe.get(key) is None:
                continue
            result.candidates.append(Candidate(
                f"merge:{probe['index']}{suffix}", "fine-tune" if suffix else "merge", "keras", probe["params"],
                probe["params"] * FLOAT_BYTES, probe[key]["accuracy"], probe[key].get("test_accuracy"),
                probe[key]["agreement"], removed=probe["removed"], estimated=True,
                within_budget=probe[key]["drop"] <= budget,
                title=f"merged, path step {probe['index']}" + (", fine-tuned" if suffix else "")))

    # 4. quantize
    started = time.perf_counter()
    report(3, f"quantize: {', '.join(modes)}")
    remaining = max(0.0, float(max_drop) - result.merged["drop"])
    contents, quantization = quantize_model(chosen_model, modes, splits.quantize_view(),
                                            calibration_samples=min(calibration_samples, len(splits.x_calibration)),
                                            max_drop=remaining, seed=seed, latency_repeats=10, throughput_repeats=2)
    quantization.exported.reason = _budget_reason(quantization, float(max_drop), result.merged["drop"], remaining)
    export = quantization.exported.mode
    within = [row for row in quantization.modes if row.ok and row.drop <= remaining]
    if target == "latency" and within:
        export = min(within, key=lambda row: row.latency_ms).mode
    params = int(chosen_model.count_params())
    rows = {}
    for row in quantization.modes:
        if not row.ok:
            result.notes.append(f"{row.mode}: not converted: {row.error}")
            continue
        test = score_outputs(predict_probabilities(TFLiteModel(contents[row.mode]), splits.x_test, activation),
                             splits.y_test, teacher["test"])
        rows[row.mode] = {"bytes": int(row.bytes), "validation_accuracy": row.accuracy, "drop": row.drop,
                          "test_accuracy": test["accuracy"], "test_agreement": test["agreement"],
                          "latency_ms": row.latency_ms}
        result.candidates.append(Candidate(f"quantize:{row.mode}", "quantize", "tflite", params, int(row.bytes),
                                           row.accuracy, test["accuracy"], None, removed=result.merged["removed"],
                                           within_budget=row.drop <= remaining, chosen=row.mode == export,
                                           title=f"merged, {row.mode} .tflite"))
    result.stages["quantize"] = round(time.perf_counter() - started, 2)
    if on_stage is not None:
        on_stage("quantize", result.stages["quantize"], False)
    chosen = rows[export]
    exported, saved = strip_names(contents[export], splits.x_validation)
    if saved:
        result.notes.append(f"model.tflite: tensor names stripped ({saved:,} bytes less, outputs identical on the "
                            "validation split)")
        chosen = {**chosen, "bytes": len(exported), "bytes_with_names": chosen["bytes"]}
        result.candidate(f"quantize:{export}").bytes = len(exported)
    result.quantized = {"mode": export, "remaining_budget": remaining, "reason": quantization.exported.reason
                        if export == quantization.exported.mode else "fastest mode within the remaining budget",
                        "modes": rows}
    test_drop = 100.0 * (base["test_accuracy"] - chosen["test_accuracy"])
    result.export = {"mode": export, "bytes": chosen["bytes"], "params": params,
                     "validation_accuracy": chosen["validation_accuracy"], "test_accuracy": chosen["test_accuracy"],
                     "test_drop_points": test_drop, "within_budget_on_test": bool(test_drop <= max_drop + 1e-9),
                     "ratio": base["float32_tflite_bytes"] / chosen["bytes"]}
    if not test_drop <= max_drop + 1e-9:
        result.notes.append(f"on the test split the export lost {test_drop:.2f} points, more than --max-drop "
                            f"{max_drop:g}: the validation split ({splits.sizes()['validation']} samples) that every "
                            "choice reads was kinder than the test split")
    return ShrinkOutcome(chosen_model, exported, contents, quantization, result)
