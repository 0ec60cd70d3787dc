"""How far a candidate model is from the original on one split, in the unit of a budget.

:class:`Judge` runs the original once on the split and scores any candidate against it:

- a classifier with labels: accuracy points lost (``100 · (accuracy_original − accuracy)``);
- a classifier without labels: agreement points lost (``100 · (1 − agreement)``);
- a regression (one linear output column per element): the MAE added against the labels, or
  the mean absolute difference from the original's outputs without labels.

Classes are read along the last axis, so per-element outputs (a segmentation's per-pixel classes)
are scored per element; a one-column sigmoid (or logit) output is a binary class. With several
outputs the budget reads the first output; every output adds to the smooth ``error`` (KL divergence
to the original's probabilities, or squared difference over the original's variance) that ranks
the per-layer sensitivity curves and the distillation's epochs. An output after the first is a class
output behind a softmax or sigmoid, else a regression (it has no labels or task to say otherwise).
"""

import numpy as np

from weightkit.analysis.data.checks import output_activations
from weightkit.compress.shrink.scores import element_classes, element_probabilities

__all__ = ["UNITS", "Judge", "model_outputs"]

#: ``unit -> how a drop in it is written``.
UNITS = {"accuracy": "accuracy points", "agreement": "agreement points", "mae": "MAE"}

_EPS = 1e-7


def model_outputs(model, x, batch_size=256):
    """A model's outputs on ``x`` as a list of float64 arrays, one per output, in model order.

    ``model`` is a Keras model or a ``.tflite`` runner (:class:`weightkit.compress.quantize.TFLiteModel`,
    ``SignatureModel``), whose ``predict`` takes no ``verbose``.
    """
    try:
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
    except TypeError:  # a .tflite runner
        outputs = model.predict(x, batch_size=batch_size)
    if isinstance(outputs, dict):
        outputs = [outputs[name] for name in model.output_names]
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(output, dtype=np.float64) for output in outputs]


def _is_classifier(output, activation, task, first=True):
    """The first output: ``task``, else classes when two columns or more, or a softmax or sigmoid; every other
    output (no labels to say): classes only behind a softmax or sigmoid."""
    if task is not None:
        return task == "classification"
    width = output.shape[-1] if output.ndim > 1 else 1
    return (first and width >= 2) or activation in ("softmax", "sigmoid")


class Judge:
    """Scores candidates against the original on one split (see the module docstring).

    Parameters
    ----------
    original : keras.Model
    x : ndarray of shape (n_samples, ...), or a list of them (one per input)
    y : ndarray, or a list of them (one per output), default=None
        Labels of the first output (of a list, the first); None: compared with the original alone.
    task : {"classification", "regression"}, default=None
        The first output's; None: a classifier when it has two columns or more, or a softmax or sigmoid.
    batch_size : int, default=256

    Attributes
    ----------
    unit : {"accuracy", "agreement", "mae"}
        What ``drop`` counts (:data:`UNITS`).
    reference : dict
        The original's own scores (``accuracy`` or ``mae`` when it has labels).
    activations : list of str
        Each output's activation (:func:`weightkit.analysis.data.checks.output_activations`).
    classifier : list of bool
        Per output: class scores (per element on the last axis) or regression values.
    outputs : list of ndarray
        The original's outputs on ``x``, float64.
    """

    def __init__(self, original, x, y=None, *, task=None, batch_size=256):
        self.x, self.batch_size = x, int(batch_size)
        self.activations = output_activations(original)
        self.outputs = model_outputs(original, x, self.batch_size)
        self.classifier = [_is_classifier(out, act, task if i == 0 else None, first=i == 0)
                           for i, (out, act) in enumerate(zip(self.outputs, self.activations))]
        self.probabilities = [element_probabilities(out, act) if cls else None
                              for out, act, cls in zip(self.outputs, self.activations, self.classifier)]
        y = y[0] if isinstance(y, (list, tuple)) else y  # one label array per output: the first output's
        self.y = None if y is None else np.asarray(y)
        if self.classifier[0]:
            self.unit = "agreement" if self.y is None else "accuracy"
        else:
            self.unit = "mae"
        self.reference = self._first(self.outputs[0], self.probabilities[0])

    def _first(self, output, probabilities):
        """The first output's scores: accuracy / agreement, or MAE."""
        if self.classifier[0]:
            predicted = probabilities.argmax(axis=1)
            scores = {"agreement": float(np.mean(predicted == self.probabilities[0].argmax(axis=1)))}
            if self.y is not None:
                scores["accuracy"] = float(np.mean(predicted == element_classes(self.y, output)))
            return scores
        scores = {"mae_to_original": float(np.mean(np.abs(output - self.outputs[0])))}
        if self.y is not None:
            scores["mae"] = float(np.mean(np.abs(output.reshape(len(output), -1) -
                                                 self.y.reshape(len(self.y), -1).astype(np.float64))))
        return scores

    def metric(self, scores):
        """The first output's own score in ``scores``: accuracy, agreement, or MAE (to the labels, else to the
        original's outputs), as :attr:`unit` reads it."""
        if self.unit == "mae":
            return scores["mae"] if self.y is not None else scores["mae_to_original"]
        return scores[self.unit]

    @property
    def metric_key(self):
        """``"accuracy"``, ``"agreement"``, ``"mae"`` or ``"mae_to_original"`` (a regression without labels): the
        key of the scores :meth:`metric` reads, and the word a document's score fields carry
        (:func:`weightkit.compress.shrink.result.score_names`)."""
        if self.unit == "mae":
            return "mae" if self.y is not None else "mae_to_original"
        return self.unit

    @property
    def metric_name(self):
        """``"accuracy"``, ``"agreement"`` or ``"MAE"``: what :meth:`metric` returns."""
        return "MAE" if self.unit == "mae" else self.unit

    def score(self, model):
        """``{"drop", "error", ...}`` of a candidate: ``drop`` in :attr:`unit`, ``error`` the smooth distance.

        Parameters
        ----------
        model : keras.Model
            Same inputs and outputs as the original.

        Returns
        -------
        dict
            ``drop``; ``error`` (also as ``kl`` where every output is a class output, the error then being
            their KL divergence); ``agreement`` and ``accuracy`` for a classifier, ``mae`` /
            ``mae_to_original`` for a regression.
        """
        outputs = model_outputs(model, self.x, self.batch_size)
        error = 0.0
        first = None
        for index, (output, reference) in enumerate(zip(outputs, self.outputs)):
            if self.classifier[index]:
                teacher = self.probabilities[index]
                probabilities = element_probabilities(output, self.activations[index])
                error += float(np.mean(np.sum(teacher * (np.log(teacher + _EPS) - np.log(probabilities + _EPS)),
                                              axis=1)))
            else:
                probabilities = None
                error += float(np.mean((output - reference) ** 2) / max(float(np.var(reference)), _EPS))
            if index == 0:
                first = self._first(output, probabilities)
        if self.unit == "accuracy":
            drop = 100.0 * (self.reference["accuracy"] - first["accuracy"])
        elif self.unit == "agreement":
            drop = 100.0 * (1.0 - first["agreement"])
        elif self.y is not None:
            drop = first["mae"] - self.reference["mae"]
        else:
            drop = first["mae_to_original"]
        kl = {"kl": error} if all(self.classifier) else {}  # only class outputs: the error is their KL divergence
        return {"drop": float(drop), "error": error, **kl, **first}
