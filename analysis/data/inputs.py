"""What every verb accepts: a model or the path of one, and data in three forms.

The verbs (:func:`weightkit.analysis.analyze`, :func:`weightkit.analysis.analyze_activations`,
:func:`weightkit.compress.merge_neurons`, :func:`weightkit.compress.retrain`, :func:`weightkit.compress.quantize_model`,
:func:`weightkit.reports.write_report`) take

- ``model``: a ``keras.Model``, or the path of a ``.keras`` / ``.h5`` file, loaded with
  :func:`weightkit.analysis.load_model` in safe mode;
- ``data``: an :class:`weightkit.analysis.data.datasets.Dataset`, a numpy array of inputs, or a data specification
  (``PATH.npz``, ``PATH.csv``, an image folder, ``sklearn:NAME``) loaded for the model with
  :func:`weightkit.analysis.data.checks.load_data_for_model`.

They turn their arguments into objects here, once, so that every verb accepts the same things
and words its errors the same way.
"""

import os

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.data.checks import load_data_for_model
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.loading import LoadedModel, load_model
from weightkit.analysis.files.stored import StoredModel, open_stored
from weightkit.analysis.data.token_ids import check_token_ids

__all__ = ["as_dataset", "as_inputs", "as_model", "as_weights_source", "is_path"]

_SPEC_HINT = "PATH.npz, PATH.csv, an image folder or sklearn:NAME"


def is_path(value):
    """True for a ``str`` or ``os.PathLike``: what the verbs load instead of using as is."""
    return isinstance(value, (str, os.PathLike))


def as_model(model, *, unsafe=False, compile=False):
    """A :class:`~weightkit.analysis.files.loading.LoadedModel` from a model or the path of one.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        A path is loaded with :func:`weightkit.analysis.load_model` (safe mode unless ``unsafe``). A
        :class:`~weightkit.analysis.files.stored.StoredModel` is passed through, like a model in memory (no
        notes), for weight analysis, which reads it without Keras.
    unsafe : bool, default=False
        Passed to :func:`weightkit.analysis.load_model`.
    compile : bool, default=False
        Passed to :func:`weightkit.analysis.load_model` (restore the saved loss and optimizer).

    Returns
    -------
    LoadedModel
        For a model given in memory: ``path=None``, ``format=None``, no notes, and ``compiled``
        whether it has a loss.

    Raises
    ------
    WeightkitError
        When ``model`` is neither, or the file cannot be loaded.
    """
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, StoredModel):  # weight analysis only: analyze_model and write_report read it as data
        return LoadedModel(model=model, path=model.path, format=model.format, notes=[])
    if is_path(model):
        return load_model(model, unsafe=unsafe, compile=compile)
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise WeightkitError(
            f"Expected a keras.Model or the path of a .keras or .h5 file, got {type(model).__name__}; "
            "pass the model itself or the file it was saved to."
        )
    compiled = bool(getattr(model, "compiled", False) and getattr(model, "loss", None) is not None)
    return LoadedModel(model=model, path=None, format=None, notes=[], compiled=compiled)


def as_weights_source(model):
    """What weight analysis reads: a path as a :class:`~weightkit.analysis.files.stored.StoredModel` (no Keras), a model as is.

    Parameters
    ----------
    model : keras.Model, weightkit.analysis.files.stored.StoredModel, LoadedModel, str or os.PathLike

    Returns
    -------
    LoadedModel
        Its ``model`` is a StoredModel for a path (``format`` ``"keras"``, ``"h5"`` or
        ``"weights"``, ``notes`` what reading it had to do).
    """
    if is_path(model):
        stored = open_stored(os.fspath(model))
        return LoadedModel(model=stored, path=stored.path, format=stored.format, notes=list(stored.notes))
    return as_model(model)


def as_dataset(data, model, *, seed=0, what="data"):
    """An :class:`weightkit.analysis.data.datasets.Dataset` (with labels and a held-out split) from a dataset or a spec.

    Parameters
    ----------
    data : Dataset, str or os.PathLike
        A spec is loaded for ``model`` (image size, channels, task) and checked against it.
    model : keras.Model
    seed : int, default=0
        Seed of the split when the source has none.
    what : str, default="data"
        The argument's name, for the message.

    Returns
    -------
    Dataset
        ``data`` itself when it is one.
    """
    if isinstance(data, Dataset):
        return data
    if is_path(data):
        return load_data_for_model(os.fspath(data), model, seed=seed)
    raise WeightkitError(
        f"{what}: expected a weightkit.analysis.data.datasets.Dataset or a data specification ({_SPEC_HINT}), got "
        f"{type(data).__name__}; labels and a held-out split are needed here, so a bare array of inputs "
        "does not do: wrap it as Dataset(x_train, y_train, x_test, y_test, source, task)."
    )


def as_inputs(data, model, *, seed=0, what="data"):
    """Model inputs from a dataset (its training split), an array, or a spec.

    Parameters
    ----------
    data : Dataset, ndarray of shape (n_inputs, *input_shape), list of ndarray, str or os.PathLike
        A list holds one array per input of a model with several inputs.
    model : keras.Model
        A spec is loaded for it (see :func:`as_dataset`).
    seed : int, default=0
    what : str, default="data"

    Returns
    -------
    x : ndarray of shape (n_inputs, *input_shape), or list of ndarray
        Token ids checked against the Embeddings they reach
        (:func:`weightkit.analysis.data.token_ids.check_token_ids`).
    source : str or None
        ``"<source> (training split)"`` for a dataset or spec; None for an array.
    """
    if isinstance(data, Dataset) or is_path(data):
        dataset = as_dataset(data, model, seed=seed, what=what)
        return dataset.x_train, f"{dataset.source} (training split)"
    if isinstance(data, np.ndarray) or hasattr(data, "__array__"):
        x = np.asarray(data)
        check_token_ids(what, model, [[x]], prefix="")
        return x, None
    if isinstance(data, (list, tuple)):  # one array per input of a model with several (see weightkit.analysis.data.batches)
        arrays = [np.asarray(array) for array in data]
        check_token_ids(what, model, [[array] for array in arrays], prefix="")
        return arrays, None
    raise WeightkitError(
        f"{what}: expected a weightkit.analysis.data.datasets.Dataset, an array of inputs (a list of arrays for a model with "
        f"several inputs) or a data specification ({_SPEC_HINT}), got {type(data).__name__}."
    )
