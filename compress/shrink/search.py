"""Search the greedy path for the deepest allocation within the merge budget, fine-tuning where it pays.

Bisection over the path's allocations: each probe merges the allocation into the original
(:func:`weightkit.compress.shrink.sensitivity.merge_allocation`), scores it on the validation split, and
fine-tunes it by distillation when its drop exceeds half of ``max_drop`` (or always / never). A
probe within the budget moves the lower end up, one beyond it the upper end down: the path
removes more at every step, so its accuracy falls roughly monotonically.
"""

from weightkit.compress.shrink.scores import predict_probabilities, score_outputs
from weightkit.compress.shrink.sensitivity import merge_allocation

__all__ = ["kept_scores", "scored_probe", "search_path", "search_removals"]


def _scores(model, splits, teacher, activation, reference):
    scores = score_outputs(predict_probabilities(model, splits.x_validation, activation), splits.y_validation,
                           teacher["validation"])
    scores["drop"] = 100.0 * (reference - scores["accuracy"])
    scores["test_accuracy"] = score_outputs(predict_probabilities(model, splits.x_test, activation),
                                            splits.y_test)["accuracy"]
    return scores


def scored_probe(model, score, *, tune=None, fine_tune=None, max_drop=1.0):
    """Score a probe, and fine-tune it where that is wanted and helps: ``(model kept, record)``.

    Parameters
    ----------
    model : keras.Model
    score : callable
        ``score(model) -> dict`` with ``drop``.
    tune : callable, default=None
        ``tune(model) -> (model, DistillResult)``; None: no fine-tune.
    fine_tune : bool, default=None
        None: fine-tune when the drop exceeds half of ``max_drop``; True: whenever it is positive; False: never.
    max_drop : float, default=1.0

    Returns
    -------
    model : keras.Model
        The fine-tuned model when its drop is no larger, else the given one.
    record : dict
        ``before`` and ``after`` (None without a fine-tune) scores, ``fine_tune`` (the DistillResult as a dict, or
        None) and ``drop`` (the kept model's).
    """
    before = score(model)
    record, final = {"before": before, "after": None, "fine_tune": None}, before
    wanted = fine_tune if fine_tune is not None else before["drop"] > max_drop / 2
    if tune is not None and wanted and before["drop"] > 0:
        tuned, distilled = tune(model)
        after = score(tuned)
        record.update(after=after, fine_tune=distilled.to_dict())
        if after["drop"] <= before["drop"]:
            model, final = tuned, after
    record["drop"] = final["drop"]
    return model, record


def kept_scores(record):
    """The scores of the model a :func:`scored_probe` record kept: after its fine-tune when that was kept."""
    after = record["after"]
    return after if after is not None and record["drop"] == after["drop"] else record["before"]


def search_path(original, splits, teacher, activation, removals, reference, *, budget, max_drop, tune=None,
                fine_tune=None, max_probes=4, seed=0, progress=None):
    """The deepest allocation of ``removals`` whose validation drop stays within ``budget``.

    Parameters
    ----------
    original : keras.Model
    splits : ShrinkSplits
    teacher : dict of str to ndarray
        The original's probabilities on the ``validation`` and ``test`` splits.
    activation : str
    removals : list of dict of str to int
        Neurons removed per layer at each step of the path; the first removes nothing.
    reference : float
        The original's validation accuracy.
    budget : float
        Accuracy points the merged (and fine-tuned) model may lose.
    max_drop : float
        The whole budget: a merge losing more than half of it is fine-tuned (``fine_tune=None``).
    tune : callable, default=None
        ``tune(model) -> (model, DistillResult)``; None: no fine-tune.
    fine_tune : bool, default=None
    max_probes : int, default=4
    seed : int, default=0
    progress : callable, default=None
        ``progress(what)``.

    Returns
    -------
    dict
        ``probes`` (one dict per merged allocation, in the order tried), ``merged`` (the chosen
        one: index, removals, parameters, validation scores, drop, fine-tune) and ``model``.
    """
    return search_removals(original, splits.x_calibration, removals,
                           lambda model: _scores(model, splits, teacher, activation, reference), budget=budget,
                           max_drop=max_drop, tune=tune, fine_tune=fine_tune, max_probes=max_probes, seed=seed,
                           progress=progress)


def search_removals(original, x_calibration, removals, score, *, budget, max_drop, tune=None, fine_tune=None,
                    max_probes=4, seed=0, refit=False, progress=None):
    """Bisect ``removals`` for the deepest allocation whose ``score(model)["drop"]`` stays within ``budget``.

    The one search behind ``shrink`` and ``merge --max-drop``.

    Parameters
    ----------
    original : keras.Model
    x_calibration : ndarray of shape (n_calibration, ...), or a list of them (one per input)
    removals : list of dict of str to int
        Neurons removed per layer at each step of the path; the first removes nothing.
    score : callable
        ``score(model) -> dict`` with ``drop``, the loss against the original in the budget's unit.
    budget : float
    max_drop : float
        A merge losing more than half of it is fine-tuned (``fine_tune=None``).
    tune : callable, default=None
        ``tune(model) -> (model, DistillResult)``; None: no fine-tune.
    fine_tune : bool, default=None
    max_probes : int, default=4
    seed : int, default=0
    refit : bool, default=False
        Merge each allocation with the sequential refit (:func:`merge_allocation`).
    progress : callable, default=None
        ``progress(what)``.

    Returns
    -------
    dict
        ``probes``, ``merged`` (the chosen one) and ``model``, as :func:`search_path`.
    """
    probes, models = [], {}
    base = score(original)
    models[0] = original
    chosen = {"index": 0, "removed": {}, "params": int(original.count_params()), "scores": base, "drop": base["drop"],
              "fine_tune": None}

    def probe(index):
        if progress is not None:
            progress(f"search: merging path step {index} of {len(removals) - 1}")
        merged, removed = merge_allocation(original, x_calibration, removals[index], seed=seed, refit=refit)
        record = {"index": index, "requested": removals[index], "removed": removed,
                  "params": int(merged.count_params())}
        merged, scores = scored_probe(merged, score, tune=tune, fine_tune=fine_tune, max_drop=max_drop)
        record.update(scores, ok=scores["drop"] <= budget)
        probes.append(record)
        models[index] = merged
        return record

    low, high = 0, len(removals) - 1
    while low < high and len(probes) < max_probes:
        middle = (low + high + 1) // 2
        record = probe(middle)
        if record["ok"]:
            low = middle
            chosen = {"index": middle, "removed": record["removed"], "params": record["params"],
                      "scores": kept_scores(record), "drop": record["drop"], "fine_tune": record["fine_tune"]}
        else:
            high = middle - 1
    return {"probes": probes, "merged": chosen, "model": models[chosen["index"]]}
