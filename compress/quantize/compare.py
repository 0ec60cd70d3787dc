"""The comparison's numeric core: numpy outputs in, metrics and the export choice out.

Nothing here knows about Keras or TFLite. What *agreement* means depends on the model's output:

- ``multiclass`` (an output of width > 1): the same argmax class as the reference.
- ``binary`` (one output, a classification task): the same side of the decision threshold
  (0.5 for probabilities, 0 for logits).
- ``regression`` (one or more real outputs): every output within ``tolerance`` (1 %) of the
  reference outputs' range of the reference prediction.
"""

import numpy as np

from weightkit.analysis.errors import WeightkitError

__all__ = ["OUTPUT_KINDS", "output_kind", "decision_threshold", "class_threshold", "agreement",
           "output_differences", "predicted_labels", "label_indices", "accuracy", "mean_absolute_error",
           "per_class_accuracy", "compare_outputs", "compare_several", "per_element", "score_drop", "choose_export", "DROP_BASES"]

OUTPUT_KINDS = ("multiclass", "binary", "regression")
DROP_BASES = {
    "accuracy": "accuracy drop in percentage points (100 × (reference accuracy − accuracy))",
    "mae": "MAE increase in percent of the reference MAE (100 × (MAE − reference MAE) / reference MAE)",
    "agreement": "disagreement with the reference in percentage points (100 × (1 − agreement))",
}


def output_kind(output_width, task=None):
    """``"multiclass"``, ``"binary"`` or ``"regression"`` for an output of ``output_width`` values.

    Parameters
    ----------
    output_width : int
        Size of the last output axis (1 for a single value).
    task : {"classification", "regression"} or None
        From the data when given; without data a width-1 output counts as regression.
    """
    if task == "regression":
        return "regression"
    if output_width and output_width > 1:
        return "multiclass"
    return "binary" if task == "classification" else "regression"


def decision_threshold(reference):
    """0.5 when every reference output lies in [0, 1] (probabilities), else 0 (logits)."""
    reference = np.asarray(reference)
    return 0.5 if reference.size and reference.min() >= 0.0 and reference.max() <= 1.0 else 0.0


def class_threshold(reference, kind):
    """The decision threshold for outputs of ``kind``: :func:`decision_threshold` for binary, else 0.5 (unused)."""
    return decision_threshold(reference) if kind == "binary" else 0.5


def _flat(outputs):
    outputs = np.asarray(outputs, dtype=np.float64)
    return outputs.reshape(len(outputs), -1)


def predicted_labels(outputs, kind, threshold=0.5):
    """Class labels of shape (n,) from outputs of shape (n, k) (multiclass) or (n,)/(n, 1) (binary)."""
    flat = _flat(outputs)
    if kind == "multiclass":
        return flat.argmax(axis=1)
    if kind == "binary":
        return (flat[:, 0] > threshold).astype(np.int64)
    raise ValueError(f"predicted_labels: kind {kind!r} has no classes; expected 'multiclass' or 'binary'")


def label_indices(y):
    """Integer labels of shape (n,) from integer labels or one-hot rows of shape (n, k)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return y.reshape(len(y)).astype(np.int64)


def _agreement_classes(reference, candidate, kind, threshold, tolerance):
    return float(np.mean(predicted_labels(reference, kind, threshold) == predicted_labels(candidate, kind, threshold)))


def _agreement_regression(reference, candidate, kind, threshold, tolerance):
    ref, cand = _flat(reference), _flat(candidate)
    spread = float(ref.max() - ref.min()) if ref.size else 0.0
    if spread == 0.0:
        spread = float(np.abs(ref).max()) if ref.size else 0.0
    allowed = tolerance * (spread if spread > 0.0 else 1.0)
    return float(np.mean(np.all(np.abs(cand - ref) <= allowed, axis=1)))


_AGREEMENT = {"multiclass": _agreement_classes, "binary": _agreement_classes, "regression": _agreement_regression}


def agreement(reference, candidate, kind, *, threshold=0.5, tolerance=0.01):
    """Share of samples on which a candidate model agrees with the reference.

    Parameters
    ----------
    reference, candidate : ndarray of shape (n, ...)
        Outputs of the reference (Keras) model and of the candidate (TFLite) model.
    kind : {"multiclass", "binary", "regression"}
    threshold : float, default=0.5
        Binary decision threshold (see :func:`decision_threshold`).
    tolerance : float, default=0.01
        Regression: allowed |difference| as a fraction of the reference outputs' range.

    Returns
    -------
    float
        In [0, 1].
    """
    if kind not in _AGREEMENT:
        raise ValueError(f"agreement: unknown kind {kind!r}; expected one of {', '.join(OUTPUT_KINDS)}")
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"agreement: reference has shape {reference.shape}, candidate {candidate.shape}; "
                         "they must match")
    if len(reference) == 0:
        return float("nan")
    return _AGREEMENT[kind](reference, candidate, kind, threshold, tolerance)


def output_differences(reference, candidate):
    """``(max, mean)`` of |candidate − reference| over every output value."""
    diff = np.abs(np.asarray(candidate, np.float64) - np.asarray(reference, np.float64))
    return (float(diff.max()), float(diff.mean())) if diff.size else (float("nan"), float("nan"))


def accuracy(outputs, y, kind, threshold=0.5):
    """Share of correct predictions, labels ``y`` of shape (n,) or one-hot (n, k)."""
    return float(np.mean(predicted_labels(outputs, kind, threshold) == label_indices(y)))


def mean_absolute_error(outputs, y):
    """Mean |outputs − y| with ``y`` reshaped to the outputs' (n, k)."""
    flat = _flat(outputs)
    return float(np.mean(np.abs(flat - np.asarray(y, np.float64).reshape(flat.shape))))


def per_class_accuracy(outputs, y, kind, n_classes, threshold=0.5):
    """Accuracy within each true class, shape (n_classes,); NaN for a class absent from ``y``."""
    labels = label_indices(y)
    correct = predicted_labels(outputs, kind, threshold) == labels
    result = np.full(n_classes, np.nan)
    for cls in range(n_classes):
        mask = labels == cls
        if mask.any():
            result[cls] = correct[mask].mean()
    return result


def compare_outputs(reference, candidate, y=None, *, task=None):
    """Two models' outputs on the same inputs: agreement, accuracy before and after, output error.

    The comparison of a merged model with its original (:func:`weightkit.compress.merge.reporting.report.compare_models`);
    agreement and the binary decision threshold are those of the quantization comparison.

    Parameters
    ----------
    reference, candidate : ndarray of shape (n, ...)
        Outputs of the original and of the changed model.
    y : ndarray of shape (n,) or (n, k), default=None
        Labels (classification) or targets (regression).
    task : {"classification", "regression"} or None, default=None
        See :func:`output_kind`; without it a width-1 output counts as regression.

    Returns
    -------
    dict
        ``samples``, ``max_abs_output_difference`` and, when the output has classes,
        ``agreement`` (same class; binary: same side of :func:`decision_threshold` of the
        reference) and with labels ``accuracy_before`` / ``accuracy_after``; for regression with
        targets, ``mae_before`` / ``mae_after`` (the one regression metric of merge, retrain and
        quantize). Outputs with positions are compared per element (see :func:`per_element`).
    """
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    result = {"samples": int(len(reference)), "max_abs_output_difference": output_differences(reference, candidate)[0]}
    reference, candidate, y = per_element(reference, candidate, y)
    kind = output_kind(int(reference.shape[-1]) if reference.ndim > 1 else 1, task)
    if kind != "regression":
        threshold = class_threshold(reference, kind)
        result["agreement"] = agreement(reference, candidate, kind, threshold=threshold)
        if y is not None:
            result["accuracy_before"] = accuracy(reference, y, kind, threshold)
            result["accuracy_after"] = accuracy(candidate, y, kind, threshold)
    elif y is not None:
        result["mae_before"] = mean_absolute_error(reference, y)
        result["mae_after"] = mean_absolute_error(candidate, y)
    return result


def per_element(reference, candidate, y=None):
    """Outputs with positions (an image, a sequence) as one row per element: (n, ..., k) -> (n × positions, k).

    Agreement, accuracy and errors of a segmentation mask or a per-timestep output are then
    counted per pixel or per step, never on the first element only. Labels of the output's
    shape become rows alike; one class index per element (shape (n, ...) without ``k``) becomes
    one index per row. Outputs of shape (n,) or (n, k) are returned as they are.
    """
    if reference.ndim <= 2:
        return reference, candidate, y
    width = reference.shape[-1]
    rows = (-1, width)
    if y is not None:
        y = np.asarray(y)
        y = y.reshape(-1) if y.shape == reference.shape[:-1] else y.reshape(rows)
    return reference.reshape(rows), candidate.reshape(rows), y


def compare_several(references, candidates, ys=None, tasks=None, names=None):
    """:func:`compare_outputs` for each of a model's outputs; the first output's keys lead.

    Parameters
    ----------
    references, candidates : list of ndarray
        One array per output, in model order.
    ys : list of (ndarray or None), default=None
        Labels per output; None where an output has none.
    tasks : list of (str or None), default=None
    names : list of str, default=None
        Output names (``output_0``... when not given).

    Returns
    -------
    dict
        The first output's comparison, with ``outputs``: output name -> its own comparison
        when there are several.
    """
    count = len(references)
    ys = list(ys) if ys is not None else [None] * count
    tasks = list(tasks) if tasks is not None else [None] * count
    names = list(names) if names is not None else [f"output_{i}" for i in range(count)]
    each = [compare_outputs(r, c, y, task=t) for r, c, y, t in zip(references, candidates, ys, tasks)]
    result = dict(each[0])
    if count > 1:
        result["outputs"] = dict(zip(names, each))
    return result


def score_drop(basis, reference, candidate):
    """How much worse a candidate is than the reference, in the basis's unit (see :data:`DROP_BASES`).

    Parameters
    ----------
    basis : {"accuracy", "mae", "agreement"}
    reference : float or None
        Reference accuracy or MAE (ignored for ``"agreement"``).
    candidate : float
        Candidate accuracy, MAE or agreement.

    Returns
    -------
    float
        Positive = worse. For ``"mae"`` with a zero reference MAE, any error counts as +inf.
    """
    if basis == "accuracy":
        return 100.0 * (reference - candidate)
    if basis == "mae":
        if reference == 0.0:
            return 0.0 if candidate == 0.0 else float("inf")
        return 100.0 * (candidate - reference) / reference
    if basis == "agreement":
        return 100.0 * (1.0 - candidate)
    raise ValueError(f"score_drop: unknown basis {basis!r}; expected one of {', '.join(DROP_BASES)}")


_BASIS_WORDS = {"accuracy": ("accuracy drop", "points"), "mae": ("MAE increase", "%"),
                "agreement": ("disagreement", "points")}


def choose_export(candidates, *, max_drop=1.0, export=None, basis="accuracy", order=None):
    """Pick the model to export: the smallest within ``max_drop``, or the mode named by ``export``.

    Parameters
    ----------
    candidates : list of dict
        One per converted mode: ``{"mode": str, "bytes": int, "drop": float}`` (``drop`` from
        :func:`score_drop`). Failed modes must not be passed.
    max_drop : float, default=1.0
        Largest acceptable drop in the basis's unit.
    export : str, default=None
        Export this mode regardless of its drop.
    basis : {"accuracy", "mae", "agreement"}, default="accuracy"
        Only used to word the reason.
    order : list of str, default=None
        Tie-break order of equal sizes (default: the candidates' order).

    Returns
    -------
    mode : str
    reason : str
        One sentence for the report.

    Raises
    ------
    WeightkitError
        When ``export`` names a mode that is not among the candidates, or there is no candidate.
    """
    what, unit = _BASIS_WORDS[basis]
    by_mode = {c["mode"]: c for c in candidates}
    if export is not None:
        if export not in by_mode:
            raise WeightkitError(
                f"--export {export}: that mode was not converted (failed or not in --modes); choose one of "
                f"{', '.join(by_mode) or '(none converted)'}."
            )
        chosen = by_mode[export]
        return export, f"requested with --export ({what} {chosen['drop']:.2f} {unit}, {chosen['bytes']:,} bytes)"
    if not candidates:
        raise WeightkitError("quantize: no mode could be converted; see each mode's reason above.")
    rank = {mode: index for index, mode in enumerate(order or [c["mode"] for c in candidates])}
    within = [c for c in candidates if c["drop"] <= max_drop]
    if within:
        chosen = min(within, key=lambda c: (c["bytes"], rank.get(c["mode"], len(rank))))
        return chosen["mode"], (f"smallest model ({chosen['bytes']:,} bytes) whose {what} "
                                f"({chosen['drop']:.2f} {unit}) is within --max-drop {max_drop:g}")
    chosen = min(candidates, key=lambda c: (c["drop"], c["bytes"]))
    return chosen["mode"], (f"no mode within --max-drop {max_drop:g}; exported the one with the smallest "
                            f"{what} ({chosen['drop']:.2f} {unit}, {chosen['bytes']:,} bytes)")
