"""The last step of a journey: the shrunk model in each quantization mode, as shrink's quantize stage made it.

:func:`quantized_stages` writes shrink's ``.tflite`` files, ``comparison.json`` and
``comparison.png`` into ``quantized/`` and adds one TFLite :class:`~.stages.Stage` per mode,
measured on the whole held-out split like every Keras stage.
"""

import os

import numpy as np

from weightkit.demo.journey_run import Clock, join
from weightkit.demo.stages import Stage

__all__ = ["quantized_stages"]


def quantized_stages(run, outcome, source_stage):
    """Write and measure every quantization mode of ``outcome``; add a stage per mode that converted.

    Parameters
    ----------
    run : JourneyRun
    outcome : weightkit.compress.shrink.ShrinkOutcome
        Its ``contents`` and ``quantization`` report.
    source_stage : Stage
        The ``shrunk`` stage the modes were converted from.
    """
    clock = Clock()
    contents, report = outcome.contents, outcome.quantization
    folder = join(run.options.prefix, "quantized")
    _write_files(report, contents, folder, os.path.join(run.directory, "quantized"))
    reference = np.asarray(run.model.predict(run.dataset.x_test, batch_size=256, verbose=0), dtype=np.float32)
    elapsed_wall, elapsed_cpu = clock.elapsed()
    converted = [row for row in report.modes if row.ok]
    for row in report.modes:
        if not row.ok:
            run.journey.notes.append(f"{row.mode}: not converted: {row.error}")
            continue
        stage = _measured_stage(run, row, contents[row.mode], reference, folder, source_stage)
        # One conversion run made every mode: its time is shared out evenly.
        stage.seconds, stage.cpu_seconds = elapsed_wall / len(converted), elapsed_cpu / len(converted)
        run.add(stage)
    if report.exported is not None:
        run.journey.notes.append(f"quantize exported {report.exported.mode} as {folder}/model.tflite: "
                                 f"{report.exported.reason}")


def _write_files(report, contents, folder, absolute):
    """The modes' files, ``comparison.json`` (its paths the journey's) and ``comparison.png`` into ``absolute``."""
    from weightkit.compress.quantize import write_outputs
    from weightkit.reports.quantize_plot import plot_comparison

    os.makedirs(absolute, exist_ok=True)
    for row in report.modes:
        if row.ok:
            row.path = join(folder, f"model_{row.mode}.tflite")
    report.exported.path = join(folder, "model.tflite")
    write_outputs(report, contents, absolute)
    plot_comparison(report, os.path.join(absolute, "comparison.png"))


def _measured_stage(run, row, content, reference, folder, source_stage):
    """The stage of one converted mode: its size, and its accuracy and agreement on the held-out split."""
    from weightkit.compress.quantize import TFLiteModel
    from weightkit.compress.quantize.compare import compare_outputs

    dataset = run.dataset
    stage = Stage(key=row.mode, title=f"quantized: {row.mode}", kind="tflite", source=source_stage.key,
                  folder=folder, params=source_stage.params,
                  files={"json": join(folder, "comparison.json"), "plot": join(folder, "comparison.png")},
                  path=join(folder, f"model_{row.mode}.tflite"), bytes=int(row.bytes))
    outputs = TFLiteModel(content).predict(dataset.x_test, batch_size=256).reshape(reference.shape)
    compared = compare_outputs(reference, outputs, dataset.y_test, task=dataset.task)
    stage.accuracy, stage.agreement = compared["accuracy_after"], compared["agreement"]
    stage.details = {"validation_agreement_with_source": row.agreement, "validation_drop_points": row.drop,
                     "max_abs_diff": row.max_abs_diff, "size_ratio": row.size_ratio, "latency_ms": row.latency_ms}
    return stage
