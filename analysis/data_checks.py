"""Checks and fixes that match a loaded ``--data`` dataset to a model.

:func:`fit_to_model` adapts a :class:`analysis.data.Dataset` where that is unambiguous,
:func:`check_data_against_model` explains in one line why data and model do not fit, and
:func:`load_data_for_model` loads ``--data`` at the model's image size and does both. The loaders
themselves live in :mod:`analysis.data`, which re-exports these names.
"""

import numpy as np

from analysis.data import _COLOR_MODES, load_data
from analysis.errors import WeightkitError
from analysis.layers import spec_for
from analysis.loading import walk_layers

__all__ = ["check_data_against_model", "fit_to_model", "load_data_for_model", "model_input_shape"]


def model_input_shape(model):
    """The input shape of a single-input model, batch axis included (``(None, 64)``).

    Raises
    ------
    WeightkitError
        For a model with several inputs, which ``--data`` cannot feed.
    """
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) > 1:
        raise WeightkitError(
            f"model {model.name!r}: has {len(inputs)} inputs; --data feeds models with one input only."
        )
    shape = inputs[0].shape if inputs else model.input_shape
    return tuple(shape)


def _output_shape(model):
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    if len(outputs) > 1:
        raise WeightkitError(
            f"model {model.name!r}: has {len(outputs)} outputs; --data gives labels for one output only."
        )
    return tuple(outputs[0].shape)


def _output_activation(model):
    outputs = getattr(model, "outputs", None)
    history = getattr(outputs[0], "_keras_history", None) if outputs else None
    layer = history[0] if history is not None else model.layers[-1]
    spec = spec_for(layer)
    if spec is not None and spec.activation:  # a Softmax layer
        return spec.activation
    activation = getattr(layer, "activation", None)
    return "linear" if activation is None else getattr(activation, "__name__", str(activation))


def _is_recurrent(model):
    return any(getattr(spec_for(layer), "family", None) in ("rnn", "bidirectional", "recurrent")
               for layer in walk_layers(model))


def fit_to_model(dataset, model):
    """Adapt a dataset to a model where that is unambiguous; modified in place and returned.

    - A bundled ``sklearn:`` dataset's flat samples are reshaped to the model's input when the
      sizes agree (digits as 8×8×1 images for a CNN). Files are never reshaped silently:
      :func:`check_data_against_model` explains the fix instead.
    - The task follows the model's output: a single linear (or ReLU) output is regression even
      for integer-valued labels; a softmax or sigmoid output with integer-valued float labels is
      classification, and those labels become integers.

    Parameters
    ----------
    dataset : Dataset
    model : keras.Model

    Returns
    -------
    Dataset
    """
    expected = model_input_shape(model)[1:]
    if (dataset.source.startswith("sklearn:") and None not in expected
            and tuple(dataset.x_train.shape[1:]) != tuple(expected)
            and int(np.prod(expected)) == int(np.prod(dataset.x_train.shape[1:]))):
        dataset.x_train = dataset.x_train.reshape((-1,) + tuple(expected))
        dataset.x_test = dataset.x_test.reshape((-1,) + tuple(expected))
    output = _output_shape(model)
    if output is None:
        return dataset
    activation = _output_activation(model)
    width = output[-1]
    if width == 1 and activation in ("linear", "relu", "softplus", "exponential"):
        if dataset.task != "regression":
            dataset.task = "regression"
            dataset.y_train = dataset.y_train.astype(np.float32)
            dataset.y_test = dataset.y_test.astype(np.float32)
    elif activation in ("softmax", "sigmoid") and dataset.task == "regression":
        labels = np.concatenate([dataset.y_train.ravel(), dataset.y_test.ravel()])
        if np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            dataset.task = "classification"
            dataset.y_train = dataset.y_train.astype(np.int64)
            dataset.y_test = dataset.y_test.astype(np.int64)
    return dataset


def load_data_for_model(spec, model, *, target=None, test_fraction=0.2, seed=0):
    """Load ``--data`` for a model: images at the model's size and channels, fitted and checked.

    Parameters
    ----------
    spec : str
        As for :func:`load_data`.
    model : keras.Model
    target : str, default=None
        CSV label column.
    test_fraction : float, default=0.2
    seed : int, default=0

    Returns
    -------
    Dataset
        Passed through :func:`fit_to_model` and :func:`check_data_against_model`.
    """
    shape = model_input_shape(model)
    image_size, channels = (256, 256), 3
    if len(shape) == 4 and shape[1] is not None and shape[2] is not None:
        image_size = (int(shape[1]), int(shape[2]))
        channels = int(shape[3]) if shape[3] in _COLOR_MODES else 3
    dataset = load_data(spec, target=target, image_size=image_size, test_fraction=test_fraction, seed=seed,
                        channels=channels)
    fit_to_model(dataset, model)
    check_data_against_model(dataset, model)
    return dataset


def check_data_against_model(dataset, model):
    """Check that inputs and labels fit the model; raise one clear line when they do not.

    Checks, in order: the number of input dimensions, each input axis, finite numeric inputs
    (integers when the model takes integer input), then the labels: finite, one-hot width or
    class range against a classifier's outputs, target width against a regressor's outputs.

    Parameters
    ----------
    dataset : Dataset
    model : keras.Model

    Raises
    ------
    WeightkitError
        Naming the model's expected shape, the data's shape and the fix.

    Examples
    --------
    A recurrent model fed 2-D data (``--data`` of shape ``(n, 64)``, model input
    ``(batch, 8, 8)``) gets: ``--data x.npz: the model expects input of shape (batch, 8, 8), the
    data has (batch, 64) (2 dimensions instead of 3). A recurrent model expects (batch,
    timesteps, features): reshape the data, e.g. x.reshape(len(x), 8, 8).``
    """
    expected = model_input_shape(model)
    got = dataset.x_train.shape
    source = dataset.source
    if len(got) != len(expected):
        if len(expected) == 3 and len(got) == 2:
            kind = "A recurrent model" if _is_recurrent(model) else "A model with 3-D input (e.g. a 1-D convolution)"
            steps = "timesteps" if expected[1] is None else expected[1]
            features = "features" if expected[2] is None else expected[2]
            hint = (f" {kind} expects (batch, timesteps, features): reshape the data, e.g. "
                    f"x.reshape(len(x), {steps}, {features}).")
        else:
            hint = f" Reshape the data to (n_samples, {', '.join(str(d) for d in expected[1:])})."
        raise WeightkitError(
            f"--data {source}: the model expects input of shape {_shape(expected)}, the data has "
            f"{_shape(got)} ({len(got)} dimensions instead of {len(expected)}).{hint}"
        )
    for axis, (want, have) in enumerate(zip(expected[1:], got[1:]), start=1):
        if want is not None and want != have:
            raise WeightkitError(
                f"--data {source}: the model expects input of shape {_shape(expected)}, the data has "
                f"{_shape(got)} (axis {axis} is {have}, expected {want}); give data of the model's input shape."
            )
    for name, x in (("x_train", dataset.x_train), ("x_test", dataset.x_test)):
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise WeightkitError(
                f"--data {source}: {name} contains NaN or Inf; remove or impute those values first."
            )
    input_dtype = str(getattr(model.inputs[0], "dtype", "float32")) if getattr(model, "inputs", None) else "float32"
    if "int" in input_dtype and np.issubdtype(dataset.x_train.dtype, np.floating) and \
            not np.all(dataset.x_train == np.round(dataset.x_train)):
        raise WeightkitError(
            f"--data {source}: the model expects {input_dtype} input (token ids), the data has "
            f"fractional {dataset.x_train.dtype} values; give integer ids."
        )
    output = _output_shape(model)
    if output is None:
        return
    width = output[-1]
    for name, y in (("y_train", dataset.y_train), ("y_test", dataset.y_test)):
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise WeightkitError(f"--data {source}: {name} contains NaN or Inf labels; remove those samples.")
    if dataset.task != "classification":
        if dataset.y_train.ndim == 2 and width is not None and dataset.y_train.shape[1] != width:
            raise WeightkitError(
                f"--data {source}: the model outputs shape {_shape(output)}, the labels have "
                f"{_shape(dataset.y_train.shape)}; give {width} target values per sample."
            )
        return
    if dataset.y_train.ndim == 2 and width is not None and dataset.y_train.shape[1] != width:
        raise WeightkitError(
            f"--data {source}: one-hot labels have {dataset.y_train.shape[1]} columns but the model "
            f"outputs {width}; give labels for the model's {width} outputs."
        )
    if dataset.y_train.ndim > 2 or (dataset.y_train.ndim == 2 and dataset.y_train.shape[1] == 1 and width != 1):
        raise WeightkitError(
            f"--data {source}: labels of shape {_shape(dataset.y_train.shape)} do not fit the model's "
            f"output {_shape(output)}; give one integer class per sample, shape (n_samples,)."
        )
    y = np.concatenate([dataset.y_train.ravel() if dataset.y_train.ndim < 2 or dataset.y_train.shape[1] == 1
                        else dataset.y_train.argmax(1),
                        dataset.y_test.ravel() if dataset.y_test.ndim < 2 or dataset.y_test.shape[1] == 1
                        else dataset.y_test.argmax(1)])
    if width is not None and width > 1 and (y.min() < 0 or y.max() >= width):
        raise WeightkitError(
            f"--data {source}: labels range from {int(y.min())} to {int(y.max())}, but the model has "
            f"{width} outputs (classes 0 to {width - 1}); give labels in that range."
        )
    if width == 1 and (y.min() < 0 or y.max() > 1):
        raise WeightkitError(
            f"--data {source}: labels range from {int(y.min())} to {int(y.max())}, but the model has one "
            "sigmoid output (classes 0 and 1); give 0/1 labels or a model with one output per class."
        )


def _shape(shape):
    return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"
