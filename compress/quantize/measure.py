"""The float model's outputs on the evaluation set, and each mode's metrics against them.

:func:`measure_reference` runs and times the float model once (:class:`Reference`); its
:class:`Measure` fills a mode's row (agreement, output error, accuracy or MAE, per-class change)
from that mode's outputs, and :func:`per_output` gives the same comparison for each output of a
model with several.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.compress.quantize.compare import (
    accuracy,
    agreement,
    class_threshold,
    compare_outputs,
    mean_absolute_error,
    output_differences,
    output_kind,
    per_class_accuracy,
    per_element,
)
from weightkit.compress.quantize.evaluate import time_calls
from weightkit.compress.quantize.results import ReferenceResult
from weightkit.compress.quantize.source import output_names

__all__ = ["Measure", "Reference", "measure_reference", "per_output"]


class Measure:
    """Per-mode metrics against the reference outputs (and labels, when there is data).

    Parameters
    ----------
    reference : ndarray
        The float model's first output, ``(n_samples, ...)``.
    dataset : Dataset or None
    kind : {"binary", "multiclass", "multilabel", "regression"}
    threshold : float
    y : ndarray, default=None
        The first output's test labels.
    """

    def __init__(self, reference, dataset, kind, threshold, y=None):
        # Outputs with positions (a mask, a sequence) are measured per element: one row per pixel or step.
        self.reference, _, self.y = per_element(reference, reference, y)
        reference = self.reference
        self.dataset = dataset if y is not None else None
        self.kind = kind
        self.threshold = threshold
        self.classes = kind != "regression" and self.dataset is not None
        self.n_classes = None
        if self.classes:
            self.n_classes = max(dataset.n_classes or 0, 2 if kind == "binary" else reference.shape[-1])
        self.per_class_reference = self._per_class(reference)

    @property
    def basis(self):
        """What a drop is measured in: ``"agreement"`` without labels, else ``"mae"`` or ``"accuracy"``."""
        return "agreement" if self.dataset is None else ("mae" if self.kind == "regression" else "accuracy")

    def _per_class(self, outputs):
        if not self.classes:
            return None
        return per_class_accuracy(self._rows(outputs), self.y, self.kind, self.n_classes, self.threshold)

    def _rows(self, outputs):
        return per_element(outputs, outputs)[0]

    def task_scores(self, outputs):
        """(accuracy, mae) on the test split; Nones without data."""
        if self.dataset is None:
            return None, None
        outputs = self._rows(outputs)
        if self.kind == "regression":
            return None, mean_absolute_error(outputs, self.y)
        return accuracy(outputs, self.y, self.kind, self.threshold), None

    def fill(self, row, outputs):
        """Set ``row``'s task scores, output differences, agreement and per-class change from ``outputs``."""
        row.accuracy, row.mae = self.task_scores(outputs)
        outputs = self._rows(outputs)
        row.max_abs_diff, row.mean_abs_diff = output_differences(self.reference, outputs)
        row.agreement = agreement(self.reference, outputs, self.kind, threshold=self.threshold)
        if self.classes:
            change = self._per_class(outputs) - self.per_class_reference
            row.per_class_accuracy_change = [None if np.isnan(v) else float(v) for v in change]


@dataclass(frozen=True)
class Reference:
    """The float model on the evaluation set.

    Attributes
    ----------
    outputs : list of ndarray
        Every output, ``(n_samples, ...)`` each; the first is the one the table compares.
    labels : list of ndarray or None
        Each output's test labels.
    kind : str
        The first output's kind (:func:`~.compare.output_kind`).
    threshold : float
    measure : Measure
    row : ReferenceResult
        The reference row of the report (size, scores, timings).
    """

    outputs: list
    labels: list
    kind: str
    threshold: Any
    measure: Measure
    row: ReferenceResult

    @property
    def first(self):
        """The first output, ``(n_samples, ...)``."""
        return self.outputs[0]

    @property
    def score(self):
        """The reference's score in the drop basis: its MAE or its accuracy (None for agreement)."""
        return self.row.mae if self.measure.basis == "mae" else self.row.accuracy


def measure_reference(source, evaluation, options):
    """Run the float model on ``evaluation.x``, score it and time it.

    Parameters
    ----------
    source : ModelSource
    evaluation : EvaluationSet
    options : QuantizeOptions
        ``batch_size``, ``latency_repeats`` and ``throughput_repeats`` time it.

    Returns
    -------
    Reference
    """
    x, dataset = evaluation.x, evaluation.dataset
    outputs = source.predict(x)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    labels = evaluation.labels_per_output(len(outputs))
    kind = output_kind(_output_width(source.output_shape), evaluation.task)
    _check_labels(labels[0], dataset, outputs[0], kind)
    threshold = class_threshold(outputs[0], kind)
    measure = Measure(outputs[0], dataset, kind, threshold, labels[0])
    ref_accuracy, ref_mae = measure.task_scores(outputs[0])
    timing_batch = batch_of(x, options.batch_size)
    row = ReferenceResult(
        name=source.name, kind=source.kind, bytes=source.bytes, accuracy=ref_accuracy, mae=ref_mae,
        latency_ms=1000.0 * time_calls(lambda: source.call(take(x, np.arange(1))), options.latency_repeats, warmup=2),
        throughput=options.batch_size / time_calls(lambda: source.call(timing_batch), options.throughput_repeats,
                                                   warmup=1))
    return Reference(outputs, labels, kind, threshold, measure, row)


def per_output(source, references, outputs, labels, first_task):
    """Each output's comparison (agreement, output error, accuracy or MAE where labelled), by output name."""
    names = output_names(source, len(references))
    activations = output_activations(source.keras_model) if source.keras_model is not None else []
    result = {}
    for k, (reference, candidate, y) in enumerate(zip(references, outputs, labels)):
        activation = activations[k] if k < len(activations) else None
        if k == 0:
            task = first_task
        elif y is not None:
            task = "classification" if np.issubdtype(np.asarray(y).dtype, np.integer) else "regression"
        else:
            task = "classification" if activation in ("softmax", "sigmoid") else None
        compared = compare_outputs(reference, np.asarray(candidate).reshape(reference.shape), y, task=task)
        compared.pop("samples", None)
        result[names[k]] = compared
    return result


def batch_of(x, batch_size):
    """``batch_size`` samples of ``x`` (repeated when there are fewer), for the throughput measurement."""
    if isinstance(x, list):
        return take(x, np.arange(batch_size) % n_samples(x))
    reps = -(-batch_size // len(x))
    return np.concatenate([x] * reps)[:batch_size] if reps > 1 else x[:batch_size]


def _output_width(shape):
    return int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1


def _check_labels(y, dataset, reference, kind):
    if dataset is None or y is None or kind != "regression":
        return
    if np.asarray(y).size != reference.size:
        raise WeightkitError(
            f"--data {dataset.source}: {np.asarray(y).size // max(1, len(reference))} target values "
            f"per sample but the model outputs {reference.size // max(1, len(reference))}; give one target per output."
        )

