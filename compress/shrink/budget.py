"""``merge --max-drop`` and ``merge --fine-tune``: shrink's sensitivity, search and distillation for a merge.

:func:`merge_within_budget` measures every mergeable layer's curve
(:func:`weightkit.compress.shrink.sensitivity.sensitivity_curves`), orders the removals along the greedy
path (:func:`weightkit.compress.shrink.allocation.greedy_path`) and bisects it
(:func:`weightkit.compress.shrink.search.search_removals`) for the deepest allocation whose drop on the
validation split, as a :class:`weightkit.compress.shrink.judge.Judge` counts it, stays within the budget:
the same code, fractions and probes ``shrink`` runs (its sensitivity and search stages call
:func:`budget_curves`, :func:`budget_removals` and ``search_removals`` themselves, to checkpoint between
them), on the same calibration draw (:func:`calibration_inputs`) and validation half
(:func:`held_out_halves`).

:func:`fine_tune_merged` is :func:`weightkit.compress.shrink.distill.distill` with the original as the
teacher: it needs no labels (then it learns the teacher's soft targets alone and stops early on
agreement).
"""

import numpy as np

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.errors import WeightkitError
from weightkit.compress.shrink.allocation import greedy_path
from weightkit.compress.shrink.distill import fine_tune_merged
from weightkit.compress.shrink.judge import UNITS
from weightkit.compress.shrink.search import search_removals
from weightkit.compress.shrink.sensitivity import DEFAULT_FRACTIONS, sensitivity_curves

__all__ = ["BUDGET_FRACTIONS", "BUDGET_PROBES", "MERGE_FRACTIONS", "budget_curves", "budget_removals",
           "calibration_inputs", "fine_tune_merged", "held_out_halves", "merge_within_budget",
           "split_held_out"]

#: Fractions of each layer the sensitivity of ``merge --max-drop`` and ``shrink`` tries, lightest first. Measured
#: 2026-12-07 (1-point budget, digits): on the residual CNN, shrink's former grid (0.5, 0.75, 0.9, 0.97) had no
#: allocation between 28,986 parameters (-1.11 points) and 14,618 (2.2-3.3 points lost), where starting at 0.25
#: found 21,802-24,338 within the budget; adding 0.97 changed neither subject's choice and cost 10-70% more time.
BUDGET_FRACTIONS = DEFAULT_FRACTIONS
#: Allocations the bisection merges at most, in ``merge --max-drop`` and ``shrink``.
BUDGET_PROBES = 6
#: The name ``merge --max-drop``'s fractions had before ``shrink`` shared them.
MERGE_FRACTIONS = BUDGET_FRACTIONS


def _take(x, index):
    return [np.asarray(a)[index] for a in x] if isinstance(x, (list, tuple)) else np.asarray(x)[index]


def calibration_inputs(x_train, samples=None, *, seed=0):
    """The training inputs every budgeted merge is fitted on: all of them up to the cap, a seeded draw.

    Parameters
    ----------
    x_train : ndarray of shape (n, ...), or a list of them
    samples : int, default=None
        How many; None: :func:`weightkit.compress.merge.by_data.calibration_count` (all, up to its cap).
    seed : int, default=0

    Returns
    -------
    x : ndarray of shape (n_calibration, ...), or a list of them
    index : ndarray of shape (n_calibration,)
        Their positions in ``x_train``, sorted.
    """
    from weightkit.compress.merge.by_data import calibration_count

    count = calibration_count(n_samples(x_train), samples)
    index = np.sort(np.random.default_rng(seed).permutation(n_samples(x_train))[:count])
    return _take(x_train, index), index


def held_out_halves(n, *, n_train=None, seed=0, share=0.5):
    """Positions of the validation and test halves of ``n`` held-out samples, each sorted.

    Parameters
    ----------
    n : int
    n_train : int, default=None
        The training split's size: its permutation is drawn first from the same generator, as
        :func:`weightkit.compress.shrink.splits.split_for_shrink` always did.
    seed : int, default=0
    share : float, default=0.5
        The validation share.

    Returns
    -------
    validation, test : ndarray of int
    """
    rng = np.random.default_rng(seed)
    if n_train is not None:
        rng.permutation(int(n_train))
    order = rng.permutation(int(n))
    cut = round(share * n)
    return np.sort(order[:cut]), np.sort(order[cut:])


def split_held_out(x, y=None, *, seed=0, minimum=20, n_train=None):
    """Cut held-out data into a validation half (every choice reads it) and a test half (only reported).

    Parameters
    ----------
    x : ndarray of shape (n, ...), or a list of them
    y : ndarray of shape (n, ...), default=None
    seed : int, default=0
    minimum : int, default=20
        Fewer held-out samples than this: both halves are the whole split (said in the returned note).
    n_train : int, default=None
        The training split's size: the halves are then drawn as
        :func:`weightkit.compress.shrink.splits.split_for_shrink` draws its validation and test splits from
        the same data and seed, so ``merge --max-drop`` and ``shrink`` choose on the same samples.

    Returns
    -------
    (x_validation, y_validation), (x_test, y_test), note : str or None
    """
    n = n_samples(x)
    if n < minimum:
        return (x, y), (x, y), (f"only {n} held-out samples: the budget was chosen and reported on the same "
                                "samples")
    first, second = held_out_halves(n, n_train=n_train, seed=seed)
    pick = (lambda index: None) if y is None else (lambda index: _take(y, index))
    return (_take(x, first), pick(first)), (_take(x, second), pick(second)), None


def budget_curves(model, x_calibration, judge, *, fractions=BUDGET_FRACTIONS, target="params", seed=0,
                  progress=None):
    """Every mergeable layer's sensitivity curve, scored by ``judge`` on its split (the first half of a budget)."""
    return sensitivity_curves(model, x_calibration, judge.score, fractions=fractions, target=target, seed=seed,
                              progress=progress)


def budget_removals(curves):
    """The greedy path through ``curves`` as neurons removed per layer at each step; the first removes nothing.

    Returns
    -------
    path : list of Allocation
    removals : list of dict of str to int
    """
    path = greedy_path({c.name: c.levels("error") for c in curves})
    removals = [{c.name: (c.points[a.levels[c.name] - 1]["removed"] if a.levels[c.name] else 0) for c in curves}
                for a in path]
    return path, removals


def merge_within_budget(model, x_calibration, judge, *, max_drop, fractions=BUDGET_FRACTIONS,
                        max_probes=BUDGET_PROBES, refit=False, samples=None, seed=0, progress=None):
    """The deepest per-layer allocation of a data-aware merge whose drop on ``judge``'s split is within budget.

    The same three steps ``shrink`` runs with the same defaults (its sensitivity, search and
    fine-tune stages): :func:`budget_curves`, :func:`budget_removals`,
    :func:`weightkit.compress.shrink.search.search_removals`.

    Parameters
    ----------
    model : keras.Model
        The original; not modified.
    x_calibration : ndarray of shape (n, ...), or a list of them
        Training inputs that fit every merge (:func:`calibration_inputs`).
    judge : Judge
        Scores on the validation split (its :attr:`~Judge.unit` is the budget's).
    max_drop : float
        Accuracy or agreement points, or MAE (:data:`weightkit.compress.shrink.judge.UNITS`).
    fractions : sequence of float, default=BUDGET_FRACTIONS
    max_probes : int, default=BUDGET_PROBES
        Allocations the bisection merges at most.
    refit : bool, default=False
        Merge each probed allocation with the sequential refit. Off, as in ``shrink``, so both find
        the same allocation. Measured 2026-12-07 05:00 UTC (``bench_merge_default.py --budget-only``, 1
        point, shared 2-core machine): ``merge --max-drop`` and ``shrink``'s float model (no fine-tune,
        no quantization reserve) now keep the same 6,120 of the digits MLP's 85,002 parameters (test
        half 0.9553 against 0.9721) and the same 25,298 of the residual CNN's 38,282 (0.9777 against
        1.0000); before they shared this function they kept 6,120 / 2,662 and 18,306 / 24,338.
    samples : int, default=None
        Calibration inputs per fit (all of ``x_calibration`` when None).
    seed : int, default=0
    progress : callable, default=None
        ``progress(done, total, what)``.

    Returns
    -------
    model : keras.Model
        The chosen allocation merged (the original itself when nothing fits the budget).
    summary : dict
        ``unit`` (what ``max_drop`` and ``drop`` count), ``metric`` (what the scores hold:
        :attr:`~Judge.metric_key`), ``max_drop``, ``validation_samples``, ``drop`` (on the validation split),
        ``removed`` per layer, ``probes`` and the sensitivity ``curves``.
    """
    if not float(max_drop) >= 0:
        raise WeightkitError(f"--max-drop {max_drop}: must be at least 0 ({UNITS[judge.unit]}), e.g. 1.")
    if samples is not None and n_samples(x_calibration) > int(samples):
        x_calibration, _ = calibration_inputs(x_calibration, samples, seed=seed)
    curves = budget_curves(model, x_calibration, judge, fractions=fractions, seed=seed, progress=progress)
    path, removals = budget_removals(curves)
    found = search_removals(model, x_calibration, removals, judge.score, budget=float(max_drop),
                            max_drop=float(max_drop), max_probes=max_probes, seed=seed, refit=refit,
                            progress=progress and (lambda what: progress(0, 1, what)))
    chosen = found["merged"]
    summary = {"unit": judge.unit, "metric": judge.metric_key, "max_drop": float(max_drop), "validation_samples": n_samples(judge.x),
               "drop": float(chosen["drop"]), "removed": dict(chosen["removed"]), "path_steps": len(path) - 1,
               "chosen_step": int(chosen["index"]),
               "probes": [{"index": p["index"], "removed": p["removed"], "params": p["params"], "drop": p["drop"],
                           "within_budget": p["ok"]} for p in found["probes"]],
               "curves": [c.to_dict() for c in curves]}
    return found["model"], summary
