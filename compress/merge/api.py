"""One verb for both ways of merging: :func:`merge_neurons` with ``mode="weights"`` or ``mode="data"``."""

import inspect

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.merge.by_data import merge_by_data
from weightkit.compress.merge.by_weights import merge_redundant

__all__ = ["MERGE_MODES", "merge_neurons"]


def _by_weights(model, data, **options):
    if data is not None:
        raise WeightkitError(
            "data: only for mode='data', where it calibrates the merge; mode='weights' compares weight rows "
            "and needs no data (pass held-out data as evaluate_on= to measure the merge)."
        )
    return merge_redundant(model, **options)


def _by_data(model, data, **options):
    if data is None:
        raise WeightkitError(
            "mode='data': needs data (a Dataset, whose training split calibrates the merge, an array of "
            "training inputs, or a data specification such as sklearn:digits)."
        )
    return merge_by_data(model, data, **options)


#: ``mode -> (dispatcher, the merge function whose keyword options it takes)``.
MERGE_MODES = {"weights": (_by_weights, merge_redundant), "data": (_by_data, merge_by_data)}


def _check_options(mode, function, options):
    allowed = [name for name, parameter in inspect.signature(function).parameters.items()
               if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "evaluate_on"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise WeightkitError(
            f"mode={mode!r}: no option {', '.join(map(repr, unknown))}; it takes {', '.join(allowed)} "
            f"(see weightkit.compress.merge.{function.__name__})."
        )


def merge_neurons(model, mode="weights", data=None, *, evaluate_on=None, **options):
    """Merge a model's redundant neurons and return a genuinely smaller model with its report.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Not modified. A path is loaded with :func:`weightkit.analysis.load_model` (safe mode unless
        ``unsafe=True``).
    mode : {"weights", "data"}, default="weights"
        ``"weights"``: fold neurons whose weight rows are (scaled) copies into their twins
        (:func:`weightkit.compress.merge.merge_redundant`). ``"data"``: rebuild each removed neuron's
        activation from the kept ones by least squares on ``data``, any activation function
        (:func:`weightkit.compress.merge.merge_by_data`).
    data : Dataset, ndarray, str or os.PathLike, default=None
        ``mode="data"`` only: the calibration inputs (a dataset's training split, an array, or a
        data specification loaded for the model).
    evaluate_on : Dataset, ndarray, str or os.PathLike, default=None
        Held-out data to compare the merged model with the original on; fills
        ``report.evaluation`` (accuracy before and after, agreement, output difference).
    **options
        The keyword options of the mode's function: ``metric``, ``threshold``, ``ratio``,
        ``layers``, ``include_bias``, ``twin_tolerance`` for weights; ``ratio``, ``max_error``,
        ``layers``, ``samples`` (default: all, up to 2,048), ``positions``, ``seed``, ``ridge``,
        ``weigh_by_consumer``, ``refit`` (default True; False: the one-shot fit), ``allocation``,
        ``reestimate_bn`` for data; ``progress`` and ``unsafe`` for both.

    Returns
    -------
    model : keras.Model
        Rebuilt with smaller layers, names kept, uncompiled.
    report : MergeReport or DataMergeReport
        Both are :class:`weightkit.compress.merge.reporting.report.BaseMergeReport`: ``report.layer(name)``,
        ``report.to_dict()``, ``report.evaluation``.

    Raises
    ------
    WeightkitError
        An unknown mode (naming the allowed ones), an option the mode does not take, data
        missing for ``mode="data"`` or given to ``mode="weights"``.

    See Also
    --------
    weightkit.compress.shrink.guided_merge : a data-aware merge within an accuracy budget
        (``max_drop``) and/or with a distillation fine-tune (``fine_tune``), as ``merge --max-drop``
        and ``merge --fine-tune``.

    Examples
    --------
    >>> small, report = merge_neurons("model.keras", ratio=0.5, evaluate_on="sklearn:digits")  # doctest: +SKIP
    >>> small, report = merge_neurons(model, "data", dataset, max_error=0.001, evaluate_on=dataset)  # doctest: +SKIP
    """
    if mode not in MERGE_MODES:
        raise WeightkitError(
            f"Invalid value for mode. Expected one of {list(MERGE_MODES)}. Received: mode={mode!r}."
        )
    dispatch, function = MERGE_MODES[mode]
    _check_options(mode, function, options)
    return dispatch(model, data, evaluate_on=evaluate_on, **options)
