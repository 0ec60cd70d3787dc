"""What a retrain measures and trains against: the loss, the held-out metric per output, the redundancy per layer."""

from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.rows import layer_neuron_rows
from weightkit.compress.decorrelate.monitor import monitored_entries, redundancy_summary
from weightkit.compress.decorrelate.targets import (
    labels_per_output,
    loss_for_output,
    output_activations_and_widths,
    output_metric,
    output_task,
)

__all__ = ["evaluate_outputs", "evaluate_task", "infer_loss", "redundancy_of"]


def infer_loss(model, dataset, name=None):
    """The loss to train with: ``name`` when given, else from the output layer and labels.

    Parameters
    ----------
    model : keras.Model
    dataset : Dataset
    name : str, default=None
        One of :data:`~weightkit.compress.decorrelate.targets.LOSSES` (``--loss``).

    Returns
    -------
    loss : keras.losses.Loss
    description : str
        e.g. ``"sparse_categorical_crossentropy (inferred: softmax output, integer labels)"``.
    """
    outputs = output_activations_and_widths(model)
    if len(outputs) == 1:
        (activation, width), = outputs
        return loss_for_output(model, activation, width, dataset.y_train, dataset.task, name)
    ys = labels_per_output(model, dataset.y_train)
    losses = [loss_for_output(model, activation, width, y, output_task(k, y, dataset.task), name)
              for k, ((activation, width), y) in enumerate(zip(outputs, ys))]
    return [loss for loss, _ in losses], "; ".join(description for _, description in losses)


def evaluate_task(model, x, y, task, *, batch_size=256):
    """Accuracy (classification) or mean absolute error (regression) on held-out data.

    Returns
    -------
    metric : {"accuracy", "mae"}
    value : float
    """
    return evaluate_outputs(model, x, y, task, batch_size=batch_size)[0]


def evaluate_outputs(model, x, y, task, *, batch_size=256):
    """:func:`evaluate_task` for every output: a list of ``(metric, value)``, None where an output has no labels."""
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    predictions = list(predictions) if isinstance(predictions, (list, tuple)) else [predictions]
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    return [None if labels is None else output_metric(p, labels, output_task(k, labels, task), activation)
            for k, (p, labels, activation) in enumerate(zip(predictions, ys, output_activations(model)))]


def redundancy_of(model, names, threshold=0.9):
    """Redundancy summary of each analysis entry of the named layers (see :func:`redundancy_summary`)."""
    summaries = {}
    for entry_name, layer in monitored_entries(model, names):
        rows = {e.name: e for e in layer_neuron_rows(layer)}[entry_name].rows
        summaries[entry_name] = redundancy_summary(rows, threshold=threshold)
    return summaries
