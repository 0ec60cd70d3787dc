"""A stored model's weights against its configuration, checked as Keras' loader would before anything is read.

Keras builds every layer from the configuration and then assigns the stored arrays, refusing an
array whose shape differs from the variable's. Weight analysis builds nothing, so it checks the
same thing from the file's metadata: each layer with neuron rows has its weights in the file
(under its own name, where Keras 3.15 records one), each of them holds real numbers, and each
has the shape its configuration implies (``units``, ``filters``, ``kernel_size``, the input's
last dimension; :func:`weightkit.analysis.files.stored.shapes.expected_weight_shapes`). No dataset is read.
"""

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.kinds.layers import spec_named
from weightkit.analysis.files.stored.layout import keras3_group, saved_name
from weightkit.analysis.files.stored.shapes import expected_weight_shapes, first_input_shape
from weightkit.analysis.files.stored.weights import StoredLayoutError, dtype_problem, keyed_datasets

__all__ = ["check_weights_fit_config"]

_FORGED = "the file is damaged or forged: save the model again with model.save('model.keras')."
_FIX = "the configuration and the weights do not belong together: save the model again with model.save('model.keras')."


def _text(shape):
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _fits(stored, expected):
    return len(stored) == len(expected) and all(e is None or s == e for s, e in zip(stored, expected))


def check_weights_fit_config(model, handle):
    """Refuse a stored model whose weights do not fit its configuration, in one line naming the layer.

    Parameters
    ----------
    model : weightkit.analysis.files.stored.StoredModel
    handle : h5py.File
        Its weights file, open.

    Raises
    ------
    WeightkitError
        A layer with neuron rows whose weights are missing or saved under another layer's name, hold
        no real numbers (complex, compound, text), or have another shape than its configuration implies.
    """
    for layer in model.layers:
        spec = spec_named(layer.class_name)
        if spec is None or not spec.has_neurons:
            continue
        where = f"{model.path}: layer {layer.name!r} ({layer.class_name})"
        missing = _missing_group(handle, layer, model.format)
        if missing is not None:
            raise WeightkitError(f"{where} has no weights in the file: {missing}; {_FIX}")
        try:
            datasets = keyed_datasets(handle, layer, model.format)
        except StoredLayoutError:
            continue  # another layout (a quantized layer): the layer is skipped with the reason when read
        for key, dataset in datasets.items():
            problem = dtype_problem(dataset)
            if problem is not None:
                raise WeightkitError(f"{where}: its stored {key} is {problem}, where Keras stores real numbers; "
                                     f"{_FORGED}")
        shape = first_input_shape(layer, {layer.name: model.propagated_shape(layer)})
        expected = expected_weight_shapes(layer.class_name, layer.config, shape)
        if expected is None:
            continue
        for key, dataset in datasets.items():
            stored = tuple(int(n) for n in dataset.shape)
            wanted = expected.get(key)
            if wanted is None:
                raise WeightkitError(f"{where}: the file stores a {key} of shape {_text(stored)} that its "
                                     f"configuration does not create; {_FIX}")
            if not _fits(stored, wanted):
                raise WeightkitError(f"{where}: its stored {key} has shape {_text(stored)} but its configuration "
                                     f"implies {_text(wanted)}; {_FIX}")


def _missing_group(handle, layer, fmt):
    """Why the file has no weights group for ``layer`` (``"no group model_weights/x"``), or None when it has one."""
    if fmt == "h5":
        name = f"model_weights/{layer.h5_group}"
        return None if handle.get(name) is not None else f"there is no group {name}"
    if keras3_group(handle, layer) is not None:
        return None
    group = handle.get(layer.keras_group)
    other = None if group is None else saved_name(group)
    if other is not None:
        return f"its weights group {layer.keras_group} was saved for a layer named {other!r}"
    return f"there is no group {layer.keras_group}"
