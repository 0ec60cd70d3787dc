"""Which attention heads to remove over the whole model: one at a time, by how far the model's outputs move.

``merge_heads_by_data(..., allocation="global")`` (:mod:`weightkit.compress.merge.heads`) removes
``round(ratio · all heads)`` heads of the model, wherever they cost the least, instead of the same share of
every layer. Michel et al. (2019, "Are Sixteen Heads Really Better than One?") prune globally too, by a
gradient importance; here each candidate is measured by what it does once merged: at every step, every
head still in the model is removed in turn, the layers merged one after the other as the uniform merge
does (its contribution rebuilt in the kept heads' output projection by least squares, every later layer
refitted to the original's output), and the merged model run on the calibration inputs. The head whose
removal moves the model's outputs the least
(:func:`weightkit.compress.merge.fitting.head_choice.output_divergence`: KL for probabilities) goes, and
the search goes on from there (a greedy forward selection; ties: the earlier layer, the lower head).

Lazily: removing more heads moves the outputs at least as far, so a candidate's cost measured at an
earlier step is a lower bound of its cost now. Each step measures the candidates in the order of their
last cost and stops when the best cost found is at most the next candidate's last cost (Minoux's lazy
greedy): the same choice as measuring every candidate, where that bound holds, with far fewer merged
models (after the first step, usually one or two per step).

The merging itself is the caller's ``build(removals, cache)`` (the sequential merge of
:mod:`weightkit.compress.merge.heads`), so this module only searches; ``cache`` keeps the merged model
after each prefix of layers, so a candidate in a late layer does not merge the early ones again.
"""

import numpy as np

from weightkit.analysis.activations.collect import sample_indices
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.compress.merge.fitting.head_choice import output_divergence

__all__ = ["HEAD_ALLOCATIONS", "global_removals"]

#: How ``ratio`` is spread over the attention layers.
HEAD_ALLOCATIONS = {
    "uniform": "round(ratio · heads) heads of every attention layer, chosen by the error left in its output",
    "global": "round(ratio · all heads) heads of the model, one at a time where the model's outputs move least",
}


def _predict(model, x, batch_size=256):
    parts = [model.predict_on_batch(rows(x, start, start + batch_size)) for start in range(0, n_samples(x), batch_size)]
    if isinstance(parts[0], (list, tuple)):
        return [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(len(parts[0]))]
    return np.concatenate([np.asarray(p) for p in parts])


def _by_known_cost(heads, removals, blocked, known):
    """The heads that may still go, those never measured first, then by the cost measured last (lowest first);
    ties in model order."""
    order = [(name, head) for name, n in heads.items() if name not in blocked and len(removals[name]) < n - 1
             for head in range(n) if head not in removals[name]]
    return sorted(order, key=lambda candidate: known.get(candidate, -np.inf))


def global_removals(model, targets, x, ratio, build, *, samples, seed=0, progress=None):
    """Choose ``round(ratio · all heads)`` heads of the ``targets`` greedily by the model's output divergence.

    Parameters
    ----------
    model : keras.Model
        The original.
    targets : list of keras.layers.Layer
        The attention layers that may lose heads, in model order.
    x : ndarray or list of ndarray
        Calibration inputs; the divergence is measured on the same seeded sample the heads are probed on.
    ratio : float in (0, 1)
    build : callable
        ``build(removals, cache) -> (merged model, entries, skipped)``: ``removals`` maps every target's
        name to the sorted heads it loses; ``skipped`` names (``name/heads``) the layers it could not merge.
    samples : int
    seed : int, default=0
    progress : callable, default=None
        Called as ``progress(done, total, name)`` after each head chosen.

    Returns
    -------
    removals : dict of str to list of int
        Layer name -> the heads it loses (each layer keeps at least one).
    note : str
        What was chosen, for the report.
    """
    heads = {layer.name: int(layer.get_config()["num_heads"]) for layer in targets}
    total = min(int(round(float(ratio) * sum(heads.values()))), sum(n - 1 for n in heads.values()))
    sample = take(x, sample_indices(n_samples(x), samples, seed))
    reference = _predict(model, sample)
    removals, cache, blocked, chosen, known = {name: [] for name in heads}, {}, set(), [], {}
    while len(chosen) < total:
        best = None
        for name, head in _by_known_cost(heads, removals, blocked, known):
            if best is not None and known.get((name, head), -np.inf) >= best[0]:
                break  # no candidate left can beat the best: each known cost is a lower bound of its own
            if name in blocked:
                continue
            merged, _, skipped = build({**removals, name: sorted(removals[name] + [head])}, cache)
            if any(s.name == f"{name}/heads" for s in skipped):
                blocked.add(name)  # its heads cannot be replayed: it keeps them all
                continue
            known[name, head] = cost = output_divergence(reference, _predict(merged, sample))
            if best is None or cost < best[0]:
                best = (cost, name, head)
        if best is None:
            break
        removals[best[1]] = sorted(removals[best[1]] + [best[2]])
        chosen.append(best)
        if progress is not None:
            progress(len(chosen), total, f"{best[1]}/heads")
    order = ", ".join(f"{name} head {head}" for _, name, head in chosen)
    last = f"; output divergence {chosen[-1][0]:.3g} after the last" if chosen else ""
    note = (f"global allocation: {len(chosen)} of the model's {sum(heads.values())} heads removed one at a time "
            f"where the outputs on {n_samples(sample)} calibration inputs moved least ({order}{last})")
    return removals, note
