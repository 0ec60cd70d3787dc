"""What retraining fits and measures, output by output: the loss of each output and its held-out metric.

A model with several outputs trains on one loss per output (Keras ``fit`` takes a list of labels);
each output's loss follows its activation and its labels. The held-out metric is accuracy for a
classification output and mean absolute error for a regression one, counted per element for
outputs with positions (a mask per pixel, a sequence per step).
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.compress.quantize.compare import per_element

__all__ = ["LOSSES", "labels_per_output", "output_task", "loss_for_output", "metric_for_output",
           "output_metric"]

keras = import_keras()

#: ``--loss`` names and their Keras classes; ``from_logits`` is set when the output is linear.
LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "mean_squared_error": keras.losses.MeanSquaredError,
    "mean_absolute_error": keras.losses.MeanAbsoluteError,
    "huber": keras.losses.Huber,
}
_LOGIT_LOSSES = {"sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"}


def _output_names(model):
    try:
        return ModelGraph(model).output_names
    except WeightkitError:
        return [f"output_{i}" for i in range(len(model.outputs))]


def labels_per_output(model, y, what="retrain"):
    """``y`` as a list with one label array per output; one clear line when an output has none.

    Raises
    ------
    WeightkitError
        When an output of a several-output model has no labels: training needs them all.
    """
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    names = _output_names(model)
    for name, labels in zip(names, ys):
        if labels is None:
            raise WeightkitError(f"output {name!r}: has no labels in the data, and {what} trains every output; add "
                                 f"y_{name} (labels of that output's shape) to the .npz.")
    return ys


def output_task(index, y, first_task):
    """The task of output ``index``: the data's for the first, else integer labels -> classification."""
    if index == 0 or y is None:
        return first_task
    y = np.asarray(y)
    return "classification" if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_) else \
        "regression"


def loss_for_output(model, activation, width, y, task, name=None):
    """The loss of one output: ``name`` when given, else from the output's activation and labels.

    Returns
    -------
    loss : keras.losses.Loss
    description : str
    """
    logits = activation in ("linear", None)
    if name is not None:
        if name not in LOSSES:
            raise WeightkitError(f"--loss: unknown loss {name!r}; expected one of {', '.join(LOSSES)}.")
        if name in _LOGIT_LOSSES:
            return LOSSES[name](from_logits=logits), name + (" (from logits)" if logits else "")
        return LOSSES[name](), name
    y = np.asarray(y)
    one_hot = y.ndim == 2 and y.shape[1] > 1 and width > 1
    if task == "regression":
        if activation in ("linear", "relu", "softplus", "exponential"):
            return keras.losses.MeanSquaredError(), f"mean_squared_error (inferred: {activation} output, real-valued labels)"
    elif activation in ("softmax", "linear") and width > 1:
        kind = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
        labels = "one-hot labels" if one_hot else "integer labels"
        return (LOSSES[kind](from_logits=logits),
                f"{kind}{' (from logits)' if logits else ''} (inferred: {activation} output, {labels})")
    elif activation in ("sigmoid", "linear") and width == 1:
        return (keras.losses.BinaryCrossentropy(from_logits=logits),
                f"binary_crossentropy{' (from logits)' if logits else ''} (inferred: {activation} output, 0/1 labels)")
    elif activation == "sigmoid":
        return keras.losses.BinaryCrossentropy(), "binary_crossentropy (inferred: sigmoid output, multi-label)"
    raise WeightkitError(
        f"model {model.name!r}: cannot infer a loss for a {activation} output of width {width} with "
        f"{task} labels; pass --loss (one of {', '.join(LOSSES)})."
    )


def metric_for_output(task):
    """The Keras metric ``fit`` logs for an output of ``task``."""
    return "mae" if task == "regression" else "accuracy"


def output_metric(predictions, y, task, activation):
    """Accuracy (classification) or MAE (regression) of one output, per element for outputs with positions.

    Returns
    -------
    metric : {"accuracy", "mae"}
    value : float
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    predictions, _, y = per_element(predictions, predictions, y)
    y = np.asarray(y)
    if task == "regression":
        return "mae", float(np.mean(np.abs(predictions.reshape(len(predictions), -1) -
                                           y.reshape(len(predictions), -1))))
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        truth = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
        return "accuracy", float(np.mean(predictions.argmax(axis=1) == truth))
    cut = 0.5 if activation == "sigmoid" else 0.0
    return "accuracy", float(np.mean((predictions.reshape(-1) > cut) == (y.reshape(-1) > 0.5)))


def output_activations_and_widths(model):
    """``[(activation, width)]`` of each output."""
    return [(activation, int(tensor.shape[-1] or 1))
            for activation, tensor in zip(output_activations(model), model.outputs)]
