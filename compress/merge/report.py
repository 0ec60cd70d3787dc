"""What a merge did: per layer neurons and parameters before and after, merges, refusals, evaluation."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LayerMerge", "MergeReport", "compare_models", "outcome_dict", "record_params"]


@dataclass
class LayerMerge:
    """The merges made in one producer layer.

    Attributes
    ----------
    name, type : str
    activation : str
        The nonlinearities between the layer and its consumers (``relu``, ``sigmoid``, ``linear``).
    rule : {"linear", "positive", "twin"}
        What a pair needed to be merged (see :mod:`compress.merge.math`).
    consumers : list of str
    neurons_before, neurons_after : int
    params_before, params_after : int
        The layer's own parameters.
    requested : int or None
        Neurons ``--ratio`` asked to remove.
    merges : list of dict
        ``{"removed", "keeper", "alpha", "residual", "exact"}`` with original indices.
    left_alone : list of dict
        ``{"neuron", "keeper", "reason"}``: group members not merged.
    notes : list of str
    """

    name: str
    type: str
    activation: str
    rule: str
    consumers: list
    neurons_before: int
    neurons_after: int = 0
    params_before: int = 0
    params_after: int = 0
    requested: int = None
    merges: list = field(default_factory=list)
    left_alone: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def removed(self):
        return self.neurons_before - self.neurons_after

    def to_dict(self):
        return {
            "name": self.name,
            "type": self.type,
            "activation": self.activation,
            "rule": self.rule,
            "consumers": list(self.consumers),
            "neurons": {"before": self.neurons_before, "after": self.neurons_after},
            "params": {"before": self.params_before, "after": self.params_after},
            "removed": self.removed,
            "requested": self.requested,
            "exact_merges": int(sum(m["exact"] for m in self.merges)),
            "merges": list(self.merges),
            "left_alone": list(self.left_alone),
            "notes": list(self.notes),
        }


@dataclass
class MergeReport:
    """A whole model's merge.

    Attributes
    ----------
    model : str
    metric : {"pearson", "mad", "cosine"}
    threshold : float or None
    ratio : float or None
    layers : list of LayerMerge
    skipped : list of SkippedLayer
        Layers left alone entirely, with the reason.
    layer_params : dict
        ``name -> (before, after)`` for every layer whose parameter count changed
        (producers and the consumers that lost inputs).
    params_before, params_after : int
        Whole model.
    evaluation : dict or None
        From :func:`compare_models` when data was given.
    notes : list of str
    """

    model: str
    metric: str
    threshold: float
    ratio: float
    layers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    layer_params: dict = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0
    evaluation: dict = None
    notes: list = field(default_factory=list)

    @property
    def removed(self):
        return int(sum(layer.removed for layer in self.layers))

    def to_dict(self):
        return {
            "model": self.model,
            "metric": self.metric,
            "threshold": self.threshold,
            "ratio": self.ratio,
            **outcome_dict(self),
        }


def outcome_dict(report):
    """The keys every merge report's ``to_dict`` ends with: layers, skips, parameters, evaluation, notes.

    Parameters
    ----------
    report : MergeReport or compress.merge.by_data.DataMergeReport

    Returns
    -------
    dict
        ``layers``, ``skipped``, ``layer_params``, ``totals``, ``evaluation``, ``notes``, in that order.
    """
    return {
        "layers": [layer.to_dict() for layer in report.layers],
        "skipped": [layer.to_dict() for layer in report.skipped],
        "layer_params": {name: {"before": b, "after": a} for name, (b, a) in report.layer_params.items()},
        "totals": {
            "neurons_removed": report.removed,
            "params_before": report.params_before,
            "params_after": report.params_after,
        },
        "evaluation": report.evaluation,
        "notes": list(report.notes),
    }


def _params(model, name):
    return int(model.get_layer(name).count_params())


def record_params(report, original, merged):
    """Fill a merge report's parameter counts from the original and the merged model, in place.

    Sets ``report.params_after``, ``report.layer_params`` (every layer with weights whose count
    changed: producers and the consumers that lost inputs) and each layer report's
    ``params_before`` / ``params_after``.

    Parameters
    ----------
    report : MergeReport or compress.merge.by_data.DataMergeReport
    original, merged : keras.Model
    """
    report.params_after = int(merged.count_params())
    for layer in merged.layers:
        if layer.weights:
            before, after = _params(original, layer.name), int(layer.count_params())
            if before != after:
                report.layer_params[layer.name] = (before, after)
    for layer_report in report.layers:
        layer_report.params_before = _params(original, layer_report.name)
        layer_report.params_after = _params(merged, layer_report.name)


def _labels(y):
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y), -1)[:, 0]


def _classes(output):
    output = np.asarray(output)
    if output.ndim == 2 and output.shape[1] > 1:
        return output.argmax(axis=1)
    return (output.reshape(len(output), -1)[:, 0] > 0.5).astype(np.int64)


def compare_models(original, merged, x, y=None, *, task="classification", batch_size=256):
    """Outputs of two models on the same inputs: accuracy before/after, agreement, output error.

    Parameters
    ----------
    original, merged : keras.Model
    x : ndarray of shape (n_samples, ...)
    y : ndarray of shape (n_samples,) or (n_samples, k), default=None
    task : {"classification", "regression"}

    Returns
    -------
    dict
        ``samples``, ``max_abs_output_difference`` and, for classification, ``accuracy_before``,
        ``accuracy_after`` (with labels) and ``agreement`` (same predicted class); for regression,
        ``mse_before`` / ``mse_after``.
    """
    before = np.asarray(original.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    after = np.asarray(merged.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    result = {"samples": int(len(x)), "max_abs_output_difference": float(np.abs(before - after).max())}
    if task == "classification":
        predicted_before, predicted_after = _classes(before), _classes(after)
        result["agreement"] = float(np.mean(predicted_before == predicted_after))
        if y is not None:
            labels = _labels(y)
            result["accuracy_before"] = float(np.mean(predicted_before == labels))
            result["accuracy_after"] = float(np.mean(predicted_after == labels))
    elif y is not None:
        target = np.asarray(y, dtype=np.float64).reshape(before.shape)
        result["mse_before"] = float(np.mean((before - target) ** 2))
        result["mse_after"] = float(np.mean((after - target) ** 2))
    return result
