"""The last stage of a shrink run: quantize the chosen float model and export the smallest mode within budget.

:func:`weightkit.compress.quantize.quantize_model` converts every mode (calibrating the integer ones on
the calibration inputs) and times it; each ``.tflite`` is then scored here by the run's
:class:`weightkit.compress.shrink.judge.Judge`, against the *original* on the validation split, in the
budget's own unit, so the export's drop is the whole run's. The test split is scored for the
report only.
"""

import time

from weightkit.analysis.data.batches import n_samples
from weightkit.compress.quantize import MODES, quantize_model
from weightkit.compress.shrink.judge import UNITS
from weightkit.compress.shrink.result import Candidate
from weightkit.compress.shrink.run import tflite_runner
from weightkit.compress.shrink.strip import slim_export

__all__ = ["choose_export", "export_reason", "quantize_stage"]

_SLACK = 1e-9  # a drop equal to the budget is within it, whatever the float rounding


def choose_export(rows, max_drop, target):
    """``(mode, within)``: the smallest (``target="latency"``: fastest) mode whose drop is within ``max_drop``;
    else the one with the smallest drop.

    Parameters
    ----------
    rows : dict of str to dict
        Per mode: ``bytes``, ``drop`` (against the original, validation split), ``latency_ms``.
    max_drop : float
    target : str

    Returns
    -------
    mode : str
    within : bool
    """
    within = [mode for mode, row in rows.items() if row["drop"] <= max_drop + _SLACK]
    if not within:
        return min(rows, key=lambda mode: (rows[mode]["drop"], rows[mode]["bytes"])), False
    key = "latency_ms" if target == "latency" else "bytes"
    return min(within, key=lambda mode: (rows[mode][key] or 0.0, rows[mode]["bytes"])), True


def _amount(drop, unit):
    return f"{drop:.4g} MAE" if unit == "mae" else f"{drop:.2f} points"


def export_reason(row, within, max_drop, target, unit):
    """Why the export is the mode it is, in the budget the user set (``row``: the mode's ``bytes`` and ``drop``
    against the original)."""
    budget = f"--max-drop {max_drop:g} {UNITS[unit]}"
    if not within:
        return (f"no mode within {budget}; exported the one with the smallest drop ({_amount(row['drop'], unit)}, "
                f"{row['bytes']:,} bytes)")
    what = "fastest" if target == "latency" else "smallest"
    return (f"{what} model ({row['bytes']:,} bytes) whose drop against the original ({_amount(row['drop'], unit)}) "
            f"is within {budget}")


def quantize_stage(run, model):
    """Quantize ``model`` (the chosen float model) and choose the export; fills ``run.result``.

    Returns
    -------
    contents : dict of str to bytes
        Every mode as converted (the sizes ``quantization`` reports).
    quantization : QuantizationReport
        Its ``exported`` names shrink's choice.
    exported : bytes
        The chosen ``.tflite``. Every mode is slimmed before the choice (:func:`slim_export`: names
        stripped and repeats stored once where that changes no output), so the sizes compared, shown
        and exported are those of ``model.tflite`` as it would be written; ``bytes_as_converted`` keeps the
        converter's.
    """
    options, result, splits = run.options, run.result, run.splits
    started = time.perf_counter()
    options.report(4, f"quantize: {', '.join(options.modes)}")
    contents, quantization = quantize_model(model, options.modes, splits.quantize_view(),
                                            calibration_samples=min(options.calibration_samples,
                                                                    n_samples(splits.x_calibration)),
                                            seed=options.seed, latency_repeats=10, throughput_repeats=2)
    rows, slimmed = {}, {}
    for row in quantization.modes:
        if not row.ok:
            result.notes.append(f"{row.mode}: not converted: {row.error}")
            continue
        if MODES[row.mode].backend != "tflite":
            continue
        runner = tflite_runner(model, contents[row.mode])
        validation, test = run.judge.score(runner), run.test_judge.score(runner)
        slimmed[row.mode] = slim_export(contents[row.mode], splits.x_validation,
                                        runner=lambda c: tflite_runner(model, c))
        rows[row.mode] = {"bytes": len(slimmed[row.mode][0]), "bytes_as_converted": int(row.bytes),
                          "validation_accuracy": run.judge.metric(validation),
                          "drop": validation["drop"], "test_accuracy": run.test_judge.metric(test),
                          "test_drop": test["drop"], "test_agreement": test.get("agreement"),
                          "latency_ms": row.latency_ms}
    # After a sliced stream that scored better than the original on validation, the export too stays within the
    # budget of the sliced model: its gain is no credit to spend (stages.search_stage).
    budget = options.max_drop + run.credit
    export, within = choose_export(rows, budget, options.target)
    chosen = rows[export]
    reason = export_reason(chosen, within, options.max_drop, options.target, result.unit)
    quantization.exported.mode, quantization.exported.reason = export, reason
    params = int(model.count_params())
    for mode, row in rows.items():
        result.candidates.append(Candidate(f"quantize:{mode}", "quantize", "tflite", params, row["bytes"],
                                           row["validation_accuracy"], row["test_accuracy"], None,
                                           removed=result.merged["removed"],
                                           within_budget=row["drop"] <= budget + _SLACK,
                                           chosen=mode == export, title=f"merged, {mode} .tflite"))
    exported, steps = slimmed[export]
    for what, saved in steps:
        result.notes.append(f"model.tflite: {what} ({saved:,} bytes less, outputs identical on the validation "
                            "split)")
    result.quantized = {"mode": export, "remaining_budget": max(0.0, options.max_drop - result.merged["drop"]),
                        "reason": reason, "modes": rows}
    _record_export(run, export, chosen, params)
    result.stages["quantize"] = round(time.perf_counter() - started, 2)
    if options.on_stage is not None:
        options.on_stage("quantize", result.stages["quantize"], False)
    return contents, quantization, exported


def _record_export(run, export, chosen, params):
    result, options = run.result, run.options
    base = result.original
    test_drop = chosen["test_drop"]
    result.export = {"mode": export, "bytes": chosen["bytes"], "params": params,
                     "validation_accuracy": chosen["validation_accuracy"], "test_accuracy": chosen["test_accuracy"],
                     "test_drop_points": test_drop,
                     "within_budget_on_test": bool(test_drop <= options.max_drop + _SLACK),
                     "ratio": base["float32_tflite_bytes"] / chosen["bytes"]}
    if not test_drop <= options.max_drop + _SLACK:
        result.notes.append(f"on the test split the export lost {test_drop:.3g} {UNITS[result.unit]}, more than "
                            f"--max-drop {options.max_drop:g}: the validation split ({result.splits['validation']} "
                            "samples) that every choice reads was kinder than the test split")
