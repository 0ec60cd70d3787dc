"""What ``analyze``, ``report`` and ``merge`` share for ``--data``: options and the data loader call.

Kept apart from the commands so each of them gains ``--data`` with a two-line change. Nothing here
imports TensorFlow at module level.
"""

import click

__all__ = ["data_option", "samples_option", "load_dataset", "add_activations"]


def data_option(help_text):
    """``--data DATA`` with the given help."""
    return click.option("--data", "data", default=None, metavar="DATA", help=help_text)


def samples_option(function):
    return click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
                        help="Inputs drawn (seeded) from DATA's training split and run through the model once.")(function)


def load_dataset(spec, model):
    """Load ``--data`` with the shared loader and check it against the model.

    Returns
    -------
    analysis.data.Dataset
    """
    from analysis.data import load_data
    from analysis.data_checks import check_data_against_model, fit_to_model

    dataset = fit_to_model(load_data(spec), model)
    check_data_against_model(dataset, model)
    return dataset


def add_activations(result, model, dataset, *, samples, layers, metric, threshold, progress=None):
    """Run ``samples`` training inputs through the model and attach dead neurons and activation groups.

    Parameters
    ----------
    result : analysis.ModelAnalysis
        Updated in place: each layer gains ``dead`` and ``activation`` (see
        :func:`analysis.attach_activations`).
    model : keras.Model
    dataset : analysis.data.Dataset
        Its training split is sampled.
    samples : int
    layers : list of str or None
    metric, threshold
        As for the weight analysis, so both views use the same rule.
    """
    from analysis.activations.analyze import analyze_activations, attach_activations

    activations = analyze_activations(model, dataset.x_train, layers=layers, samples=samples, metric=metric,
                                      threshold=threshold, progress=progress)
    return attach_activations(result, activations, source=f"{dataset.source} (training split)")


def check_merge_mode(mode, data, threshold, max_error):
    """The options ``merge --mode`` allows together; one clear line when they do not fit."""
    from analysis.errors import WeightkitError

    if mode == "data":
        if not data:
            raise WeightkitError("--mode data: needs --data DATA; its training split calibrates the merge and its "
                                 "held-out split measures accuracy.")
        if threshold is not None:
            raise WeightkitError("--threshold: only for --mode weights; with --mode data give --ratio F or "
                                 "--max-error E.")
    elif max_error is not None:
        raise WeightkitError("--max-error: only for --mode data (add --mode data --data DATA); --mode weights takes "
                             "--threshold or --ratio.")


def data_merge(model, dataset, *, ratio, max_error, layers, samples, progress=None):
    """Data-aware merge calibrated on the training split of ``dataset`` (never its held-out split).

    Returns
    -------
    merged : keras.Model
    report : compress.merge.by_data.DataMergeReport
    """
    from compress.merge.by_data import merge_by_data

    merged, report = merge_by_data(model, dataset.x_train, ratio=ratio, max_error=max_error, layers=layers,
                                   samples=samples, progress=progress)
    report.calibration = f"{dataset.source} (training split)"
    return merged, report
