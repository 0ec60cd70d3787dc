"""Merge the FFN neurons inside composite layers (keras-hub's TransformerEncoder, Gemma's gated MLP).

:func:`merge_composite_ffns` runs after the neuron merge of the rest of the model
(:func:`weightkit.compress.merge.merge_neurons`), which leaves composite layers alone. For each
composite whose kind describes its FFN (:func:`weightkit.analysis.kinds.composites.composite_ffn`):

- by weights, the intermediate neurons' incoming rows (a gated MLP: gate and up rows side by side, one
  coupled neuron) are compared as any layer's, and each removed neuron's row in the down projection
  is folded into its twin's with the fitted coefficient (:mod:`~weightkit.compress.merge.applying.math`);
- by data, the intermediate activations (the down projection's input: after the activation, or after
  gate * up) are probed on calibration inputs and each removed neuron is rebuilt from the kept ones by
  least squares (:func:`~weightkit.compress.merge.fitting.data_fit.plan_data_merge`), folded into the
  down projection's rows (its bias takes the intercept; without a bias the fit has no intercept).

The composite is re-created with the smaller width (``intermediate_dim``); a model that builds its
blocks from its own config (GemmaBackbone) is re-created with it, all its blocks cut to one width.

``shrink`` and ``merge --max-drop`` allocate their budget over the same FFNs as units (:func:`ffn_units`,
merged by :func:`merge_ffn_unit`, reported by :func:`ffn_entries` and :func:`attach_ffns`), beside the query heads
of the same composites (:func:`weightkit.compress.merge.composite_heads.head_units`).
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.data.inputs import as_inputs
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.numeric.groups import DEFAULT_THRESHOLDS, find_groups
from weightkit.analysis.numeric.matrices import mad_matrix, pearson_matrix
from weightkit.compress.merge.applying.composite_ffn import ffn_sites
from weightkit.compress.merge.applying.composite_rebuild import rebuild_with
from weightkit.compress.merge.applying.math import (
    Relation,
    cosine_matrix,
    greedy_merges,
    group_merges,
    relation_from_merges,
)
from weightkit.compress.merge.by_data import DEFAULT_MAX_ERROR, calibration_count
from weightkit.compress.merge.fitting.composite_probe import probe_intermediates
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE, plan_data_merge
from weightkit.compress.merge.reporting.data_report import LayerDataMerge
from weightkit.compress.merge.reporting.report import LayerMerge

__all__ = ["attach_ffns", "ffn_entries", "ffn_layer_names", "ffn_units", "merge_composite_ffns", "merge_ffn_unit",
           "owner_units"]

_EXACT_TOLERANCE = 1e-4


def _selected(sites, layers):
    """The sites ``layers`` names; a site whose owner builds all its blocks at one width brings its siblings."""
    if layers is None:
        return sites
    wanted = set(layers)
    named = [s for s in sites if s.name in wanted or wanted & set(s.paths + [s.consumer_path])]
    chosen, owners = {id(s) for s in named}, {id(s.owner) for s in named if s.owner is not None}
    return [s for s in sites if id(s) in chosen or (s.owner is not None and id(s.owner) in owners)]


def ffn_units(model):
    """``{unit: sites}``: the composite FFNs a budget allocates over (``shrink``, ``merge --max-drop``), in model order.

    One unit per FFN, named by its first producer's path (``enc0/feedforward_intermediate_dense``). The
    blocks of a model that builds them all at one width (keras-hub's GemmaBackbone) are one unit, named
    by its first block's FFN (``decoder_block_0/ffw_gating``): its neurons are each block's width, and
    removing ``k`` of them removes ``k`` from every block. An FFN (or a backbone with one) that cannot be
    cut (:meth:`~weightkit.compress.merge.applying.composite_ffn.FfnSite.problem`) is no unit.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    dict of str to list of FfnSite
    """
    return owner_units(ffn_sites(model), lambda site: site.paths[0])


def owner_units(sites, name_of):
    """``{unit: sites}``: the sites of one owner (a model building all its blocks from one config) as one unit.

    The one grouping behind :func:`ffn_units` and :func:`~weightkit.compress.merge.composite_heads.head_units`.

    Parameters
    ----------
    sites : list of FfnSite or HeadSite
        In model order; each has ``owner`` (None: the site is its own unit) and ``problem()``.
    name_of : callable
        ``name_of(site) -> str``: a unit is named by its first site's.

    Returns
    -------
    dict of str to list
        In model order; a unit with a site that cannot be cut (its ``problem()`` is not None) left out, and so
        is a name two owners share (two backbones whose blocks have the same names: a budget that names a unit
        could not tell them apart).
    """
    units, keys, owners = {}, {}, {}
    for site in sites:
        key = id(site) if site.owner is None else id(site.owner)
        name = keys.setdefault(key, name_of(site))
        units.setdefault(name, []).append(site)
        owners.setdefault(name, set()).add(key)
    return {name: found for name, found in units.items()
            if len(owners[name]) == 1 and all(s.problem() is None for s in found)}


def ffn_layer_names(model):
    """``{path: composite layer}``: each FFN sublayer's path (a unit's name among them) and the layer it is in.

    ``--layers decoder_block_0/ffw_gating`` (a unit of :func:`ffn_units`, a producer or the down
    projection) picks that composite's FFN; the neuron merge, which checks names against whole
    layers, reads it as the composite layer (``decoder_block_0``), which it leaves alone.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    dict of str to str
    """
    return {path: site.name for site in ffn_sites(model) for path in site.paths + [site.consumer_path]}


def merge_ffn_unit(model, x, name, *, ratio, samples=None, seed=0):
    """Merge ``round(ratio · width)`` intermediate neurons by data out of one unit of :func:`ffn_units`.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    x : ndarray of shape (n, ...), or a list of them
        Calibration inputs.
    name : str
        A key of ``ffn_units(model)``.
    ratio : float in [0, 1)
    samples : int, default=None
        Calibration inputs probed (all, up to :func:`~weightkit.compress.merge.by_data.calibration_count`'s cap).
    seed : int, default=0

    Returns
    -------
    model : keras.Model
        A smaller copy (``model`` itself when nothing was removed).
    entries : list of LayerDataMerge
        One per FFN of the unit, as :func:`merge_composite_ffns` reports them.

    Raises
    ------
    WeightkitError
        When ``name`` is no unit of ``model``.
    """
    units = ffn_units(model)
    if name not in units:
        raise WeightkitError(f"{name}: no composite FFN unit of model {model.name!r}; its units are "
                             f"{sorted(units)}.")
    found = _relations(units[name], "data", model, x, {"ratio": ratio, "samples": samples, "seed": seed})
    return _apply(model, found), [entry for _, _, entry in found]


def ffn_entries(sites, removed):
    """Report entries of one unit's FFNs that lost ``removed`` neurons each (a budget's summary has no plan).

    Returns
    -------
    list of LayerDataMerge
    """
    entries = []
    for site in sites:
        entry = LayerDataMerge(tap=site.paths[0], **_entry_fields(site))
        entry.neurons_after = site.n_neurons - int(removed)
        entry.params_before, entry.params_after = site.params(site.n_neurons), site.params(entry.neurons_after)
        entries.append(entry)
    return entries


def attach_ffns(report, original, merged, entries):
    """Place FFN ``entries`` in ``report`` as :func:`merge_composite_ffns` does: model order, parameters."""
    _record(report, original, merged, entries, {entry.name.split("/")[0] for entry in entries})


def _entry_fields(site):
    return dict(name=site.paths[0], type=type(site.producers[0]).__name__, consumers=[site.consumer_path],
                neurons_before=site.n_neurons, neurons_after=site.n_neurons,
                producers=site.paths if site.ffn.gated else [],
                members=site.paths + [site.consumer_path] if site.ffn.gated else [])


def _similarity(rows, metric):
    if metric == "cosine":
        return cosine_matrix(rows), "pearson"
    rows = rows.astype(np.float32)
    return (pearson_matrix(rows) if metric == "pearson" else mad_matrix(rows)), metric


def _by_weights(site, options):
    """``(merges in order, LayerMerge)`` of one FFN by its weight rows."""
    metric, ratio = options.get("metric", "pearson"), options.get("ratio")
    tolerance = options.get("twin_tolerance", 0.05)
    rows = site.producer_rows()
    compared = rows
    if not options.get("include_bias", True):
        width = rows.shape[1] // len(site.producers)
        compared = np.delete(rows, [width * (i + 1) - 1 for i in range(len(site.producers))], axis=1)
    entry = LayerMerge(activation=site.activation(), rule=site.requirement(), **_entry_fields(site))
    matrix, group_metric = _similarity(compared, metric)
    if ratio is not None:
        entry.requested = round(float(ratio) * site.n_neurons)
        merges, _ = greedy_merges(rows, matrix, entry.requested, entry.rule, higher_is_similar=metric != "mad",
                                  twin_tolerance=tolerance)
        refused = []
    else:
        threshold = options.get("threshold")
        threshold = (0.9 if metric == "cosine" else DEFAULT_THRESHOLDS[metric]) if threshold is None else threshold
        merges, refused = group_merges(rows, find_groups(matrix, group_metric, threshold), entry.rule, tolerance)
        merges.sort(key=lambda m: m.residual)
    entry.left_alone = [{"neuron": j, "keeper": k, "reason": reason} for j, k, reason in refused]
    return merges, entry


def _weights_relation(site, merges, entry):
    entry.merges = [{"removed": m.removed, "keeper": m.keeper, "alpha": round(m.alpha, 6),
                     "residual": float(f"{m.residual:.3g}"), "exact": bool(m.residual <= _EXACT_TOLERANCE)}
                    for m in merges]
    return relation_from_merges(site.n_neurons, merges)


def _plan(site, values, options, n_remove=None):
    """The data plan of one FFN; without a bias in the down projection, fitted with no intercept."""
    if not site.consumer_has_bias:  # [a; -a] has zero mean: the centred fit is the fit through the origin
        values = np.concatenate([values, -values])
    ratio, max_error = options.get("ratio"), options.get("max_error")
    budget = ({"n_remove": n_remove} if n_remove is not None else {"ratio": ratio} if ratio is not None
              else {"max_error": DEFAULT_MAX_ERROR if max_error is None else max_error})
    weights = site.consumer_rows() if options.get("weigh_by_consumer", True) else None
    return plan_data_merge(values, output_weights=weights, ridge=options.get("ridge", DEFAULT_RIDGE), **budget)


def _data_entry(site, plan, values, options):
    tap = f"{site.consumer_path} (its input)" if site.ffn.gated else site.paths[0]  # act(gate) * up: no sublayer's
    entry = LayerDataMerge(tap=tap, rows=int(values.shape[0]), **_entry_fields(site))
    if options.get("ratio") is not None:
        entry.requested = int(min(site.n_neurons - 1, round(float(options["ratio"]) * site.n_neurons)))
    entry.notes.append(f"fitted on the input of {site.consumer_path}")
    if not site.consumer_has_bias:
        entry.notes.append("fitted without an intercept (the down projection has no bias): R² of the uncentred "
                           "activations")
    dead = set(plan.dead.tolist())
    entry.removed = [{"neuron": int(j), "r2": round(float(r2), 6), "dead": int(j) in dead}
                     for j, r2 in zip(plan.remove, plan.r2)]
    entry.error = float(plan.error)
    return entry


def _relations(sites, mode, merged, data, options):
    """``[(site, relation, entry)]`` for every site, each owner's blocks cut to one width."""
    found = []
    if mode == "data":
        seed = options.get("seed", 0)
        x, _ = as_inputs(data, merged, seed=seed)
        samples = calibration_count(n_samples(x), options.get("samples"))
        probed = probe_intermediates(merged, sites, x, samples=samples, positions=options.get("positions", 16),
                                     seed=seed)
        plans = {site.name: _plan(site, probed[site.name], options) for site in sites}
        for owner in {id(s.owner): s.owner for s in sites if s.owner is not None}.values():
            shared = [s for s in sites if s.owner is owner]
            fewest = min(plans[s.name].n_removed for s in shared)
            for site in shared:
                if plans[site.name].n_removed != fewest:
                    plans[site.name] = _plan(site, probed[site.name], options, n_remove=fewest)
        for site in sites:
            plan = plans[site.name]
            shift = plan.intercept if site.consumer_has_bias else np.zeros_like(plan.intercept)  # 0 up to rounding
            relation = Relation(plan.remove.astype(np.int64), plan.keep.astype(np.int64), plan.beta, shift)
            found.append((site, relation, _data_entry(site, plan, probed[site.name], options)))
        return found
    merged_pairs = {site.name: _by_weights(site, options) for site in sites}
    for owner in {id(s.owner): s.owner for s in sites if s.owner is not None}.values():
        shared = [s.name for s in sites if s.owner is owner]
        fewest = min(len(merged_pairs[name][0]) for name in shared)
        for name in shared:
            merges, entry = merged_pairs[name]
            if len(merges) > fewest:
                entry.notes.append(f"kept to {fewest} merges: {owner.name} builds all its blocks at one width")
            merged_pairs[name] = (merges[:fewest], entry)
    for site in sites:
        merges, entry = merged_pairs[site.name]
        found.append((site, _weights_relation(site, merges, entry), entry))
    return found


def merge_composite_ffns(merged, report, mode, data, options):
    """Merge the FFN neurons of every composite layer of ``merged``; the report gains their entries.

    Parameters
    ----------
    merged : keras.Model
        The model the neuron merge gave (its composites untouched); not modified.
    report : BaseMergeReport
        Updated in place: one entry per FFN named by its first producer's path
        (``enc0/feedforward_intermediate_dense``; a gated MLP lists gate and up as its group), the
        composite's refusal dropped from ``skipped``, parameter counts.
    mode : {"weights", "data"}
    data : Dataset, ndarray or None
        Calibration inputs for ``mode="data"``.
    options : dict
        :func:`weightkit.compress.merge.merge_neurons`' options: ``ratio``, ``threshold``, ``metric``,
        ``include_bias``, ``twin_tolerance``, ``layers`` (a composite's name or its sublayers' paths),
        ``max_error``, ``samples``, ``positions``, ``seed``, ``ridge``, ``weigh_by_consumer``.

    Returns
    -------
    keras.Model
        ``merged`` itself when it has no composite FFN, else a smaller copy.
    """
    sites = _selected(ffn_sites(merged), options.get("layers"))
    left = [s for s in sites if s.problem() is not None]
    sites = [s for s in sites if s.problem() is None]
    for site in left:
        report.notes.append(f"{site.name}: its FFN is left alone: {site.problem()}")
    if not sites:
        return merged
    found = _relations(sites, mode, merged, data, options)
    new = _apply(merged, found)
    _record(report, merged, new, [entry for _, _, entry in found], {site.name for site in sites})
    return new


def _apply(merged, found):
    """The model with every relation of ``found`` folded in and its composites (or owners) re-created."""
    configs, arrays = {}, {}
    for site, relation, entry in found:
        entry.neurons_after = int(relation.kept.size)
        entry.params_before, entry.params_after = site.params(site.n_neurons), site.params(entry.neurons_after)
        if relation.removed.size:
            arrays.update(site.folded(relation))
            holder = site.owner or site.layer
            config = configs.setdefault(id(holder), holder.get_config())
            config[site.ffn.config_key] = site.ffn.width_config(relation.kept.size)
    return rebuild_with(merged, configs, arrays) if configs else merged


def _record(report, merged, new, entries, names):
    """Place the entries in model order, drop the composites' refusals, count parameters."""
    keras = import_keras()
    order = {layer.name: index for index, layer in enumerate(walk_layers(merged))}
    for entry in entries:
        position = order.get(entry.name.split("/")[0], len(order))
        at = next((i for i, other in enumerate(report.layers)
                   if order.get(other.name.split("/")[0], -1) > position), len(report.layers))
        report.layers.insert(at, entry)
    report.skipped = [item for item in report.skipped if item.name not in names]
    holders = [layer for layer in merged.layers if layer.weights]
    for layer in holders:
        after = next((l for l in new.layers if l.name == layer.name), None)
        if after is not None and isinstance(after, keras.layers.Layer) and after.count_params() != layer.count_params():
            before = report.layer_params.get(layer.name, (int(layer.count_params()), 0))[0]
            report.layer_params[layer.name] = (before, int(after.count_params()))
    report.params_after = int(new.count_params())
