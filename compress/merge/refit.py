"""Sequential refit of a data-aware merge: each tensor read is fitted on the model merged so far.

The one-shot merge (:mod:`weightkit.compress.merge.by_data`) fits every relation on the original model's
activations, so the errors of successive layers add up. Here the tensors the consumers read
(*units*: a group's channels at one tap, see :func:`weightkit.compress.merge.group_data.group_taps`) are
processed in topological order. At each unit the model merged so far is probed in one batched
pass, beside the original model's activations on the same inputs and positions, and the
original channels are rebuilt from the merged model's kept ones
(:func:`weightkit.compress.merge.fitting.refit_fit.fit_refit_map`), folded into the unit's consumers. The first
unit of a group also chooses the group's removals, by the error in the original consumers'
inputs (:func:`weightkit.compress.merge.fitting.refit_fit.refit_selection`) at every unit of the group. A
consumer whose output only a BatchNormalization reads has its errors measured after that
BatchNormalization's scale (``γ/√(σ² + ε)`` per output): that is what the rest of the model
sees, and a low-variance channel the BatchNormalization amplifies counts as much as it matters.

Plain producers merge here as one-producer groups (their channel group from
:func:`weightkit.analysis.structure.channels.channel_groups`). All cuts are deferred
(:meth:`weightkit.compress.merge.applying.rebuild.WeightState.cut`); the merged-so-far model is the original
architecture with every channel pending a cut zeroed, which computes what the cut model does
(:mod:`weightkit.compress.merge.fitting.refit_probe`: built once, its weights set at each stage).
"""

import numpy as np

from weightkit.analysis.kinds.layers import spec_for
from weightkit.compress.merge.reporting.data_report import LayerDataMerge
from weightkit.compress.merge.group_data import group_taps
from weightkit.compress.merge.applying.group_fold import consumer_block, cut_group, depthwise_rows, propagate_depthwise
from weightkit.compress.merge.planning.groups import group_members
from weightkit.compress.merge.applying.math import Relation
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.fitting.refit_fit import allocate_removals, choose_refit_map, pruning_map, refit_selection
from weightkit.compress.merge.fitting.refit_probe import PreviewModel, TapProbe

__all__ = ["plain_groups", "refit_groups", "refittable"]

_KERNEL = {"separable": "pointwise_kernel"}
_LAYOUTS = ("dense", "conv", "flatten", "separable")


def refittable(model, group):
    """Whether every consumer of ``group`` reads it through a plain kernel the refit can rewrite."""
    for use in group.consumers:
        layer = find_layer(model, use.layer)
        spec = spec_for(layer)
        if use.layout not in _LAYOUTS or spec is None or spec.wraps or \
                not hasattr(layer, _KERNEL.get(use.layout, "kernel")):
            return False
    return True


def plain_groups(model, plan, names):
    """The one-producer channel groups of plain sites ``names``; ``(groups, names without one)``."""
    found = {g.producers[0]: g for g in plan.walked
             if g.reason is None and len(g.producers) == 1 and g.producers[0] in names and g.n >= 2
             and refittable(model, g)}
    return [found[name] for name in names if name in found], [name for name in names if name not in found]


def _fold_map(state, use, offset, fitted):
    """Fold a RefitMap into one consumer's rows at ``offset``; its removed rows cut later. Inexact rows."""
    n = fitted.beta.shape[0]
    beta, shift, inexact = fitted.beta, fitted.shift, []
    if use.layout == "separable":
        filters = depthwise_rows(state.arrays[use.layer]["depthwise_kernel"], offset, n)
        carried, inexact = propagate_depthwise(Relation(np.arange(n), fitted.keep, beta, shift), filters)
        beta, shift = carried.beta, carried.shift
    arrays = state.arrays[use.layer]
    name = _KERNEL.get(use.layout, "kernel")
    kernel = arrays[name].astype(np.float64)
    out = kernel.shape[-1]
    view = kernel.reshape(-1, use.channels, out)
    block = view[:, offset:offset + n, :].copy()
    view[:, offset + fitted.keep, :] = np.einsum("jk,sjo->sko", beta, block)
    arrays[name] = view.reshape(kernel.shape).astype(np.float32)
    had_bias = "bias" in arrays
    bias = arrays["bias"].astype(np.float64) if had_bias else np.zeros(out)
    bias = bias + np.einsum("j,sjo->o", shift, block)
    if had_bias or np.any(bias != 0):
        arrays["bias"] = bias.astype(np.float32)
        if not had_bias:
            state.added_bias.add(use.layer)
    state.cut(use.layer, name, -2, use.channels, offset + fitted.remove)
    return inexact


def _units(model, graph, group, taps):
    """``[(tap names, consumer keys, topological position)]`` of one group."""
    units = {}
    for key, names in taps.items():
        units.setdefault(tuple(names), []).append(key)
    out = []
    for names, keys in units.items():
        position = max(graph.nodes_of(find_layer(model, name))[0].index for name in names)
        out.append((names, keys, position))
    return out


def _output_scale(graph, state, layer_name):
    """Per output channel, the scale of a BatchNormalization that alone reads the layer's output (else 1)."""
    nodes = [node for node in graph.nodes if node.layer.name == layer_name]
    if len(nodes) != 1:
        return None
    readers = graph.readers(nodes[0].outputs[0])
    if len(readers) != 1 or not getattr(spec_for(readers[0].layer), "moving_statistics", False):
        return None
    bn = readers[0].layer
    arrays = state.arrays.get(bn.name, {})
    if "moving_variance" not in arrays:
        return None
    gamma = arrays.get("gamma", np.ones_like(arrays["moving_variance"]))
    return np.asarray(gamma, np.float64) / np.sqrt(np.asarray(arrays["moving_variance"], np.float64) + bn.epsilon)


def _consumer_weights(graph, state, consumers, keys, n):
    """The weights leaving the group's channels at one unit: each output scaled by a BatchNormalization that
    reads it alone, outputs already removed by another group left out."""
    blocks = []
    for key in keys:
        use = consumers[key]
        block = consumer_block(state, use, key[1], n)
        out = state.arrays[use.layer][_KERNEL.get(use.layout, "kernel")].shape[-1]
        factor = np.ones(out)
        scale = _output_scale(graph, state, use.layer)
        if scale is not None and scale.size == out:
            factor *= scale
        cut = state.cuts.get((use.layer, _KERNEL.get(use.layout, "kernel"), -1))
        if cut is not None and cut[0] == out:  # outputs a group already removed: their error no longer matters
            factor[sorted(cut[1])] = 0.0
        blocks.append(block * np.tile(factor, block.shape[1] // out))
    return np.concatenate(blocks, axis=1)


def _mostly_padded(model, graph, layer_name):
    """Whether most output positions of a zero-padding consumer convolution reach into its padding.

    An intercept folded into its bias is wrong there (the padded zeros stay zeros); where those
    positions are the majority (a 3×3 kernel on a 4×4 map: 12 of 16), the fit goes through the
    origin instead.
    """
    layer = find_layer(model, layer_name)
    kernel = tuple(int(k) for k in getattr(layer, "kernel_size", ()))
    if getattr(layer, "padding", "valid") == "valid" or not any(k > 1 for k in kernel):
        return False
    nodes = graph.nodes_of(layer)
    spatial = graph.shape(nodes[0].inputs[0])[1:-1] if len(nodes) == 1 else ()
    if len(spatial) != len(kernel) or any(d is None for d in spatial):
        return False
    interior = np.prod([max(0, d - (k - 1)) / d for d, k in zip(spatial, kernel)])
    return bool(interior < 0.5)


def _rows(samples, names, offset, n):
    return np.concatenate([samples[name][:, offset:offset + n] for name in names], axis=0)


def _report(group, graph, taps):
    first = graph.nodes[group.uses[0].node].layer
    tap_names = list(dict.fromkeys(name for names in taps.values() for name in names))
    coupled = group.coupled
    report = LayerDataMerge(name=group.producers[0], type=type(first).__name__, tap=", ".join(tap_names),
                            consumers=list(dict.fromkeys(u.layer for u in group.consumers)), neurons_before=group.n,
                            neurons_after=group.n, producers=list(group.producers) if coupled else [],
                            members=group_members(group) if coupled else [])
    if len(tap_names) > 1 or tap_names[0] != group.producers[0]:
        report.notes.append(f"fitted on the output of {', '.join(tap_names)}")
    report.notes.append("refitted on the model merged so far (sequential)")
    return report


def refit_groups(model, graph, groups, state, x, *, ratio, max_error, samples, positions, seed, ridge,
                 weigh_by_consumer, allocation="uniform", progress=None):
    """Merge groups (coupled or one-producer) by data, each tensor read refitted on the model merged so far.

    Parameters
    ----------
    model : keras.Model
        The original (not modified).
    graph : ModelGraph
        Of ``model``.
    groups : list of ChannelGroup
        Mergeable groups whose taps :func:`weightkit.compress.merge.group_data.group_taps` finds.
    state : WeightState
        Of ``model``; updated in place (cuts deferred).
    x : ndarray or list of ndarray
        Calibration inputs.
    ratio, max_error, samples, positions, seed, ridge, weigh_by_consumer, allocation, progress
        As for :func:`weightkit.compress.merge.merge_by_data`.

    Returns
    -------
    reports : list of LayerDataMerge
        One per group, in the order of ``groups``.
    passes : int
        Probe passes run (the original model's included).
    """
    taps_of = {id(g): group_taps(g, graph)[0] for g in groups}
    units = sorted(((g, *unit) for g in groups for unit in _units(model, graph, g, taps_of[id(g)])),
                   key=lambda item: item[3])
    names = list(dict.fromkeys(name for _, unit_names, _, _ in units for name in unit_names))
    options = {"samples": samples, "seed": seed, "positions": positions}
    original = TapProbe(model, names, x, **options).collect()
    biased = {u.layer for g in groups for u in g.consumers if "bias" not in state.arrays[u.layer]}
    preview = PreviewModel(model, state, biased)
    preview_probe = TapProbe(preview.model, names, x, **options)
    reports = {id(g): _report(g, graph, taps_of[id(g)]) for g in groups}
    counts = {}
    if allocation == "global" and ratio is not None:
        per_group = [_unit_arrays(graph, g, units, state, original, original, weigh_by_consumer) for g in groups]
        counts = dict(zip(map(id, groups), allocate_removals(per_group, ratio, ridge=ridge)))
    removed, lost, totals, inexact, choices = {}, {}, {}, {}, {}
    passes, dirty = 1, False
    for index, (group, unit_names, keys, _) in enumerate(units):
        if progress is not None:
            progress(index, len(units), group.name)
        if dirty:
            preview.update(state)
        merged = preview_probe.collect() if dirty else original
        passes += int(dirty)
        consumers = {(u.layer, u.inputs[0][1]): u for u in group.consumers}
        report, n = reports[id(group)], group.n
        if id(group) not in removed:
            count = counts.get(id(group), None if ratio is None else min(n - 1, round(ratio * n)))
            removed[id(group)] = _select(graph, group, units, state, merged, original, report, count, max_error, ridge,
                                         weigh_by_consumer)
            families = {u.layer: spec_for(graph.nodes[u.node].layer) for u in group.uses
                        if u.role == "producer"}
            cut_group(state, group, removed[id(group)], families)
        offset = keys[0][1]
        x_rows, y_rows = _rows(merged, unit_names, offset, n), _rows(original, unit_names, offset, n)
        weights = _consumer_weights(graph, state, consumers, keys, n)
        separable = any(consumers[key].layout == "separable" for key in keys)
        padded = any(_mostly_padded(model, graph, consumers[key].layer) for key in keys)
        if np.isfinite(x_rows).all() and np.isfinite(y_rows).all():
            fitted = choose_refit_map(x_rows, y_rows, removed[id(group)], weights=weights, ridge=ridge,
                                      diagonal_only=separable, intercept=not padded)
        else:  # NaN/Inf here: the removed channels are only cut from these consumers
            fitted = pruning_map(n, removed[id(group)])
            report.notes.append(f"activations at {', '.join(unit_names)} contain NaN or Inf: pruned there, not refitted")
        choices.setdefault(id(group), []).append("diagonal" if fitted.diagonal else f"ridge {fitted.ridge:g}")
        for key in keys:
            inexact.setdefault(id(group), []).extend(_fold_map(state, consumers[key], key[1], fitted))
        report.rows += int(x_rows.shape[0])
        report.removed = _merge_r2(report.removed, fitted)
        lost[id(group)] = lost.get(id(group), 0.0) + fitted.error * _total(y_rows, weights)
        totals[id(group)] = totals.get(id(group), 0.0) + _total(y_rows, weights)
        dirty = True
    for group in groups:
        report = reports[id(group)]
        report.neurons_after = group.n - int(removed[id(group)].size)
        report.error = float(lost.get(id(group), 0.0) / totals[id(group)]) if totals.get(id(group)) else 0.0
        report.notes.append(f"refit per tensor read (cross-validated): {', '.join(choices.get(id(group), []))}")
        if inexact.get(id(group)):
            report.notes.append("carried through a SeparableConv's depthwise filters, which are not scaled copies: "
                                "approximate")
    return [reports[id(g)] for g in groups], passes


def _total(y_rows, weights):
    centered = np.asarray(y_rows, dtype=np.float64) - y_rows.mean(axis=0)
    return float(np.einsum("io,io->", weights, (centered.T @ centered) @ weights))


def _merge_r2(entries, fitted):
    worst = {item["neuron"]: item for item in entries}
    for j, r2 in zip(fitted.remove, fitted.r2):
        item = worst.setdefault(int(j), {"neuron": int(j), "r2": round(float(r2), 6), "dead": False})
        item["r2"] = min(item["r2"], round(float(r2), 6))
    return [worst[j] for j in sorted(worst)]


def _unit_arrays(graph, group, units, state, merged, original, weigh_by_consumer):
    """``[(X, Y, weights)]`` at every unit of ``group``: merged-so-far and original activations."""
    n = group.n
    consumers = {(u.layer, u.inputs[0][1]): u for u in group.consumers}
    arrays = []
    for other, unit_names, keys, _ in units:
        if other is not group:
            continue
        offset = keys[0][1]
        weights = _consumer_weights(graph, state, consumers, keys, n) if weigh_by_consumer else np.eye(n)
        arrays.append((_rows(merged, unit_names, offset, n), _rows(original, unit_names, offset, n), weights))
    return arrays


def _select(graph, group, units, state, merged, original, report, count, max_error, ridge, weigh_by_consumer):
    """The group's removals, chosen on the merged-so-far model at every unit of the group."""
    arrays = _unit_arrays(graph, group, units, state, merged, original, weigh_by_consumer)
    if not all(np.isfinite(a).all() and np.isfinite(b).all() for a, b, _ in arrays):
        report.notes.append("activations contain NaN or Inf on the calibration sample: left alone")
        return np.zeros(0, dtype=np.int64)
    report.requested = count
    remove, dead = refit_selection(arrays, count=count, max_error=None if count is not None else max_error,
                                   ridge=ridge)
    report.removed = [{"neuron": int(j), "r2": 1.0, "dead": bool(j in set(dead.tolist()))} for j in remove]
    return remove
