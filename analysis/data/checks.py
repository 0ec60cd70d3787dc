"""Checks and fixes that match a loaded ``--data`` dataset to a model.

:func:`fit_to_model` adapts a :class:`weightkit.analysis.data.datasets.Dataset` where that is unambiguous,
:func:`check_data_against_model` explains in one line why data and model do not fit, and
:func:`load_data_for_model` loads ``--data`` at the model's image size and does both. The loaders
themselves live in :mod:`weightkit.analysis.data.datasets`.

A model with several inputs takes one array per input, a model with several outputs one label
array per output (or none); both are matched to the model by the ``.npz`` names (``x0``/``x_<name>``,
``y0``/``y_<name>``, ``y`` for the first output) through :class:`weightkit.analysis.structure.graph.ModelGraph`.
"""

import numpy as np

from weightkit.analysis.data.csv_data import read_csv_header
from weightkit.analysis.data.datasets import _COLOR_MODES, check_data_spec, load_data
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.layers import spec_for
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.data.token_ids import check_token_ids

__all__ = ["check_data_against_model", "fit_to_model", "load_data_for_model", "model_input_shape", "model_input_shapes",
           "output_activations"]


def model_input_shapes(model):
    """The input shapes of a model, batch axis included, in input order (``[(None, 64)]``)."""
    inputs = getattr(model, "inputs", None)
    if inputs:
        return [tuple(t.shape) for t in inputs]
    return [tuple(model.input_shape)]


def model_input_shape(model):
    """The input shape of a model's first input, batch axis included (``(None, 64)``)."""
    return model_input_shapes(model)[0]


def _output_shapes(model):
    return [tuple(t.shape) for t in (getattr(model, "outputs", None) or [])]


def _activation_of(layer):
    spec = spec_for(layer)
    if spec is not None and spec.activation:  # a Softmax layer
        return spec.activation
    activation = getattr(layer, "activation", None)
    return "linear" if activation is None else getattr(activation, "__name__", str(activation))


def output_activations(model):
    """The activation that produces each of a model's outputs (``"softmax"``, ``"linear"``...), in output order.

    The one place that answers "what kind of output is this": a Softmax layer counts as
    ``softmax``; a layer without an activation as ``linear``.
    """
    try:
        graph = ModelGraph(model)
    except WeightkitError:
        return [_activation_of(model.layers[-1])]
    return [_activation_of(graph.producer(tid).layer) if graph.producer(tid) is not None else "linear"
            for tid in graph.output_ids]


def _is_recurrent(model):
    return any(getattr(spec_for(layer), "over_time", False) for layer in walk_layers(model))


def _names(model):
    try:
        graph = ModelGraph(model)
        return graph.input_names, graph.output_names
    except WeightkitError:
        return [f"input_{i}" for i in range(len(model_input_shapes(model)))], \
            [f"output_{i}" for i in range(len(_output_shapes(model)))]


def _position(key, names, letter, what, source):
    """The model position a ``.npz`` array name stands for (``x1`` -> 1, ``x_tokens`` -> tokens' index)."""
    rest = key[1:]
    if rest.isdigit() and int(rest) < len(names):
        return int(rest)
    if rest.startswith("_") and rest[1:] in names:
        return names.index(rest[1:])
    raise WeightkitError(
        f"--data {source}: array {key} names no {what} of the model; its {what}s are "
        f"{', '.join(names)} ({letter}0..{letter}{len(names) - 1} or {letter}_<name>)."
    )


def _arrange(values, keys, names, letter, what, source, fill_missing):
    """Arrays given under ``.npz`` names, in the model's order (None where ``fill_missing`` allows)."""
    arranged = [None] * len(names)
    for key, value in zip(keys, values):
        index = _position(key, names, letter, what, source)
        if arranged[index] is not None:
            raise WeightkitError(f"--data {source}: two arrays for {what} {names[index]!r}; give one.")
        arranged[index] = value
    if not fill_missing and any(a is None for a in arranged):
        missing = [names[i] for i, a in enumerate(arranged) if a is None]
        raise WeightkitError(f"--data {source}: no array for {what} {', '.join(map(repr, missing))}; give one per "
                             f"{what} ({letter}0..{letter}{len(names) - 1} or {letter}_<name>).")
    return arranged


def _arrange_dataset(dataset, model):
    inputs, outputs = _names(model)
    source = dataset.source
    for split in ("train", "test"):
        x = getattr(dataset, f"x_{split}")
        if isinstance(x, list):
            if len(inputs) == 1:
                raise WeightkitError(f"--data {source}: {len(x)} input arrays ({', '.join(dataset.input_keys)}) for a "
                                     "model with one input; give one array x.")
            x = _arrange(x, dataset.input_keys, inputs, "x", "input", source, False)
        elif len(inputs) > 1:
            raise WeightkitError(f"--data {source}: one input array for a model with {len(inputs)} inputs "
                                 f"({', '.join(inputs)}); give one array per input (x0, x1, ... or x_<input name>).")
        setattr(dataset, f"x_{split}", x)
        y = getattr(dataset, f"y_{split}")
        if isinstance(y, list):
            y = _arrange(y, dataset.output_keys, outputs, "y", "output", source, True)
        elif y is not None and len(outputs) > 1:
            y = [y] + [None] * (len(outputs) - 1)  # y goes with the first output
        setattr(dataset, f"y_{split}", y)
    dataset.input_keys, dataset.output_keys = (), ()


def _labels(dataset, split="train"):
    """(index, labels) of each labelled output."""
    y = getattr(dataset, f"y_{split}")
    if y is None:
        return []
    return [(i, a) for i, a in enumerate(y if isinstance(y, list) else [y]) if a is not None]


def _set_labels(dataset, index, train, test):
    if isinstance(dataset.y_train, list):
        dataset.y_train[index], dataset.y_test[index] = train, test
    else:
        dataset.y_train, dataset.y_test = train, test


def fit_to_model(dataset, model):
    """Adapt a dataset to a model where that is unambiguous; modified in place and returned.

    - Several input (label) arrays are put in the model's input (output) order by their names.
    - A bundled ``sklearn:`` dataset's flat samples are reshaped to the model's input when the
      sizes agree (digits as 8×8×1 images for a CNN). Files are never reshaped silently:
      :func:`check_data_against_model` explains the fix instead.
    - The task follows the model's (first labelled) output: a single linear (or ReLU) output is
      regression even for integer-valued labels; a softmax or sigmoid output with integer-valued
      float labels is classification, and those labels become integers.

    Parameters
    ----------
    dataset : Dataset
    model : keras.Model

    Returns
    -------
    Dataset
    """
    _arrange_dataset(dataset, model)
    expected = model_input_shape(model)[1:]
    if (dataset.source.startswith("sklearn:") and not isinstance(dataset.x_train, list) and None not in expected
            and tuple(dataset.x_train.shape[1:]) != tuple(expected)
            and int(np.prod(expected)) == int(np.prod(dataset.x_train.shape[1:]))):
        dataset.x_train = dataset.x_train.reshape((-1,) + tuple(expected))
        dataset.x_test = dataset.x_test.reshape((-1,) + tuple(expected))
    outputs = _output_shapes(model)
    labelled = _labels(dataset)
    if not outputs or not labelled:
        return dataset
    index = labelled[0][0]
    activation = output_activations(model)[index]
    width = outputs[index][-1]
    train, test = labelled[0][1], dict(_labels(dataset, "test"))[index]
    if width == 1 and activation in ("linear", "relu", "softplus", "exponential"):
        if dataset.task != "regression":
            dataset.task = "regression"
            _set_labels(dataset, index, train.astype(np.float32), test.astype(np.float32))
    elif activation in ("softmax", "sigmoid") and dataset.task == "regression":
        labels = np.concatenate([train.ravel(), test.ravel()])
        if np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            dataset.task = "classification"
            _set_labels(dataset, index, train.astype(np.int64), test.astype(np.int64))
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
    features = int(shape[1]) if len(shape) == 2 and shape[1] is not None else None
    _check_csv_width(spec, model, target, features)
    dataset = load_data(spec, target=target, image_size=image_size, test_fraction=test_fraction, seed=seed,
                        channels=channels, features=features)
    fit_to_model(dataset, model)
    check_data_against_model(dataset, model)
    return dataset


def _check_csv_width(spec, model, target, features):
    """A CSV's width against a one-input model, from its header alone: before any row is parsed."""
    if check_data_spec(spec) != "csv" or len(model_input_shapes(model)) != 1:
        return
    header = read_csv_header(spec)
    if target is not None and target not in header:
        return  # the loader names the missing column and lists the others
    inputs_only = target is None and features is not None and len(header) == features
    width = len(header) if inputs_only else len(header) - 1
    _check_shape(spec, model, model_input_shape(model), (None, width), "")


def check_data_against_model(dataset, model):
    """Check that inputs and labels fit the model; raise one clear line when they do not.

    Checks, in order, for each input: the number of dimensions, each axis, finite numeric values
    (integers when the input is integer-typed); token ids within the vocabulary of every Embedding
    the input reaches (:func:`weightkit.analysis.data.token_ids.check_token_ids`); then for each labelled
    output: finite labels, and labels that fit the output's shape. An output of any shape (a sequence, an edge map, a
    mask) takes labels of its own shape per sample, or one class index per element
    (``(n, H, W)`` for a per-pixel softmax); a flat output takes one class per sample
    ``(n,)``, one-hot ``(n, classes)`` or targets ``(n, width)``.

    Parameters
    ----------
    dataset : Dataset
        Already arranged for the model (see :func:`fit_to_model`).
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
    shapes = model_input_shapes(model)
    dtypes = [str(getattr(t, "dtype", "float32")) for t in (getattr(model, "inputs", None) or [None])]
    trains = dataset.x_train if isinstance(dataset.x_train, list) else [dataset.x_train]
    tests = dataset.x_test if isinstance(dataset.x_test, list) else [dataset.x_test]
    if len(trains) != len(shapes):
        raise WeightkitError(f"--data {dataset.source}: {len(trains)} input arrays for a model with {len(shapes)} "
                             "inputs; give one array per input (x0, x1, ... or x_<input name>).")
    several = len(shapes) > 1
    for index, (expected, dtype, train, test) in enumerate(zip(shapes, dtypes, trains, tests)):
        suffix = f"{index}" if several else ""
        _check_input(dataset.source, model, expected, dtype, train, test, suffix)
    check_token_ids(dataset.source, model, [[train, test] for train, test in zip(trains, tests)], _names(model)[0])
    outputs = _output_shapes(model)
    tests_by_index = dict(_labels(dataset, "test"))
    for index, train in _labels(dataset):
        if index < len(outputs):
            _check_labels(dataset, outputs[index], train, tests_by_index[index],
                          dataset.task if index == _labels(dataset)[0][0] else _task_of_labels(train),
                          f"{index}" if len(outputs) > 1 else "")


def _task_of_labels(y):
    return "classification" if np.issubdtype(np.asarray(y).dtype, np.integer) else "regression"


def _same_sample_shape(source, name, train, test):
    """Both splits of one array must hold samples of one shape."""
    if tuple(np.shape(train)[1:]) != tuple(np.shape(test)[1:]):
        raise WeightkitError(
            f"--data {source}: {name}_train has samples of shape {tuple(np.shape(train)[1:])} but {name}_test of "
            f"{tuple(np.shape(test)[1:])}; give both splits samples of one shape."
        )


def _check_input(source, model, expected, input_dtype, train, test, suffix):
    _same_sample_shape(source, f"x{suffix}", train, test)
    _check_shape(source, model, expected, np.asarray(train).shape, suffix)
    for name, x in ((f"x{suffix}_train", train), (f"x{suffix}_test", test)):
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise WeightkitError(
                f"--data {source}: {name} contains NaN or Inf; remove or impute those values first."
            )
    if "int" in input_dtype and np.issubdtype(train.dtype, np.floating) and not np.all(train == np.round(train)):
        raise WeightkitError(
            f"--data {source}: the model expects {input_dtype} input (token ids), the data has "
            f"fractional {train.dtype} values; give integer ids."
        )


def _check_shape(source, model, expected, got, suffix):
    """The data's shape ``got`` (batch axis first) against the model input's ``expected``."""
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
            f"--data {source}: the model expects input{suffix and ' ' + suffix} of shape {_shape(expected)}, the data "
            f"has {_shape(got)} ({len(got)} dimensions instead of {len(expected)}).{hint}"
        )
    for axis, (want, have) in enumerate(zip(expected[1:], got[1:]), start=1):
        if want is not None and want != have:
            raise WeightkitError(
                f"--data {source}: the model expects input{suffix and ' ' + suffix} of shape {_shape(expected)}, the "
                f"data has {_shape(got)} (axis {axis} is {have}, expected {want}); give data of the model's input "
                "shape."
            )


def _check_labels(dataset, output, train, test, task, suffix):
    source = dataset.source
    _same_sample_shape(source, f"y{suffix}", train, test)
    width = output[-1]
    for name, y in ((f"y{suffix}_train", train), (f"y{suffix}_test", test)):
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise WeightkitError(f"--data {source}: {name} contains NaN or Inf labels; remove those samples.")
    inner = tuple(output[1:-1])  # positions of an output of any shape: (H, W) of a mask, T of a sequence
    shape = tuple(train.shape[1:])
    whole = len(shape) == len(output) - 1 and all(w is None or w == h for w, h in zip(output[1:], shape))
    per_element = bool(inner) and len(shape) == len(inner) and all(w is None or w == h for w, h in zip(inner, shape))
    if task != "classification":
        if inner and not whole:
            raise WeightkitError(
                f"--data {source}: the model outputs shape {_shape(output)}, the labels have "
                f"{_shape(train.shape)}; give labels of the output's shape per sample."
            )
        if train.ndim == 2 and width is not None and train.shape[1] != width:
            raise WeightkitError(
                f"--data {source}: the model outputs shape {_shape(output)}, the labels have "
                f"{_shape(train.shape)}; give {width} target values per sample."
            )
        return
    if inner:
        if not (whole or per_element):
            raise WeightkitError(
                f"--data {source}: labels of shape {_shape(train.shape)} do not fit the model's output "
                f"{_shape(output)}; give labels of the output's shape per sample, or one class per element "
                f"{_shape((None,) + inner)}."
            )
        if whole and width != 1:
            return  # one-hot (or soft) labels per element
        y = np.concatenate([train.ravel(), test.ravel()])
        _check_class_range(source, y, width)
        return
    if train.ndim == 2 and width is not None and train.shape[1] != width:
        raise WeightkitError(
            f"--data {source}: one-hot labels have {train.shape[1]} columns but the model "
            f"outputs {width}; give labels for the model's {width} outputs."
        )
    if train.ndim > 2 or (train.ndim == 2 and train.shape[1] == 1 and width != 1):
        raise WeightkitError(
            f"--data {source}: labels of shape {_shape(train.shape)} do not fit the model's "
            f"output {_shape(output)}; give one integer class per sample, shape (n_samples,)."
        )
    y = np.concatenate([train.ravel() if train.ndim < 2 or train.shape[1] == 1 else train.argmax(1),
                        test.ravel() if test.ndim < 2 or test.shape[1] == 1 else test.argmax(1)])
    _check_class_range(source, y, width)


def _check_class_range(source, y, width):
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
    text = ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(shape))
    return f"({text},)" if len(shape) == 1 else f"({text})"
