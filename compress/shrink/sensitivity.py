"""Per-layer merge sensitivity: the validation error of merging a fraction of one layer, data-aware.

For each mergeable layer (or coupled channel group, as one unit) and each fraction of its
neurons, :func:`weightkit.compress.merge.merge_by_data` removes that fraction of that layer alone (fitted
on the calibration split) and the merged model is scored on the validation split against the original (accuracy, agreement, KL
divergence). The curves feed :func:`weightkit.compress.shrink.allocation.greedy_path`.
"""

from dataclasses import dataclass, field

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.merge import merge_by_data, plan_groups
from weightkit.compress.merge.group_data import group_taps
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.composite_heads import head_units, merge_head_unit
from weightkit.compress.merge.composites import ffn_units, merge_ffn_unit
from weightkit.compress.merge.heads import attention_targets, merge_heads_by_data
from weightkit.compress.merge.recurrent import recurrent_site
from weightkit.compress.shrink.costs import model_cost
from weightkit.compress.shrink.scores import predict_probabilities, score_outputs

__all__ = ["DEFAULT_FRACTIONS", "LayerSensitivity", "measure_sensitivity", "merge_allocation", "mergeable_layers",
           "sensitivity_curves"]

#: The suffix of an attention layer's heads as one unit (``merge_heads_by_data``'s entry name).
HEADS_SUFFIX = "/heads"

#: Fractions of a layer's neurons tried, lightest first: ``shrink``'s and ``merge --max-drop``'s
#: (:data:`weightkit.compress.shrink.budget.BUDGET_FRACTIONS`, where the measurement behind them is).
DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 0.9)


@dataclass
class LayerSensitivity:
    """One layer's curve.

    Attributes
    ----------
    name : str
    neurons : int
    points : list of dict
        Per fraction tried: ``{"fraction", "removed", "cost_removed", "accuracy", "agreement",
        "kl"}`` on the validation split (``removed`` neurons; ``cost_removed`` in the target's
        unit).
    notes : list of str
    """

    name: str
    neurons: int
    points: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def levels(self, key="error"):
        """``[(0, 0), (cost_removed, error), ...]`` for :func:`~weightkit.compress.shrink.allocation.greedy_path`."""
        return [(0.0, 0.0)] + [(float(p["cost_removed"]), float(p[key])) for p in self.points]

    def to_dict(self):
        return {"name": self.name, "neurons": self.neurons, "points": list(self.points), "notes": list(self.notes)}


def mergeable_layers(model):
    """``{name: neurons}`` of the units data-aware merging can shrink (two neurons or more), in model order.

    A unit is a plain layer, a recurrent layer (SimpleRNN, LSTM, GRU; its units), or a coupled channel
    group (producers tied by a residual ``Add``, a concatenation, depthwise filters;
    :func:`weightkit.compress.merge.plan_groups`) named after its first producer:
    ``merge_by_data(layers=[that name])`` merges the whole group, counted once. An attention layer
    whose heads merge (:func:`weightkit.compress.merge.merge_heads_by_data`) is the unit ``name/heads``,
    its heads counted as neurons; these come first, as ``merge_neurons`` merges heads before neurons. The
    query heads of grouped-query attention inside composite layers follow
    (:func:`weightkit.compress.merge.composite_heads.head_units`): a GemmaBackbone's blocks are one unit named
    ``decoder_block_0/attention/heads``, counting the query heads per key/value head (removing ``k`` removes
    ``k`` from every key/value group of every block).
    The feed-forward networks inside composite layers (keras-hub's TransformerEncoder, Gemma's gated
    MLP; :func:`weightkit.compress.merge.composites.ffn_units`) come last, as ``merge_neurons`` merges
    them last: one unit per FFN named by its first producer's path
    (``enc0/feedforward_intermediate_dense``), its intermediate neurons counted; a GemmaBackbone's
    blocks, all at one width, are one unit named by its first block's FFN.
    """
    units = {f"{layer.name}{HEADS_SUFFIX}": int(layer.get_config()["num_heads"])
             for layer in attention_targets(model)[0]}
    units.update({name: int(sites[0].group_size) for name, sites in head_units(model).items()})
    plan = plan_groups(model)
    members = {u.layer for group in plan.groups for u in group.members}
    groups = {group.producers[0]: group for group in plan.groups
              if group.n >= 2 and group_taps(group, plan.graph)[1] is None}
    for name, site in plan.sites.items():
        if name in groups:
            units[name] = int(groups[name].n)
        elif name in members:
            continue
        elif getattr(kind_for(find_layer(model, name)), "recurrent", False):  # units folded into every gate
            recurrent = recurrent_site(plan.graph, find_layer(model, name))
            if recurrent.reason is None and recurrent.n_units >= 2:
                units[name] = int(recurrent.n_units)
        elif plan.plain(name) and site.n_neurons >= 2:
            units[name] = int(site.n_neurons)
    units.update({name: int(sites[0].n_neurons) for name, sites in ffn_units(model).items()})
    return units


def merge_allocation(model, x_calibration, removals, *, seed=0, samples=None, refit=False):
    """Merge ``removals[name]`` neurons out of each named layer, one layer after the other.

    Each layer is fitted on the activations of the model its earlier merges left, so later
    layers see the inputs they will really get.

    Parameters
    ----------
    model : keras.Model
    x_calibration : ndarray of shape (n_calibration, ...)
    removals : dict of str to int
        Neurons to remove per layer; 0 leaves a layer alone.
    seed : int, default=0
    samples : int, default=None
        Calibration inputs per fit (all of them when None).
    refit : bool, default=False
        Fit each layer with the sequential refit (:mod:`weightkit.compress.merge.refit`).

    Returns
    -------
    model : keras.Model
    removed : dict of str to int
        Neurons each layer really lost.
    """
    removed = {}
    samples = n_samples(x_calibration) if samples is None else int(samples)
    for name, count in removals.items():
        if count <= 0:
            continue
        n = mergeable_layers(model).get(name)
        if n is None:
            continue
        count = min(int(count), n - 1)
        ratio = (count - 0.25) / n  # both merges remove round(ratio * n): exactly `count`
        if name in head_units(model):  # a composite's query heads: `count` from every key/value group and block
            model, removed[name], _ = merge_head_unit(model, x_calibration, name, ratio=ratio, samples=samples,
                                                      seed=seed)
            continue
        if name.endswith(HEADS_SUFFIX):
            model, removed[name] = _merge_heads(model, x_calibration, name, ratio, samples, seed)
            continue
        if name in ffn_units(model):  # a composite's FFN: every block of a one-width backbone loses `count`
            model, entries = merge_ffn_unit(model, x_calibration, name, ratio=ratio, samples=samples, seed=seed)
            removed[name] = int(entries[0].neurons_before - entries[0].neurons_after)
            continue
        model, report = merge_by_data(model, x_calibration, ratio=ratio, layers=[name], samples=samples, seed=seed,
                                      refit=refit)
        removed[name] = int(sum(layer.n_removed for layer in report.layers))
    return model, removed


def _merge_heads(model, x_calibration, name, ratio, samples, seed):
    """``(model, heads removed)`` of one attention unit ``name/heads``; its refusal as a WeightkitError."""
    merged, entries, skipped = merge_heads_by_data(model, x_calibration, ratio=ratio, layers=[name], samples=samples,
                                                   seed=seed)
    if not entries and skipped:
        raise WeightkitError(f"{name}: {skipped[0].reason}")
    return merged, int(sum(entry.neurons_before - entry.neurons_after for entry in entries))


def measure_sensitivity(model, x_calibration, x_validation, y_validation, teacher, activation, *,
                        fractions=DEFAULT_FRACTIONS, target="size", seed=0, progress=None):
    """Each mergeable layer's validation scores as a function of the fraction of it merged away.

    Parameters
    ----------
    model : keras.Model
        The original; not modified.
    x_calibration : ndarray of shape (n_calibration, ...)
    x_validation, y_validation : ndarray of shape (n_validation, ...), (n_validation,)
    teacher : ndarray of shape (n_validation, n_classes)
        The original's probabilities on the validation split.
    activation : str
        The output activation (see :func:`weightkit.compress.shrink.scores.as_probabilities`).
    fractions : sequence of float, default=DEFAULT_FRACTIONS
    target : {"size", "params", "latency"}, default="size"
    seed : int, default=0
    progress : callable, default=None
        ``progress(done, total, what)``.

    Returns
    -------
    list of LayerSensitivity
    """
    def score(merged):
        return score_outputs(predict_probabilities(merged, x_validation, activation), y_validation, teacher)

    return sensitivity_curves(model, x_calibration, score, fractions=fractions, target=target, seed=seed,
                              progress=progress)


def sensitivity_curves(model, x_calibration, score, *, fractions=DEFAULT_FRACTIONS, target="size", seed=0,
                       progress=None):
    """Each mergeable layer's scores, by ``score(merged_model)``, as a function of the fraction merged away.

    The one implementation behind ``shrink`` (classifier scores) and ``merge --max-drop`` (any
    :class:`weightkit.compress.shrink.judge.Judge`).

    Parameters
    ----------
    model : keras.Model
        The original; not modified.
    x_calibration : ndarray of shape (n_calibration, ...), or a list of them (one per input)
    score : callable
        ``score(model) -> dict`` of numbers; each becomes a key of the curve's points.
    fractions : sequence of float, default=DEFAULT_FRACTIONS
    target : {"size", "params", "latency"}, default="size"
    seed : int, default=0
    progress : callable, default=None
        ``progress(done, total, what)``.

    Returns
    -------
    list of LayerSensitivity
    """
    layers = mergeable_layers(model)
    if not layers:
        raise WeightkitError(f"model {model.name!r}: no layer data-aware merging can shrink (Dense, Conv or "
                             "recurrent layers read by layers a merge can rewrite); quantize it instead.")
    base_cost = model_cost(model, target)
    total, done = len(layers) * len(fractions), 0
    curves = []
    for name, n in layers.items():
        curve = LayerSensitivity(name=name, neurons=int(n))
        seen = set()
        for fraction in fractions:
            if progress is not None:
                progress(done, total, f"sensitivity: {name} {fraction:.0%}")
            done += 1
            count = min(n - 1, round(fraction * n))
            if count < 1 or count in seen:
                continue
            seen.add(count)
            try:
                merged, removed = merge_allocation(model, x_calibration, {name: count}, seed=seed)
            except WeightkitError as error:
                curve.notes.append(f"{fraction:.0%}: not merged: {error}")
                break
            curve.points.append({"fraction": float(fraction), "removed": int(removed.get(name, 0)),
                                 "cost_removed": int(base_cost - model_cost(merged, target)), **score(merged)})
        curves.append(curve)
    return curves
