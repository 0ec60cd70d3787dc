"""The Keras steps of a journey: merge, retrain with the decorrelation regularizer, shrink.

Each step takes the :class:`~.journey_run.JourneyRun`, calls the library function the matching
command calls, and adds its stage (the model saved, measured and analyzed by
:meth:`~.journey_run.JourneyRun.keras_stage`, with its own files beside it).
"""

import os

from weightkit.demo.journey_options import KERAS_STAGES
from weightkit.demo.journey_run import Clock, join

__all__ = ["merge_stage", "retrain_stage", "shrink_stage"]


def merge_stage(run, key, source_model, source_key, **merge_options):
    """Merge ``source_model`` by weights as ``weightkit merge --data`` does, measured against the original.

    ``merge_options`` go to :func:`weightkit.compress.merge_neurons` (``metric`` and ``threshold``
    or ``ratio``); ``merge.json`` is written beside the model.
    """
    from weightkit.compress.merge import merge_neurons

    clock = Clock()
    ratio, threshold = run.options.ratio, run.options.threshold
    merged, report = merge_neurons(source_model, "weights", evaluate_on=run.dataset, **merge_options)
    document = report.to_dict()
    by_ratio = "ratio" in merge_options
    details = {"rule": f"ratio {ratio:g}" if by_ratio else f"every group with r ≥ {threshold:g}",
               "neurons_removed": report.removed, "params_before": report.params_before,
               "params_after": report.params_after,
               "exact_merges": int(sum(layer.to_dict()["exact_merges"] for layer in report.layers))}
    title = KERAS_STAGES[key] + (f" {ratio:g}" if by_ratio else f" (r ≥ {threshold:g})")

    def write_json(path):
        from weightkit.analysis.files.io import atomic_write_json

        atomic_write_json(path, {**document, "input": source_key})

    return run.keras_stage(key, merged, source_key, details, clock, title=title,
                           extra_files={"json": ("merge.json", write_json)})


def retrain_stage(run):
    """Fine-tune the original with the decorrelation regularizer; ``retrain.json`` and ``retrain.png`` beside it.

    Returns
    -------
    keras.Model
        The retrained model.
    """
    from weightkit.compress.decorrelate.training import retrain

    options, dataset, clock = run.options, run.dataset, Clock()
    retrained, result = retrain(run.model, dataset, strength=options.strength, epochs=options.retrain_epochs,
                                seed=options.seed)
    details = {"epochs": int(options.retrain_epochs), "strength": options.strength, "loss": result.loss,
               "accuracy_before": result.before["accuracy"], "accuracy_after": result.after["accuracy"],
               "mean_abs_r": {entry: {"before": result.before["layers"][entry]["mean_abs_r"],
                                      "after": result.after["layers"][entry]["mean_abs_r"]}
                              for entry in result.before["layers"]}}

    def write_json(path):
        from weightkit.analysis.files.io import atomic_write_json

        atomic_write_json(path, {"model": "original", "data": dataset.source, **result.to_dict()})

    def write_plot(path):
        from weightkit.reports.retrain_plot import plot_retrain

        plot_retrain(result, path)

    run.keras_stage("retrained", retrained, "original", details, clock,
                    extra_files={"json": ("retrain.json", write_json), "plot": ("retrain.png", write_plot)})
    return retrained


def shrink_stage(run):
    """The headline: shrink the original within ``max_drop``; its ``model.tflite`` and frontier beside it.

    Returns
    -------
    outcome : weightkit.compress.shrink.ShrinkOutcome
    stage : Stage
        The ``shrunk`` Keras stage.
    """
    from weightkit.demo.headline import shrink_for_journey, write_frontier

    options, clock = run.options, Clock()
    outcome = shrink_for_journey(run.model, run.dataset, max_drop=options.max_drop, modes=list(options.modes),
                                 seed=options.seed, fast=options.fast_shrink)
    shrink_files = {}

    def write_shrink(path):
        shrink_files.update(write_frontier(outcome, run.journey.stages, os.path.dirname(path)))
        with open(path, "wb") as handle:
            handle.write(outcome.tflite)

    merged = outcome.result.merged
    details = {"removed": merged["removed"], "validation_drop_points": merged["drop"],
               "fine_tune": merged["fine_tune"] and {k: merged["fine_tune"][k] for k in
                                                     ("epochs_run", "best_epoch", "strategy")},
               "export": outcome.result.export}
    stage = run.keras_stage("shrunk", outcome.model, "original", details, clock,
                            extra_files={"tflite": ("model.tflite", write_shrink)})
    stage.files.update({label: join(stage.folder, name) for label, name in shrink_files.items()})
    run.journey.quantized_from = stage.key
    sizes, export = outcome.result.splits, outcome.result.export
    run.journey.notes.append(
        f"shrunk: chosen on {sizes['validation']} of the held-out digits (validation); the table measures all "
        f"{len(run.dataset.x_test)}, and shrink.json the other {sizes['test']} alone (test accuracy "
        f"{export['test_accuracy']:.4f} as {export['mode']}, {export['ratio']:.1f}x smaller than the original's "
        "float32 .tflite)")
    return outcome, stage
