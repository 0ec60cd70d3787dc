"""Data-aware merging of a Keras model: fit each layer's relation on calibration activations, fold it.

For every mergeable layer (see :func:`weightkit.compress.merge.planning.plan.find_merge_sites`: Dense/Conv producers
whose consumers are Dense or Conv layers, through activations, BatchNormalization, dropout, pooling
and Flatten), the activations of the *tap* (the last per-channel tensor before the consumers: the
layer's own output after its activation, or the BatchNormalization/pooling output after it) are
collected on a seeded calibration sample in one batched pass. :func:`weightkit.compress.merge.fitting.data_fit.plan_data_merge`
chooses the neurons to remove and rebuilds each from the kept ones (``a_j ≈ Σ β_jk a_k + c_j``);
:func:`weightkit.compress.apply_relations` folds that into the consumers and rebuilds a smaller model.

Because the relation is fitted on the values the consumer actually reads, this works for any
activation function and for dead neurons (β = 0, c = their constant). Conv layers are fitted on
a sample of positions per input (see :func:`weightkit.analysis.activations.collect_layer_outputs`); an
intercept folded into a zero-padding convolution's bias is exact only away from the borders.

By default (``refit=True``, :mod:`weightkit.compress.merge.refit`) each tensor read is fitted on the
model merged so far, in topological order, on every calibration input up to
:data:`MAX_CALIBRATION_SAMPLES`. With ``refit=False`` (the one-shot fit, the default before issue 28)
all layers are fitted on the original model's activations in one pass and each relation is folded
independently: 3-10x faster (0.6 s against 3.1 s on the residual digits CNN), about as good on
plain MLPs and recurrent layers (which the refit leaves one-shot), far worse on residual networks
(benchmarks/bench_merge_default.py).
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.activations.collect import collect_layer_outputs
from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.data.inputs import as_inputs, as_model
from weightkit.analysis.model_analysis import collect_entries
from weightkit.compress.merge.applying.apply_group import apply_group
from weightkit.compress.merge.applying.input_rows import consumer_kernel
from weightkit.compress.merge.applying.math import Relation
from weightkit.compress.merge.applying.rebuild import WeightState, find_layer, rebuild_model
from weightkit.compress.merge.data_options import DEFAULT_MAX_ERROR, DataMergeOptions
from weightkit.compress.merge.data_work import sort_work
from weightkit.compress.merge.fitting.batchnorm_stats import reestimate_batchnorm
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE, plan_data_merge
from weightkit.compress.merge.group_data import merge_group_by_data
from weightkit.compress.merge.planning.groups import plan_groups
from weightkit.compress.merge.planning.plan import selected_sites
from weightkit.compress.merge.recurrent import merge_recurrent_by_data
from weightkit.compress.merge.refit import refit_groups
from weightkit.compress.merge.reporting.data_report import DataMergeReport, LayerDataMerge
from weightkit.compress.merge.reporting.report import record_params

__all__ = ["DEFAULT_MAX_ERROR", "MAX_CALIBRATION_SAMPLES", "DataMergeReport", "LayerDataMerge", "calibration_count",
           "consumer_weights", "merge_by_data"]

#: Calibration inputs when ``samples`` is not given: every training input, up to this many. Measured
#: on the residual digits CNN (refit, 50% removed, load ~9): 500, 1,000 and all 1,438 training
#: images gave 0.9721, 0.9805 and 0.9694 held-out accuracy (differences of 1-4 of 359 digits) while
#: the merge's time grew in proportion (5.7, 9.0, 15.1 s); see benchmarks/bench_merge_default.py.
MAX_CALIBRATION_SAMPLES = 2048


def calibration_count(available, samples=None):
    """How many calibration inputs a merge draws: ``samples``, or all up to :data:`MAX_CALIBRATION_SAMPLES`."""
    return int(min(int(available), MAX_CALIBRATION_SAMPLES if samples is None else int(samples)))


def _numpy(variable):
    keras = import_keras()
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def consumer_weights(model, site):
    """All weights leaving each of a producer's channels, one row per channel.

    Parameters
    ----------
    model : keras.Model
    site : MergeSite

    Returns
    -------
    weights : ndarray of shape (n_neurons, n_outputs)
        Dense consumers: their kernel; Conv: ``(*k, n, out)`` with the channel axis first, each
        kernel position a block of outputs; after a Flatten: each flattened position a block.
        Several consumers side by side.
    """
    blocks = []
    n = site.n_neurons
    for consumer in site.consumers:
        kernel = consumer_kernel(find_layer(model, consumer.layer))  # a wrapper's or recurrent layer's too
        if consumer.layout == "dense":
            block = kernel.reshape(n, -1)
        elif consumer.layout == "conv":
            block = np.moveaxis(kernel, -2, 0).reshape(n, -1)
        else:  # flatten: (positions * n, out), channels fastest
            block = kernel.reshape(consumer.positions, n, -1).transpose(1, 0, 2).reshape(n, -1)
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def merge_by_data(model, data, *, ratio=None, max_error=None, layers=None, samples=None, positions=16,
                  seed=0, ridge=DEFAULT_RIDGE, weigh_by_consumer=True, refit=True, allocation="uniform",
                  reestimate_bn=False, evaluate_on=None, progress=None, unsafe=False):
    """Remove neurons whose activations the other neurons of their layer rebuild, on calibration data.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Sequential or Functional with one input; not modified. A path is loaded with
        :func:`weightkit.analysis.load_model` (safe mode unless ``unsafe``).
    data : Dataset, ndarray of shape (n_inputs, *input_shape), str or os.PathLike
        Calibration inputs: a dataset's (or data specification's) *training* split, or an array
        (use training inputs; evaluate on held-out data with ``evaluate_on``).
    ratio : float in (0, 1), default=None
        Remove ``round(ratio · n)`` neurons of each mergeable layer.
    max_error : float in [0, 1], default=None
        Remove neurons of each layer while at most this fraction of its consumers' input variance
        is lost on the calibration sample. 0.001 when neither is given.
    layers : list of str, default=None
        Merge only these layers.
    samples : int, default=None
        Calibration inputs (seeded sample of ``x``); None: all of them up to
        :data:`MAX_CALIBRATION_SAMPLES`.
    positions : int, default=16
        Positions sampled per input for conv layers.
    seed : int, default=0
    ridge : float, default=1e-6
        Relative ridge of the least squares (see :func:`weightkit.compress.merge.fitting.data_fit.plan_data_merge`).
    weigh_by_consumer : bool, default=True
        Choose removals by the error in the consumers' pre-activations (their weights) rather
        than in the layer's own activations.
    refit : bool, default=True
        Sequential refit (:mod:`weightkit.compress.merge.refit`): process the tensors the consumers read in
        topological order and fit each on the model merged so far, rebuilding the original
        model's consumer inputs from the kept channels (one probe pass per tensor read). When
        False (one-shot), every relation is fitted on the original model's activations (one pass):
        3-10x faster, far worse on residual networks (the residual digits CNN at 50%: 0.62-0.83 against
        0.97-0.98 held-out accuracy), about equal on plain MLPs.
    allocation : {"uniform", "global"}, default="uniform"
        With ``refit`` and ``ratio``: remove ``round(ratio · n)`` channels of every group, or the
        same total spread over the groups by the share of their error each removal costs
        (:func:`weightkit.compress.merge.fitting.refit_fit.allocate_removals`).
    reestimate_bn : bool, default=False
        After merging, set every BatchNormalization's moving statistics to the merged model's
        exact statistics on the calibration sample (:func:`weightkit.compress.merge.fitting.batchnorm_stats.reestimate_batchnorm`).
    evaluate_on : Dataset, ndarray, str or os.PathLike, default=None
        Held-out data to compare the merged model with the original on (a dataset's test split,
        see :func:`weightkit.compress.merge.reporting.report.evaluate_merge`); fills ``report.evaluation``.
    progress : callable, default=None
        Called as ``progress(done, total, name)``.
    unsafe : bool, default=False
        Load a model path with its embedded code.

    Returns
    -------
    model : keras.Model
        Rebuilt with smaller layers, names kept, uncompiled.
    report : DataMergeReport
        ``report.calibration`` names the training split of a dataset or specification.

    Examples
    --------
    >>> small, report = merge_by_data(model, dataset, ratio=0.5, evaluate_on=dataset)   # doctest: +SKIP
    >>> [(layer.name, layer.n_removed, layer.min_r2) for layer in report.layers]   # doctest: +SKIP
    """
    options = DataMergeOptions(ratio, max_error, layers, samples, positions, seed, ridge, weigh_by_consumer, refit,
                               allocation, reestimate_bn)
    loaded = as_model(model, unsafe=unsafe)
    model = loaded.model
    x, calibration = as_inputs(data, model, seed=seed)
    options.samples = calibration_count(n_samples(x), samples)
    collect_entries(model, layers)  # validates --layers names against the analyzable layers
    plan = plan_groups(model)
    report = DataMergeReport(model=model.name, ratio=options.ratio, max_error=options.max_error, samples=0,
                             positions=int(positions), ridge=float(ridge), seed=int(seed),
                             params_before=int(model.count_params()), calibration=calibration)
    work = sort_work(model, plan, selected_sites(plan.sites, layers), report, refit)
    activations = collect_layer_outputs(model, x, work.tap_layers, samples=options.samples, seed=seed,
                                        summary="positions", positions=positions,
                                        progress=progress) if work.tap_layers else {}
    report.samples = int(min(int(options.samples), n_samples(x)))
    state = WeightState(model)
    _merge(model, plan, work, state, x, activations, options, report, progress)
    merged = rebuild_model(model, state)
    if reestimate_bn:
        names, passes = reestimate_batchnorm(merged, x, samples=options.samples, seed=seed)
        if names:
            report.notes.append(f"BatchNormalization statistics re-estimated on the calibration sample: "
                                f"{len(names)} layers, {passes} passes")
    record_params(report, model, merged)
    report.notes.extend(loaded.notes)
    if evaluate_on is not None:
        report.evaluate(model, merged, evaluate_on)
    return merged, report


def _merge(model, plan, work, state, x, activations, options, report, progress):
    """Every path of the merge, into ``state`` and ``report``: plain sites, the refit, groups, recurrent layers."""
    fit = options.fit
    relations = {}
    total = len(work.targets) + len(work.groups)
    for index, site in enumerate(work.targets):
        if progress is not None:
            progress(index, total, site.layer)
        layer_report, relation = _plan_layer(model, site, activations[site.tap], **fit)
        report.layers.append(layer_report)
        if relation is not None:
            relations[site.layer] = relation
    if work.refitted:
        entries, passes = refit_groups(model, plan.graph, work.refitted, state, x, samples=options.samples,
                                       positions=options.positions, seed=options.seed, allocation=options.allocation,
                                       progress=progress, **fit)
        report.layers.extend(entries)
        report.notes.append(f"sequential refit: {passes} probe passes")
    for name, relation in relations.items():  # after the refit: these cut at once, the refit defers its cuts
        apply_group(state, plan.sites[name].channel_group(), relation, at_once=True)
    for index, group in enumerate(work.groups):
        if progress is not None:
            progress(len(work.targets) + index, total, group.name)
        report.layers.append(merge_group_by_data(plan, group, state, activations, work.taps[id(group)], **fit))
    for unit_site in work.recurrent:
        report.layers.append(merge_recurrent_by_data(model, plan.graph, unit_site, state, x, samples=options.samples,
                                                     seed=options.seed, **fit))
    order = {name: index for index, name in enumerate(plan.sites)}  # model order, whichever path merged a layer
    report.layers.sort(key=lambda entry: order.get(entry.name, len(order)))


def _plan_layer(model, site, sample, *, ratio, max_error, ridge, weigh_by_consumer):
    n = site.n_neurons
    layer_report = LayerDataMerge(name=site.layer, type=site.type, tap=site.tap,
                                  consumers=[c.layer for c in site.consumers], neurons_before=n, neurons_after=n,
                                  rows=int(sample.values.shape[1]))
    if ratio is not None:
        layer_report.requested = int(min(n - 1, round(ratio * n)))
    if site.tap != site.layer:
        layer_report.notes.append(f"fitted on the output of {site.tap}")
    if any(c.zero_padded for c in site.consumers):
        layer_report.notes.append("intercepts folded into a zero-padding convolution's bias are exact only away "
                                  "from the borders")
    if not np.isfinite(sample.values).all():
        layer_report.notes.append("activations contain NaN or Inf on the calibration sample: left alone")
        return layer_report, None
    if sample.values.shape[1] < 2:
        layer_report.notes.append("fewer than 2 calibration rows: left alone")
        return layer_report, None
    weights = consumer_weights(model, site) if weigh_by_consumer else None
    plan = plan_data_merge(sample.values.T, ratio=ratio, max_error=None if ratio is not None else max_error,
                           output_weights=weights, ridge=ridge)
    dead = set(plan.dead.tolist())
    layer_report.removed = [{"neuron": int(j), "r2": round(float(r2), 6), "dead": int(j) in dead}
                            for j, r2 in zip(plan.remove, plan.r2)]
    layer_report.error = float(plan.error)
    layer_report.neurons_after = int(plan.keep.size)
    relation = Relation(plan.remove.astype(np.int64), plan.keep.astype(np.int64), plan.beta, plan.intercept)
    return layer_report, relation
