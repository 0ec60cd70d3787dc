"""The stages of a shrink run before quantization, each stored in the checkpoint when it finishes.

1. :func:`original_stage`: the original's scores and its float32 ``.tflite`` size.
2. :func:`~weightkit.compress.shrink.stream_stage.stream_stage` (its own module): the residual streams sliced.
3. :func:`sensitivity_stage`: per-layer merge curves
   (:func:`weightkit.compress.shrink.budget.budget_curves`) of ``run.start`` (the sliced model, or the
   original) on the calibration inputs, scored on the validation split.
4. :func:`search_stage`: the greedy path through them, bisected
   (:func:`weightkit.compress.shrink.search.search_removals`) for the deepest allocation whose validation
   drop, after a distillation fine-tune where the merge cost more than half the budget, stays within
   the merge share of the budget.

The same curves, path and search as ``merge --max-drop``
(:func:`weightkit.compress.shrink.budget.merge_within_budget`). The last stage is in :mod:`.export`.
"""

import time

from weightkit.compress.quantize import quantize_model
from weightkit.compress.shrink.budget import budget_curves, budget_removals
from weightkit.compress.shrink.checkpoint import STAGES
from weightkit.compress.shrink.result import FLOAT_BYTES, Candidate
from weightkit.compress.shrink.run import tflite_runner
from weightkit.compress.shrink.search import search_removals
from weightkit.compress.shrink.sensitivity import LayerSensitivity

__all__ = ["original_stage", "run_stage", "search_stage", "sensitivity_stage"]


def run_stage(run, name, what, compute):
    """Stage ``name``'s (one of :data:`~weightkit.compress.shrink.checkpoint.STAGES`) stored results: read from the checkpoint, or ``compute()`` -> ``(results, models)`` and
    stored; its seconds go to ``run.result.stages`` and ``on_stage``."""
    started, stored = time.perf_counter(), run.checkpoint.done(name)
    resumed = stored is not None
    if not resumed:
        run.options.report(STAGES.index(name), what)
        stored, models = compute()
        stored = {**stored, "seconds": time.perf_counter() - started}
        run.checkpoint.finish(name, stored, models=models)
    seconds = stored.get("seconds", time.perf_counter() - started) if resumed else time.perf_counter() - started
    run.result.stages[name] = round(float(seconds), 2)
    if run.options.on_stage is not None:
        run.options.on_stage(name, seconds, resumed)
    return stored


def original_stage(run):
    """The original's validation and test scores, parameters, and float32 ``.tflite`` bytes and test score."""
    original, judge, test = run.original, run.judge, run.test_judge

    def compute():
        contents, _ = quantize_model(original, ["float32"], run.splits.quantize_view(), seed=run.options.seed,
                                     latency_repeats=3, throughput_repeats=1)
        tflite = test.score(tflite_runner(original, contents["float32"]))
        return {"params": int(original.count_params()), "validation_accuracy": judge.metric(judge.reference),
                "test_accuracy": test.metric(test.reference), "float32_tflite_bytes": len(contents["float32"]),
                "float32_tflite_test_accuracy": test.metric(tflite)}, None

    stored = run_stage(run, "original", "original: scoring and converting to float32 .tflite", compute)
    run.result.original = base = {k: v for k, v in stored.items() if k != "seconds"}
    run.result.candidates.append(Candidate("original", "original", "keras", base["params"],
                                           base["params"] * FLOAT_BYTES, base["validation_accuracy"],
                                           base["test_accuracy"], 1.0, estimated=True, within_budget=True,
                                           title="original (float Keras)"))
    run.result.candidates.append(Candidate("original:float32", "original", "tflite", base["params"],
                                           base["float32_tflite_bytes"], base["validation_accuracy"],
                                           base["float32_tflite_test_accuracy"], within_budget=True,
                                           title="original, float32 .tflite"))
    return base


def sensitivity_stage(run):
    """Every mergeable layer's curve (:class:`LayerSensitivity`), measured or read from the checkpoint."""
    options = run.options

    def compute():
        curves = budget_curves(run.start, run.splits.x_calibration, run.judge, fractions=options.fractions,
                               target=options.target, seed=options.seed, progress=options.reporter(2))
        return {"curves": [c.to_dict() for c in curves]}, None

    stored = run_stage(run, "sensitivity", "sensitivity: merging each layer alone", compute)
    run.result.sensitivity = stored["curves"]
    return [LayerSensitivity(**c) for c in stored["curves"]]


def search_stage(run, curves):
    """The chosen merged (and perhaps fine-tuned) float model, its probes and candidates in ``run.result``."""
    options, result = run.options, run.result
    path, removals = budget_removals(curves)
    result.path = [{**a.to_dict(), "removals": r} for a, r in zip(path, removals)]

    def compute():
        # run.score reads a merge's drop against a sliced stream that scored better than the original on validation:
        # that gain is no credit to spend (a fine-tune chose it on the same few hundred samples).
        found = search_removals(run.start, run.splits.x_calibration, removals, run.score,
                                budget=options.merge_budget, max_drop=options.max_drop, tune=run.tune(),
                                fine_tune=options.fine_tune, max_probes=options.max_probes, seed=options.seed,
                                progress=options.reporter(3))
        run.merged = found.pop("model")
        return found, {"merged": run.merged}

    stored = run_stage(run, "search", "search: merging along the greedy path", compute)
    result.probes, result.merged = stored["probes"], stored["merged"]
    for probe in result.probes:
        for suffix, key in (("", "before"), ("+fine-tune", "after")):
            if probe.get(key) is None:
                continue
            result.candidates.append(Candidate(
                f"merge:{probe['index']}{suffix}", "fine-tune" if suffix else "merge", "keras", probe["params"],
                probe["params"] * FLOAT_BYTES, run.judge.metric(probe[key]), probe[key].get("test_accuracy"),
                probe[key].get("agreement"), removed=probe["removed"], estimated=True,
                within_budget=probe[key]["drop"] <= options.merge_budget,
                title=f"merged, path step {probe['index']}" + (", fine-tuned" if suffix else "")))
    return run.merged if run.merged is not None else run.checkpoint.model("merged")
