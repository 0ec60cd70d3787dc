"""What a merge did: per layer neurons and parameters before and after, merges, refusals, evaluation.

:class:`BaseMergeReport` holds what every merge reports (layers, skips, parameter counts, the
held-out evaluation, notes); :class:`MergeReport` (by weights) and
:class:`weightkit.compress.merge.by_data.DataMergeReport` (by data) add their settings.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.data.inputs import as_dataset, is_path
from weightkit.analysis.results import layer_named
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.quantize.compare import compare_several

__all__ = ["AGREEMENT_FLOOR", "BaseMergeReport", "LayerMerge", "MergeReport", "compare_models", "evaluate_merge",
           "merge_warning", "record_params"]

#: Below this held-out agreement with the original, a merge's report says so in one line (``warning``).
AGREEMENT_FLOOR = 0.9


@dataclass
class LayerMerge:
    """The merges made in one producer layer.

    Attributes
    ----------
    name, type : str
    activation : str
        The nonlinearities between the layer and its consumers (``relu``, ``sigmoid``, ``linear``).
    rule : {"linear", "positive", "twin"}
        What a pair needed to be merged (see :mod:`weightkit.compress.merge.applying.math`).
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
    producers : list of str
        For a coupled channel group: its producer layers (empty for a single layer).
    members : list of str
        For a coupled group: every layer whose weights the merge changes.
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
    producers: list = field(default_factory=list)
    members: list = field(default_factory=list)

    @property
    def removed(self):
        return self.neurons_before - self.neurons_after

    def to_dict(self):
        return {
            **({"group": {"producers": list(self.producers), "members": list(self.members)}} if self.producers else {}),
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


@dataclass(kw_only=True)
class BaseMergeReport:
    """What every merge reports, whichever way it chose the neurons.

    Attributes
    ----------
    model : str
    layers : list
        One report per producer layer (:class:`LayerMerge` or
        :class:`weightkit.compress.merge.by_data.LayerDataMerge`).
    skipped : list of SkippedLayer
        Layers left alone entirely, with the reason.
    layer_params : dict
        ``name -> (before, after)`` for every layer whose parameter count changed
        (producers and the consumers that lost inputs).
    params_before, params_after : int
        Whole model.
    evaluation : dict or None
        From :func:`evaluate_merge` when the merge was given held-out data (``evaluate_on=``).
    notes : list of str
    warning : str or None
        One line when the held-out evaluation shows the merged model drifting from the original
        (agreement below :data:`AGREEMENT_FLOOR`, or a budget exceeded), naming the options that
        help (:func:`merge_warning`).
    """

    model: str
    layers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    layer_params: dict = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0
    evaluation: dict = None
    notes: list = field(default_factory=list)
    warning: str = None

    #: ``"weights"`` or ``"data"``: the ``mode`` of :func:`weightkit.compress.merge_neurons` that makes it.
    mode = None

    @property
    def removed(self):
        """Neurons removed over all layers."""
        return int(sum(layer.neurons_before - layer.neurons_after for layer in self.layers))

    def layer(self, name):
        """The report of the producer layer called ``name``; KeyError when it was not merged."""
        return layer_named(self.layers, name)

    def evaluate(self, original, merged, data):
        """Fill :attr:`evaluation` by comparing the two models on ``data`` (see :func:`evaluate_merge`), and
        :attr:`warning` when they agree less than :data:`AGREEMENT_FLOOR`."""
        self.evaluation = evaluate_merge(original, merged, data)
        self.warning = merge_warning(self.evaluation, self.mode)
        return self.evaluation

    def settings(self):
        """The keys a report's ``to_dict`` starts with after ``model``: how the merge was asked for."""
        return {}

    def to_dict(self):
        return {
            "model": self.model,
            **self.settings(),
            "layers": [layer.to_dict() for layer in self.layers],
            "skipped": [layer.to_dict() for layer in self.skipped],
            "layer_params": {name: {"before": b, "after": a} for name, (b, a) in self.layer_params.items()},
            "totals": {
                "neurons_removed": self.removed,
                "params_before": self.params_before,
                "params_after": self.params_after,
            },
            "evaluation": self.evaluation,
            "warning": self.warning,
            "notes": list(self.notes),
        }


@dataclass(kw_only=True)
class MergeReport(BaseMergeReport):
    """A whole model's merge by weights (:func:`weightkit.compress.merge.merge_redundant`).

    Attributes
    ----------
    metric : {"pearson", "mad", "cosine"}
    threshold : float or None
    ratio : float or None
    layers : list of LayerMerge

    The other attributes are those of :class:`BaseMergeReport`.
    """

    metric: str
    threshold: float = None
    ratio: float = None

    mode = "weights"

    def settings(self):
        return {"metric": self.metric, "threshold": self.threshold, "ratio": self.ratio}


def _params(model, name):
    return int(find_layer(model, name).count_params())


def record_params(report, original, merged):
    """Fill a merge report's parameter counts from the original and the merged model, in place.

    Sets ``report.params_after``, ``report.layer_params`` (every layer with weights whose count
    changed: producers and the consumers that lost inputs) and each layer report's
    ``params_before`` / ``params_after``.

    Parameters
    ----------
    report : MergeReport or weightkit.compress.merge.by_data.DataMergeReport
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


def _predict(model, x, batch_size):
    """The model's outputs on ``x`` as a list of float64 arrays, one per output."""
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(outputs, dict):
        outputs = [outputs[name] for name in model.output_names] if hasattr(model, "output_names") else \
            list(outputs.values())
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(output, dtype=np.float64) for output in outputs]


def output_tasks(model, ys, first_task=None):
    """Each output's task: the data's for the first, else from the output's activation and its labels."""
    activations = output_activations(model)
    tasks = []
    for index, (activation, y) in enumerate(zip(activations, ys)):
        if index == 0 and first_task is not None:
            tasks.append(first_task)
        elif activation in ("softmax", "sigmoid"):
            tasks.append("classification")
        elif y is not None:
            integer = np.issubdtype(np.asarray(y).dtype, np.integer)
            tasks.append("classification" if integer else "regression")
        else:
            tasks.append(None)
    return tasks


def compare_models(original, merged, x, y=None, *, task="classification", batch_size=256):
    """Outputs of two models on the same inputs: accuracy before/after, agreement, output error.

    Parameters
    ----------
    original, merged : keras.Model
    x : ndarray of shape (n_samples, ...), or a list of them (one per input, model order)
    y : ndarray of shape (n_samples, ...), list of them (or of None, one per output), default=None
    task : {"classification", "regression"} or None, default="classification"
        The first output's; None: judged from the output width alone (several outputs: classes;
        one: regression). Other outputs are judged from their activation and labels.

    Returns
    -------
    dict
        See :func:`weightkit.compress.quantize.compare.compare_outputs`: the same agreement (and binary
        decision threshold) as the quantization comparison, for the first output; with several
        outputs, ``outputs`` maps each output name to its own comparison (agreement per output,
        accuracy or MAE where it has labels, per element for outputs with positions).
    """
    before, after = _predict(original, x, batch_size), _predict(merged, x, batch_size)
    ys = list(y) if isinstance(y, (list, tuple)) else [y] + [None] * (len(before) - 1)
    return compare_several(before, after, ys, output_tasks(original, ys, task), _output_names(original, len(before)))


def _output_names(model, count):
    try:
        return ModelGraph(model).output_names
    except WeightkitError:
        return [f"output_{i}" for i in range(count)]


def evaluate_merge(original, merged, data, *, batch_size=256):
    """A merge's held-out evaluation: :func:`compare_models` on the test split of ``data``.

    Parameters
    ----------
    original, merged : keras.Model
    data : Dataset, ndarray of shape (n_samples, ...), str or os.PathLike
        A dataset's (or data specification's, loaded for ``original``) test split with its labels
        and task; an array is compared without labels.

    Returns
    -------
    dict
        :func:`compare_models`' keys, and ``data``: the dataset's source (``"the given inputs"`` for
        an array).
    """
    if isinstance(data, Dataset) or is_path(data):
        dataset = as_dataset(data, original, what="evaluate_on")
        evaluation = compare_models(original, merged, dataset.x_test, dataset.y_test, task=dataset.task,
                                    batch_size=batch_size)
        evaluation["data"] = dataset.source
        return evaluation
    x = [np.asarray(a) for a in data] if isinstance(data, (list, tuple)) else np.asarray(data)
    evaluation = compare_models(original, merged, x, task=None, batch_size=batch_size)
    evaluation["data"] = "the given inputs"
    return evaluation


def merge_warning(evaluation, mode, *, budget=None):
    """The one line that says a merged model drifted from its original, and what helps; None when it did not.

    Parameters
    ----------
    evaluation : dict or None
        :func:`evaluate_merge`'s result (its ``agreement`` and ``samples``).
    mode : {"weights", "data"}
        The merge's mode: which options to name.
    budget : tuple of (float, float, str), default=None
        ``(drop, max_drop, unit)`` of a ``--max-drop`` merge on the held-out samples no choice read;
        ``unit`` as written (``"accuracy points"``, ``"agreement points"``, ``"MAE"``: a drop then is MAE
        added).

    Returns
    -------
    str or None

    Examples
    --------
    >>> merge_warning({"agreement": 0.95, "samples": 359}, "data") is None
    True
    """
    if not evaluation:
        return None
    helps = ("try --max-drop 1 (the largest merge within 1 point), --fine-tune 10 (distil the original back in) or "
             "a smaller --ratio." if mode == "data" else
             "try --mode data --max-drop 1 (the largest merge within 1 point), --mode data --fine-tune 10 or a "
             "smaller --ratio.")
    if budget is not None and budget[0] > budget[1] + 1e-9:
        drop, max_drop, unit = budget
        spent = f"added {drop:.3g} MAE" if unit == "MAE" else f"lost {drop:.3g} {unit}"
        return (f"warning: on {evaluation['samples']} held-out samples no choice read the merge {spent}, "
                f"more than --max-drop {max_drop:g}: the validation half was kinder; "
                + ("try --fine-tune 10 or a smaller --max-drop." if mode == "data" else helps))
    agreement = evaluation.get("agreement")
    if agreement is None or agreement >= AGREEMENT_FLOOR:
        return None
    return (f"warning: the merged model agrees with the original on only {agreement:.1%} of {evaluation['samples']} "
            f"held-out samples (below {AGREEMENT_FLOOR:.0%}): " + helps)
