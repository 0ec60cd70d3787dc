"""Labels in the form each output's loss takes, matched before training starts.

A model file carries the loss it was compiled with, and the user's labels may not be in the form
that loss takes: one-hot labels for ``sparse_categorical_crossentropy`` (which takes one class
index per sample) or class indices for ``categorical_crossentropy`` (which takes one-hot rows, as
many a Keras 2 file was compiled with). Keras then fails deep inside ``fit``. Here the labels are
converted where the intent is unambiguous (exact one-hot rows to indices, integer indices to
one-hot), with a note saying so, and refused in one line otherwise (soft labels for a sparse loss).
"""

import dataclasses

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["loss_kind", "match_labels_to_loss"]

_KINDS = {"sparsecategoricalcrossentropy": "sparse", "categoricalcrossentropy": "categorical"}


def loss_kind(loss):
    """``"sparse"``, ``"categorical"`` or None for any other loss (a name, a Loss object or a function).

    Examples
    --------
    >>> loss_kind("sparse_categorical_crossentropy"), loss_kind("CategoricalCrossentropy"), loss_kind("mse")
    ('sparse', 'categorical', None)
    """
    if isinstance(loss, str):
        name = loss
    else:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    return _KINDS.get(str(name).replace("_", "").lower())


def _loss_name(loss):
    return {"sparse": "sparse_categorical_crossentropy", "categorical": "categorical_crossentropy"}[loss_kind(loss)]


def _losses_per_output(loss, names):
    if isinstance(loss, dict):
        return [loss.get(name) for name in names]
    if isinstance(loss, (list, tuple)):
        return list(loss) + [None] * (len(names) - len(loss))
    return [loss] * len(names)


def _is_one_hot(y):
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=-1) == 1))


def _convert(y_train, y_test, kind, width, rank, where, source, loss):
    """Both splits of one output's labels in the form ``kind`` takes, and a note; unchanged with no note if fine."""
    class_axis = y_train.ndim == rank and width > 1 and y_train.shape[-1] == width
    if kind == "sparse" and class_axis:
        if not (_is_one_hot(y_train) and _is_one_hot(y_test)):
            raise WeightkitError(
                f"--data {source}: labels{where} of shape {y_train.shape[1:]} per sample are soft (not one-hot), but the "
                f"model was compiled with {_loss_name(loss)}, which takes one class index per sample; pass --loss "
                "categorical_crossentropy, or give integer class labels.")
        return (y_train.argmax(-1).astype(np.int64), y_test.argmax(-1).astype(np.int64),
                f"labels{where}: one-hot, converted to class indices for the compiled {_loss_name(loss)}")
    indices = width > 1 and (y_train.ndim == rank - 1 or (y_train.ndim == rank and y_train.shape[-1] == 1))
    if kind == "categorical" and indices:
        values = np.concatenate([y_train.ravel(), y_test.ravel()])
        if not (np.all(np.isfinite(values)) and np.all(values == np.round(values))):
            raise WeightkitError(
                f"--data {source}: labels{where} are not class indices, and the model was compiled with "
                f"{_loss_name(loss)}, which takes one-hot rows of {width}; pass --loss mean_squared_error for targets, "
                "or give one-hot labels.")
        note = f"labels{where}: class indices, converted to one-hot rows of {width} for the compiled {_loss_name(loss)}"
        return _one_hot(y_train, width, rank), _one_hot(y_test, width, rank), note
    return y_train, y_test, None


def _one_hot(y, width, rank):
    """Class indices of shape ``(n, ...)`` or ``(n, ..., 1)`` as float one-hot rows ``(n, ..., width)``."""
    indices = y.reshape(y.shape[:rank - 1]) if y.ndim == rank else y
    return np.eye(width, dtype=np.float32)[indices.astype(np.int64)]


def match_labels_to_loss(model, dataset, loss):
    """The dataset with each output's labels in the form its loss takes, and what was converted.

    Parameters
    ----------
    model : keras.Model
    dataset : weightkit.analysis.data.datasets.Dataset
        Labelled, arranged for the model (one label array per output, or one array).
    loss : str, keras.losses.Loss, callable, list or dict
        What ``fit`` will train with: one loss, one per output, or one per output name.

    Returns
    -------
    dataset : Dataset
        ``dataset`` itself when nothing changed, else a copy with converted labels (the input is
        never modified).
    notes : list of str
        One line per converted output.

    Raises
    ------
    WeightkitError
        When labels and loss cannot be matched without guessing (soft labels for a sparse loss,
        real-valued targets for a categorical one).
    """
    several = isinstance(dataset.y_train, (list, tuple))
    trains = list(dataset.y_train) if several else [dataset.y_train]
    tests = list(dataset.y_test) if several else [dataset.y_test]
    try:
        names = ModelGraph(model).output_names
    except WeightkitError:
        names = [f"output_{i}" for i in range(len(model.outputs))]
    notes, changed = [], False
    for k, (output, output_loss) in enumerate(zip(model.outputs, _losses_per_output(loss, names))):
        if k >= len(trains) or trains[k] is None or loss_kind(output_loss) is None:
            continue
        where = f" of output {names[k]!r}" if len(names) > 1 else ""
        train, test = np.asarray(trains[k]), np.asarray(tests[k])
        trains[k], tests[k], note = _convert(train, test, loss_kind(output_loss), int(output.shape[-1] or 1),
                                             len(output.shape), where, dataset.source, output_loss)
        if note:
            notes.append(note)
            changed = True
    if not changed:
        return dataset, notes
    if several:
        return dataclasses.replace(dataset, y_train=trains, y_test=tests), notes
    return dataclasses.replace(dataset, y_train=trains[0], y_test=tests[0]), notes
