"""A data-aware merge steered by held-out data: ``--max-drop`` instead of a ratio, ``--fine-tune`` after it.

:func:`guided_merge` is what :func:`weightkit.compress.merge.merge_neurons` runs for ``mode="data"`` with
``max_drop`` or ``fine_tune``. The held-out data is cut in two seeded halves
(:func:`weightkit.compress.shrink.budget.split_held_out`): the *validation* half is read by every
choice (the allocation within the budget, the fine-tune's early stopping), the *test* half only
by the report's evaluation, so the reported drop is on samples no choice saw. The training split
calibrates the merge and is the fine-tune's training set (no labels needed).
"""

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.data.inputs import as_dataset, as_inputs, as_model, is_path
from weightkit.compress.merge.api import merge_neurons
from weightkit.compress.merge.composite_heads import head_entries, head_units
from weightkit.compress.merge.composites import attach_ffns, ffn_entries, ffn_units
from weightkit.compress.merge.reporting.data_report import DataMergeReport, LayerDataMerge
from weightkit.compress.merge.reporting.heads import HeadsDataMerge, attach_heads
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.reporting.report import compare_models, merge_warning, record_params
from weightkit.compress.shrink.budget import calibration_inputs, fine_tune_merged, merge_within_budget, split_held_out
from weightkit.compress.shrink.judge import UNITS, Judge
from weightkit.compress.shrink.sensitivity import HEADS_SUFFIX, mergeable_layers

__all__ = ["guided_merge"]


def _labelled(data, model, seed):
    """``(dataset or inputs, training labels or None)``: a dataset's training split, or bare inputs."""
    if isinstance(data, Dataset) or is_path(data):
        dataset = as_dataset(data, model, seed=seed)
        return dataset, dataset.y_train if dataset.labelled else None
    x, _ = as_inputs(data, model, seed=seed)
    return x, None


def _held_out(evaluate_on, data, model, seed):
    """``(x, y, task, source)`` of the held-out data: ``evaluate_on``, else ``data``'s test split."""
    source = evaluate_on if evaluate_on is not None else data
    if isinstance(source, Dataset) or is_path(source):
        dataset = as_dataset(source, model, seed=seed, what="evaluate_on")
        if dataset.x_test is None or n_samples(dataset.x_test) == 0:
            raise WeightkitError(f"--data {dataset.source}: has no held-out split; --max-drop and --fine-tune read "
                                 "held-out data to choose and to stop: give data with a test split.")
        return dataset.x_test, dataset.y_test if dataset.labelled else None, dataset.task, dataset.source
    if evaluate_on is None:
        raise WeightkitError("max_drop / fine_tune: need held-out data to choose and to stop on: pass evaluate_on= "
                             "(a Dataset, a data specification, or an array of held-out inputs).")
    x, _ = as_inputs(evaluate_on, model, seed=seed, what="evaluate_on")
    return x, None, None, "the given inputs"


def _budget_report(model, merged, summary, data_source, samples):
    report = DataMergeReport(model=model.name, samples=samples, calibration=data_source,
                             params_before=int(model.count_params()))
    units, heads, ffns, ffn_merges = mergeable_layers(model), [], ffn_units(model), []
    composite = head_units(model)
    for name, removed in summary["removed"].items():
        if not removed:
            continue
        if name in ffns:  # FFNs inside composite layers: reported as merge_neurons reports them
            ffn_merges.extend(ffn_entries(ffns[name], removed))
            continue
        if name in composite:  # query heads inside composite layers: one entry per block, as merge_neurons'
            heads.extend(head_entries(composite[name], removed))
            continue
        if name.endswith(HEADS_SUFFIX):  # an attention layer's heads: reported as merge_neurons reports them
            layer = name[:-len(HEADS_SUFFIX)]
            entry = HeadsDataMerge(name=name, type=type(find_layer(model, layer)).__name__, tap=layer,
                                   consumers=[layer], neurons_before=units[name],
                                   neurons_after=units[name] - int(removed))
            entry.params_before = int(find_layer(model, layer).count_params())
            entry.params_after = int(find_layer(merged, layer).count_params())
            heads.append(entry)
            continue
        report.layers.append(LayerDataMerge(name=name, type=type(find_layer(model, name)).__name__, tap=name,
                                            consumers=[], neurons_before=units[name],
                                            neurons_after=units[name] - int(removed)))
    record_params(report, model, merged)
    if ffn_merges:
        attach_ffns(report, model, merged, ffn_merges)
    if heads:
        attach_heads(report, heads, [], model, merged)
    return report


def guided_merge(model, data, *, evaluate_on=None, max_drop=None, fine_tune=0, ratio=None, samples=None, seed=0,
                 refit=True, progress=None, unsafe=False, **options):
    """Merge by data within a held-out budget and/or recover by distillation; evaluate on held-out samples no
    choice read.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Not modified.
    data : Dataset, ndarray, str or os.PathLike
        Training inputs (a dataset's training split): calibration and the fine-tune's inputs.
    evaluate_on : Dataset, ndarray, str or os.PathLike, default=None
        Held-out data; None: ``data``'s test split.
    max_drop : float, default=None
        Accuracy points (agreement points without labels, MAE for a regression) the merge may lose
        on the validation half: the largest per-layer allocation within it
        (:func:`weightkit.compress.shrink.budget.merge_within_budget`, merging as ``shrink`` does: one
        layer after another, one-shot, so ``refit`` does not apply). None: ``ratio`` /
        ``options["max_error"]`` as :func:`weightkit.compress.merge.merge_neurons` with ``mode="data"``
        (attention heads, neurons, composite FFNs), then the fine-tune.
    fine_tune : int, default=0
        Most epochs of distillation from the original after the merge (early-stopped on the
        validation half); 0: none.
    ratio, samples, seed, refit, progress, unsafe, **options
        As :func:`weightkit.compress.merge.merge_neurons` with ``mode="data"``.

    Returns
    -------
    model : keras.Model
    report : DataMergeReport
        With ``budget`` (the search) and ``fine_tune`` (the distillation) where they ran, and the
        evaluation on the test half.
    """
    if max_drop is not None and (ratio is not None or options.get("max_error") is not None):
        raise WeightkitError("--max-drop: give it alone; --ratio and --max-error fix the merge's size themselves, "
                             "--max-drop finds the largest merge within the budget.")
    if int(fine_tune) < 0:
        raise WeightkitError(f"--fine-tune {fine_tune}: must be 0 (none) or a number of epochs, e.g. 10.")
    original = as_model(model, unsafe=unsafe).model
    training, y_train = _labelled(data, original, seed)
    x_train = training.x_train if isinstance(training, Dataset) else training
    x_held, y_held, task, held_source = _held_out(evaluate_on, data, original, seed)
    (x_val, y_val), (x_test, y_test), held_note = split_held_out(x_held, y_held, seed=seed,
                                                                 n_train=n_samples(x_train))
    x_calibration, index = calibration_inputs(x_train, samples, seed=seed)  # as shrink draws them
    count = len(index)
    source = training.source + " (training split)" if isinstance(training, Dataset) else None
    if max_drop is not None:
        judge = Judge(original, x_val, y_val, task=task)
        merged, summary = merge_within_budget(original, x_calibration, judge, max_drop=max_drop, seed=seed,
                                              progress=progress)
        report = _budget_report(original, merged, summary, source, count)
        report.budget = summary
        spent = f"{summary['drop']:.3g} " + ("MAE added" if judge.unit == "mae" else "points lost")
        against = " to the original's outputs (no labels)" if judge.metric_key == "mae_to_original" else ""
        report.notes.append(f"--max-drop {float(max_drop):g} {UNITS[judge.unit]}{against}: path step "
                            f"{summary['chosen_step']} of {summary['path_steps']}, {spent} on "
                            f"the {summary['validation_samples']} validation samples")
    else:
        # the three passes of merge_neurons (heads, neurons, composite FFNs), as a merge without --fine-tune
        merged, report = merge_neurons(original, "data", x_calibration, ratio=ratio, samples=count, seed=seed,
                                       refit=refit, progress=progress, **options)
        report.calibration = source
    if int(fine_tune) > 0:
        tuned, distilled = fine_tune_merged(original, merged, x_train, x_val, y_train=y_train, y_validation=y_val,
                                            task=task, epochs=int(fine_tune), seed=seed)
        merged = tuned
        report.fine_tune = distilled.to_dict()
        report.notes.append(f"fine-tune: distilled from the original, {distilled.epochs_run} epochs run, best "
                            f"epoch {distilled.best_epoch} on the {n_samples(x_val)} validation samples")
    if held_note:
        report.notes.append(held_note)
    evaluation = compare_models(original, merged, x_test, y_test, task=task)
    evaluation["data"] = f"{held_source} (test half, no choice read it)" if held_note is None else held_source
    report.evaluation = evaluation
    budget = None
    if max_drop is not None:
        budget = (Judge(original, x_test, y_test, task=task).score(merged)["drop"], float(max_drop),
                  UNITS[judge.unit])
        report.budget["test_drop"] = budget[0]
    report.warning = merge_warning(evaluation, "data", budget=budget)
    return merged, report
