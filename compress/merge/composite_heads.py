"""Merge the query heads of grouped-query attention inside composite layers (keras-hub's Gemma, Mistral, Qwen3 blocks).

keras-hub's GemmaBackbone, MistralBackbone and Qwen3Backbone set ``num_query_heads``, ``num_key_value_heads`` and
``head_dim`` apart, so their blocks can be re-created with fewer query heads and the same head size
(:class:`~weightkit.analysis.kinds.composites.CompositeHeads`; a Mistral ``head_dim`` of None is written out).
A query head reads its key/value group's keys and values; the backbone builds every block from one config, so
every block keeps the same number of query heads, a multiple of the key/value heads: each block loses the same
number of query heads from every key/value group.

- **By weights**: two query heads of one key/value group whose query kernels are equal (within a relative
  ``1e-6``) attend alike and read the same values: they write the same head output, and the removed head's output
  rows fold into its twin's exactly. A scaled query kernel is no twin (the softmax does not scale). Every other
  head stays, with its reason.
- **By data** (``ratio``): per block, the output projection's input (each query head's attention-weighted values)
  is probed on calibration inputs (:mod:`~weightkit.compress.merge.fitting.composite_head_probe`), the heads to
  remove chosen greedily by the least-squares error they leave in the projection's output, the same count from
  every key/value group, and their contribution rebuilt in the kept heads' output rows
  (:func:`~weightkit.compress.merge.fitting.heads.plan_heads_fit`). Blocks are merged one after the other, each
  probed with the earlier ones merged and fitted to the original model's projection output (a sequential refit).

:func:`merge_composite_heads` returns ``(model, entries, skipped)`` as the attention-layer heads merge
(:mod:`weightkit.compress.merge.heads`) does: one ``decoder_block_0/attention/heads`` entry per block.
:func:`weightkit.compress.merge.merge_neurons` runs it after that merge.

``shrink`` and ``merge --max-drop`` allocate their budget over these heads as units (:func:`head_units`: one per
backbone, its steps the query heads removed from each key/value group), merged by :func:`merge_head_unit` (the
by-data merge) and reported by :func:`head_entries`, beside the composite FFNs' units
(:func:`weightkit.compress.merge.composites.ffn_units`).
"""

import numpy as np

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.data.inputs import as_inputs
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.results import SkippedLayer
from weightkit.compress.merge.applying.composite_heads import cut_composite_heads, head_sites
from weightkit.compress.merge.applying.composite_rebuild import rebuild_with
from weightkit.compress.merge.by_data import calibration_count
from weightkit.compress.merge.composites import owner_units
from weightkit.compress.merge.fitting.composite_head_probe import composite_head_moments
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE
from weightkit.compress.merge.fitting.heads import plan_heads_fit
from weightkit.compress.merge.reporting.heads import HeadsDataMerge, HeadsMerge

__all__ = ["head_entries", "head_units", "merge_composite_heads", "merge_head_unit"]

#: Largest ``max |q_removed − q_keeper|`` relative to the largest ``|q|`` of the block for a fold by weights.
TWIN_TOLERANCE = 1e-6
#: Inputs per eager call of the probe. Measured 2026-12-07 15:46 UTC (zoo hub_gemma, 900 inputs of 12 tokens, 2
#: shared cores): one merge of both blocks took 4.3 s at the probe's default 64, 1.7 s at 256, 1.4 s at 512, with
#: the same heads removed; each call holds ``batch × positions × heads × head_dim`` head outputs.
PROBE_BATCH = 256


def _selected(sites, layers):
    """The sites ``layers`` names (block, attention path or ``path/heads``), with their owner's other blocks."""
    if layers is None:
        return sites
    wanted = set(layers)
    named = [s for s in sites if wanted & {s.name, s.path, f"{s.path}/heads"}]
    owners = {id(s.owner) for s in named if s.owner is not None}
    return [s for s in sites if s in named or (s.owner is not None and id(s.owner) in owners)]


def _skip(site, reason):
    return SkippedLayer(f"{site.path}/heads", type(site.attention).__name__, reason)


def _per_group(ratio, site):
    """Query heads a ``ratio`` removes from each key/value group: ``round(ratio · group size)``, all but one at most."""
    return int(min(site.group_size - 1, round(float(ratio) * site.group_size)))


def _fields(site, rule=None):
    fields = dict(name=f"{site.path}/heads", type=type(site.attention).__name__,
                  consumers=[f"{site.path}/{site.sub('output').name}"], neurons_before=site.n_heads,
                  neurons_after=site.n_heads, params_before=site.params(site.n_heads))
    return fields if rule is None else dict(fields, activation="attention", rule=rule)


def _owner_note(site, per_group):
    holder = site.owner.name if site.owner is not None else site.name
    return (f"query heads {site.n_heads} → {site.n_heads - per_group * site.n_groups}: {per_group} from each "
            f"key/value group ({site.n_groups} in all; {holder} builds all its blocks with one "
            f"{site.heads.heads_key}; head_dim, keys and values kept)")


def _twins(site):
    """``(folds, nearest)``: ``{removed: (keeper, difference)}`` for exact twins, ``{head: (other, difference)}``
    the closest head of its group otherwise (differences relative to the block's largest ``|q|``)."""
    query = site.query_kernel()
    scale = max(float(np.abs(query).max()), 1e-300)
    folds, nearest = {}, {}
    for head in range(site.n_heads):
        group = site.group_of(head)
        others = [h for h in range(group * site.group_size, (group + 1) * site.group_size) if h != head]
        differences = {h: float(np.abs(query[head] - query[h]).max()) / scale for h in others}
        keeper = next((h for h in others if h < head and h not in folds and differences[h] <= TWIN_TOLERANCE), None)
        if keeper is not None:
            folds[head] = (keeper, differences[keeper])
        nearest[head] = min(differences.items(), key=lambda item: (item[1], item[0]))
    return folds, nearest


def _by_weights(model, sites, options):
    """The weights merge: every unit of sites loses the same number of exact twins per key/value group."""
    ratio, found = options.get("ratio"), {site.name: _twins(site) for site in sites}
    per_group = min(sum(site.group_of(j) == g for j in found[site.name][0])
                    for site in sites for g in range(site.n_groups))
    wanted = None if ratio is None else min(_per_group(ratio, site) for site in sites)
    per_group = per_group if wanted is None else min(per_group, wanted)
    entries, cuts = [], []
    for site in sites:
        folds, nearest = found[site.name]
        taken = {j: folds[j] for g in range(site.n_groups)
                 for j in sorted(j for j in folds if site.group_of(j) == g)[:per_group]}
        kept = [h for h in range(site.n_heads) if h not in taken]
        kernel = site.output_kernel()
        for removed, (keeper, _) in taken.items():
            kernel[keeper] += kernel[removed]
        entry = HeadsMerge(**_fields(site, "same query kernel, same key/value head"))
        entry.requested = None if wanted is None else wanted * site.n_groups
        entry.merges = [{"removed": j, "keeper": k, "alpha": 1.0, "residual": float(f"{d:.3g}"), "exact": True}
                        for j, (k, d) in sorted(taken.items())]
        entry.left_alone = [
            {"neuron": j, "keeper": folds[j][0], "reason": f"an exact twin, kept: every block of the backbone and "
             f"every key/value group loses {per_group} query heads"} if j in folds else
            {"neuron": j, "keeper": k, "reason": f"its query kernel differs from head {k}'s by {d:.3g} (relative): "
             "another attention pattern (a scaled query is no twin under the softmax)"}
            for j, (k, d) in sorted(nearest.items()) if j not in taken]
        if wanted is not None and per_group < wanted:
            entry.notes.append(f"removed {per_group} of the {wanted} requested query heads per key/value group: only "
                               "that many fold exactly by weights in every block; --mode data rebuilds heads that "
                               "are not duplicates")
        _finish(entry, site, kept, per_group)
        entries.append(entry)
        cuts.append((site, kept, kernel, None))
    return cut_composite_heads(model, cuts) if per_group else model, entries


def _finish(entry, site, kept, per_group):
    entry.neurons_after = len(kept)
    entry.params_after = site.params(len(kept))
    if per_group:
        entry.notes.append(_owner_note(site, per_group))


def _choose(moments, kernel, site, per_group, **fit):
    """The greedy choice: one head at a time, the one leaving the least error, ``per_group`` from every group."""
    removed = []
    for _ in range(per_group * site.n_groups):
        costs = [(plan_heads_fit(moments, kernel, remove=removed + [h], **fit).error, h) for h in range(site.n_heads)
                 if h not in removed and sum(site.group_of(r) == site.group_of(h) for r in removed) < per_group]
        removed.append(min(costs)[1])  # ties: the lowest head
    return plan_heads_fit(moments, kernel, remove=removed, **fit), removed


def _by_data(model, sites, data, options):
    """The data merge: blocks one after the other on a working copy whose removed heads' output rows are zero."""
    ratio, seed = options["ratio"], options.get("seed", 0)
    x, _ = as_inputs(data, model, seed=seed)
    samples = calibration_count(n_samples(x), options.get("samples"))
    per_group = min(_per_group(ratio, site) for site in sites)
    working = rebuild_with(model, {}, {})  # the same model; its output kernels change as blocks merge
    blocks, copies = [s.layer for s in head_sites(model)], head_sites(working)  # the same sites, in the same order
    entries, cuts = [], []
    for site in sites:
        copy = copies[blocks.index(site.layer)]
        moments, n_rows = composite_head_moments(working, copy, model, site, x, samples=samples, seed=seed,
                                                 batch_size=PROBE_BATCH)
        kernel = copy.output_kernel()
        fit = dict(ridge=options.get("ridge", DEFAULT_RIDGE), intercept=copy.output_has_bias)
        plan, order = _choose(moments, kernel, copy, per_group, **fit)
        kernel[plan.keep] += plan.update.reshape((plan.keep.size,) + kernel.shape[1:])
        kernel[plan.remove] = 0.0  # the removed heads write nothing: the working copy is the merged block
        output = copy.sub("output")
        output.kernel.assign(kernel.astype(output.kernel.dtype))
        bias = None
        if copy.output_has_bias:
            bias = np.asarray(output.bias.numpy(), dtype=np.float64) + plan.bias_update
            output.bias.assign(bias.astype(output.bias.dtype))
        entry = HeadsDataMerge(tap=f"{copy.path}/{output.name} (its input)", rows=int(n_rows), error=float(plan.error),
                               requested=per_group * site.n_groups, **_fields(site))
        entry.removed = [{"neuron": int(h), "r2": round(float(r2), 6), "dead": False}
                         for h, r2 in zip(plan.remove, plan.r2)]
        entry.notes.append(f"chosen in the order {order}; their output rebuilt in the kept heads' rows of "
                           f"{output.name} by least squares, fitted to the original model's {output.name} output")
        _finish(entry, site, plan.keep.tolist(), per_group)
        entries.append(entry)
        cuts.append((copy, plan.keep, kernel, bias))
    return cut_composite_heads(working, cuts), entries


def merge_composite_heads(model, mode, data, options):
    """Merge the query heads of every composite layer's grouped-query attention in ``model``.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    mode : {"weights", "data"}
    data : Dataset, ndarray or None
        Calibration inputs for ``mode="data"``.
    options : dict
        :func:`weightkit.compress.merge.merge_neurons`' options: ``ratio`` (by data, needed: ``round(ratio ·
        query heads per key/value head)`` go from every group of every block; by weights, at most that many),
        ``layers`` (a block, its attention's path or ``path/heads``: the blocks built from the same config come
        along), ``samples``, ``seed``, ``ridge``.

    Returns
    -------
    model : keras.Model
        ``model`` itself when no head goes, else a smaller copy (the backbone re-created with the smaller
        ``num_query_heads``).
    entries : list of HeadsMerge or HeadsDataMerge
        One per block, named ``decoder_block_0/attention/heads``, query heads counted as its neurons.
    skipped : list of SkippedLayer
        Blocks whose heads stay, with the reason (one query head per key/value head, a ratio rounding to none,
        a merge by data without a ratio).
    """
    every = head_sites(model)
    sites = _selected(every, options.get("layers"))
    skipped = [_skip(site, site.problem()) for site in sites if site.problem() is not None]
    sites = [site for site in sites if site.problem() is None]
    if not sites:
        return model, [], skipped
    units, positions = {}, {id(site): i for i, site in enumerate(every)}
    for site in sites:  # a unit: the blocks of one owner, by their place among the model's sites
        units.setdefault(id(site.owner) if site.owner is not None else id(site), []).append(positions[id(site)])
    ratio, entries = options.get("ratio"), []
    for places in units.values():
        found = head_sites(model)  # the model after the earlier units' merges: its sites in the same order
        unit = [found[i] for i in places]
        if mode == "data" and ratio is None:
            skipped += [_skip(site, "by data, the query heads of a composite merge at a ratio (every block keeps one "
                                    "head count): give ratio") for site in unit]
        elif ratio is not None and min(_per_group(ratio, site) for site in unit) == 0:
            skipped += [_skip(site, f"round({float(ratio):g} · {site.group_size} query heads per key/value head) = 0: "
                                    "no head removed") for site in unit]
        else:
            model, found = _by_data(model, unit, data, options) if mode == "data" else _by_weights(model, unit, options)
            entries += found
    return model, entries, skipped


def head_units(model):
    """``{unit: sites}``: the composite query heads a budget allocates over (``shrink``, ``merge --max-drop``).

    One unit per model that builds all its blocks from one config (keras-hub's GemmaBackbone), else per
    composite layer, named by its first block's entry (``decoder_block_0/attention/heads``). Its size is the
    query heads per key/value head (:attr:`~weightkit.compress.merge.applying.composite_heads.HeadSite.group_size`):
    removing ``k`` of them removes ``k`` from every key/value group of every block. Heads that cannot go
    (:meth:`~weightkit.compress.merge.applying.composite_heads.HeadSite.problem`: one query head per key/value
    head) are no unit.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    dict of str to list of HeadSite
        In model order.
    """
    return owner_units(head_sites(model), lambda site: f"{site.path}/heads")


def merge_head_unit(model, x, name, *, ratio, samples=None, seed=0):
    """Merge ``round(ratio · group size)`` query heads by data from each key/value group of one :func:`head_units` unit.

    Parameters
    ----------
    model, x, ratio, samples, seed
        As :func:`~weightkit.compress.merge.composites.merge_ffn_unit` (``x``: ndarray of shape (n, ...), or a list
        of them; ``model`` not modified).
    name : str
        A key of ``head_units(model)``.

    Returns
    -------
    model : keras.Model
        A smaller copy.
    per_group : int
        Query heads each key/value group of each block lost: the unit's step.
    entries : list of HeadsDataMerge
        One per block, as :func:`merge_composite_heads` reports them.

    Raises
    ------
    WeightkitError
        When ``name`` is no unit of ``model``, or when ``ratio`` removes no head (the reason).
    """
    units = head_units(model)
    if name not in units:
        raise WeightkitError(f"{name}: no composite query-head unit of model {model.name!r}; its units are "
                             f"{sorted(units)}.")
    merged, entries, skipped = merge_composite_heads(model, "data", x, {"ratio": ratio, "layers": [name],
                                                                         "samples": samples, "seed": seed})
    if not entries:
        raise WeightkitError(f"{name}: {skipped[0].reason}")
    first = units[name][0]
    return merged, (entries[0].neurons_before - entries[0].neurons_after) // first.n_groups, entries


def head_entries(sites, per_group):
    """Report entries of one unit's blocks that lost ``per_group`` query heads from each key/value group (a budget's
    summary has no plan: no heads named, no fit).

    Returns
    -------
    list of HeadsDataMerge
    """
    entries = []
    for site in sites:
        entry = HeadsDataMerge(tap=f"{site.path}/{site.sub('output').name} (its input)", **_fields(site))
        entry.requested = int(per_group) * site.n_groups
        _finish(entry, site, range(site.n_heads - entry.requested), int(per_group))
        entries.append(entry)
    return entries
