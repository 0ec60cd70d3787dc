"""One verb for both ways of merging: :func:`merge_neurons` with ``mode="weights"`` or ``mode="data"``.

Attention heads merge first (:mod:`weightkit.compress.merge.heads`, then the query heads inside composite layers,
:mod:`weightkit.compress.merge.composite_heads`; the same mode and budget; ``heads=False`` skips this pass alone),
then the neurons of the model that gives, then the FFNs inside composite layers
(:mod:`weightkit.compress.merge.composites`); one report holds all three
(:mod:`weightkit.compress.merge.reporting.heads`).
"""

import inspect

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.data.inputs import as_dataset, as_inputs, as_model, is_path
from weightkit.analysis.errors import WeightkitError
from weightkit.compress.merge.by_data import DEFAULT_MAX_ERROR, calibration_count, merge_by_data
from weightkit.compress.merge.by_weights import merge_redundant
from weightkit.compress.merge.composite_heads import merge_composite_heads
from weightkit.compress.merge.composites import ffn_layer_names, merge_composite_ffns
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE
from weightkit.compress.merge.heads import GLOBAL_MAX_HEADS, auto_allocation, merge_heads_by_data, merge_heads_by_weights
from weightkit.compress.merge.reporting.heads import attach_heads

__all__ = ["MERGE_MODES", "merge_neurons"]


def _refuse_data(data):
    if data is not None:
        raise WeightkitError(
            "data: only for mode='data', where it calibrates the merge; mode='weights' compares weight rows "
            "and needs no data (pass held-out data as evaluate_on= to measure the merge)."
        )


def _need_data(data):
    if data is None:
        raise WeightkitError(
            "mode='data': needs data (a Dataset, whose training split calibrates the merge, an array of "
            "training inputs, or a data specification such as sklearn:digits)."
        )


def _by_weights(model, data, **options):
    _refuse_data(data)
    return merge_redundant(model, **options)


def _by_data(model, data, **options):
    _need_data(data)
    return merge_by_data(model, data, **options)


#: ``mode -> (dispatcher, the merge function whose keyword options it takes)``.
MERGE_MODES = {"weights": (_by_weights, merge_redundant), "data": (_by_data, merge_by_data)}


def _invalid_budget(options, other):
    """Whether the neuron merge will refuse the budget (a ratio out of (0, 1), or both it and ``other``): it names them."""
    ratio = options.get("ratio")
    return ratio is not None and (options.get(other) is not None or not 0.0 < float(ratio) < 1.0)


def _heads_by_weights(model, data, options, allocation="uniform"):
    _refuse_data(data)
    if _invalid_budget(options, "threshold"):
        return model, [], []
    return merge_heads_by_weights(model, metric=options.get("metric", "pearson"), threshold=options.get("threshold"),
                                  ratio=options.get("ratio"), layers=options.get("layers"),
                                  include_bias=options.get("include_bias", True))


def _heads_by_data(model, data, options, allocation="uniform"):
    _need_data(data)
    ratio, max_error = options.get("ratio"), options.get("max_error")
    if _invalid_budget(options, "max_error"):
        return model, [], []
    seed = options.get("seed", 0)
    x, _ = as_inputs(data, model, seed=seed)
    return merge_heads_by_data(model, x, ratio=ratio, max_error=DEFAULT_MAX_ERROR if ratio is None and max_error is None
                               else max_error, layers=options.get("layers"),
                               samples=calibration_count(n_samples(x), options.get("samples")), seed=seed,
                               ridge=options.get("ridge", DEFAULT_RIDGE), allocation=allocation,
                               progress=options.get("progress"))


#: ``mode -> the heads merge run before the neurons``: ``(model, data, options) -> (model, entries, skipped)``.
HEADS_MODES = {"weights": _heads_by_weights, "data": _heads_by_data}


def _neuron_layers(layers, model):
    """``--layers`` for the neuron merge: an attention entry ``name/heads`` stands for its layer, a composite
    FFN's path (``decoder_block_0/ffw_gating``, as :func:`~weightkit.compress.merge.composites.ffn_units` names
    its units) for its composite layer."""
    if layers is None:
        return None
    composite = ffn_layer_names(model) if any("/" in name for name in layers) else {}
    return list(dict.fromkeys(composite.get(name, name.split("/heads")[0]) for name in layers))


def _heads_allocation(heads, mode, options):
    """The heads pass's allocation (``"auto"``, ``"uniform"`` or ``"global"``) for ``merge_neurons(heads=...)``;
    refuses a bad one. ``"auto"`` is resolved on the model (:func:`_resolved`)."""
    if heads is True or heads is False or heads == "auto":
        return "auto"
    if heads == "uniform":
        return "uniform"
    if heads != "global":
        raise WeightkitError(f"Invalid value for heads. Expected True, False, 'auto', 'uniform' or 'global'. "
                             f"Received: heads={heads!r}.")
    if mode != "data" or options.get("ratio") is None:
        raise WeightkitError("heads='global' spreads a ratio over all the model's attention heads by their effect "
                             "on the outputs: use it with mode='data' and ratio=.")
    return "global"


def _resolved(allocation, model, mode, options):
    """``"auto"`` made ``"global"`` (a data merge by ratio over a few tens of heads: :func:`auto_allocation`) or
    ``"uniform"``, and the note that says so; ``(allocation, notes)``."""
    if allocation != "auto":
        return allocation, []
    if mode != "data" or options.get("ratio") is None:
        return "uniform", []
    chosen = auto_allocation(model, options.get("layers"))
    return chosen, ([f"heads: the ratio is spread over all the model's attention heads (global allocation, as "
                     f"heads='global'; a model of at most {GLOBAL_MAX_HEADS} heads in several attention layers)"]
                    if chosen == "global" else [])


def _check_options(mode, function, options):
    allowed = [name for name, parameter in inspect.signature(function).parameters.items()
               if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "evaluate_on"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise WeightkitError(
            f"mode={mode!r}: no option {', '.join(map(repr, unknown))}; it takes {', '.join(allowed)} "
            f"(see weightkit.compress.merge.{function.__name__})."
        )


def merge_neurons(model, mode="weights", data=None, *, evaluate_on=None, heads=True, **options):
    """Merge a model's redundant neurons and attention heads; return a genuinely smaller model with its report.

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
    heads : bool or {"auto", "uniform", "global"}, default=True
        First merge the heads of every ``keras.layers.MultiHeadAttention`` with the same mode and
        budget (:mod:`weightkit.compress.merge.heads`): by weights, heads that duplicate another
        exactly; by data, ``round(ratio · heads)`` heads of each layer (or within ``max_error``)
        rebuilt in the kept heads' value and output projections (``"uniform"``). True is ``"auto"``:
        ``"global"`` for a data merge by ``ratio`` of a model whose attention layers are several and hold at most
        :data:`~weightkit.compress.merge.heads.GLOBAL_MAX_HEADS` heads in all (a note says so), ``"uniform"``
        otherwise. ``"global"``
        (``mode="data"`` with ``ratio``): ``round(ratio · all heads)`` of the model, removed one at a
        time where the model's outputs move least
        (:func:`weightkit.compress.merge.heads.merge_heads_by_data`, ``allocation="global"``; a
        merged model is run for every head it tries: all of them at the first step, lazily after). The query heads
        of grouped-query attention inside composite layers (keras-hub's Gemma blocks) merge in this pass too, the
        same number from every block and key/value group, ``ratio`` needed by data, whatever the allocation
        (:func:`weightkit.compress.merge.composite_heads.merge_composite_heads`). Each appears in
        ``report.layers`` as ``name/heads``, its heads counted as neurons. False: only this heads pass is skipped (every attention layer is then
        left alone, with its reason); the neurons and the FFNs inside composite layers (keras-hub's
        TransformerEncoder, TransformerDecoder, Gemma's blocks:
        :func:`weightkit.compress.merge.composites.merge_composite_ffns`) merge as with True.
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
    allocation = _heads_allocation(heads, mode, options)
    loaded = as_model(model, unsafe=options.get("unsafe", False))
    original = loaded.model
    if is_path(data):  # a specification is loaded once, for the heads and the neurons
        data = as_dataset(data, original, seed=options.get("seed", 0))
    allocation, allocation_notes = _resolved(allocation, original, mode, options) if heads else ("uniform", [])
    headed, entries, skipped = (HEADS_MODES[mode](original, data, options, allocation) if heads
                                else (original, [], []))
    if heads and not _invalid_budget(options, "threshold" if mode == "weights" else "max_error"):
        headed, more, left = merge_composite_heads(headed, mode, data, options)  # Gemma's query heads
        entries, skipped = entries + more, skipped + left
    options["layers"] = _neuron_layers(options.get("layers"), headed)
    merged, report = dispatch(headed, data, **options)
    merged = merge_composite_ffns(merged, report, mode, data, options)  # FFNs inside composite layers
    attach_heads(report, entries, skipped, original, merged)
    report.notes.extend(loaded.notes + allocation_notes)
    if evaluate_on is not None:
        report.evaluate(original, merged, evaluate_on)
    return merged, report
