"""A stored layer's weight arrays under the layer registry's keys, read lazily from the HDF5 datasets.

Keras 3 saves a layer's variables unnamed, as ``vars/0, 1, ...`` in the order its
``save_own_variables`` lists them (``keras/src/layers/layer.py``: the layer's own variables in the
order they were created; Dense and the convolutions ``kernel`` then ``bias``, a SeparableConv
``depthwise_kernel``, ``pointwise_kernel``, ``bias``, an RNN cell ``kernel``, ``recurrent_kernel``,
``bias``). A legacy ``.h5`` names each weight; its last path component is the variable
(``dense/kernel:0`` -> ``kernel``). See :mod:`weightkit.analysis.files.stored.layout` for where the groups are.
"""

import numpy as np

from weightkit.analysis.kinds.layers import spec_named
from weightkit.analysis.files.stored.layout import keras3_group

__all__ = ["StoredLayoutError", "dtype_problem", "keyed_datasets", "layer_arrays", "layer_datasets",
           "legacy_weight_names", "total_datasets"]

#: Keras 3 ``vars`` order per registry family; a layer without a bias stores one fewer.
_ORDER = {
    "dense": ("kernel", "bias"),
    "conv": ("kernel", "bias"),
    "conv_transpose": ("kernel", "bias"),
    "depthwise": ("kernel", "bias"),
    "separable": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "rnn": ("kernel", "recurrent_kernel", "bias"),
}
#: Legacy variable names that differ from the registry's key (Keras 2's DepthwiseConv2D).
_ALIASES = {"depthwise": {"depthwise_kernel": "kernel"}}


class StoredLayoutError(Exception):
    """A layer's stored variables are not laid out as its class saves them (the reason is the message)."""


def _datasets_under(group):
    """Datasets under a group in the layer's weight order: its own ``vars/0, 1, ...``, then its sublayers'."""
    found = []
    for key in sorted(group.keys(), key=lambda k: (k != "vars", int(k) if k.isdigit() else 0, k)):
        child = group[key]
        if hasattr(child, "shape"):
            found.append(child)
        else:
            found.extend(_datasets_under(child))
    return found


def legacy_weight_names(group):
    """The ``weight_names`` attribute of a legacy ``.h5`` layer group, as str."""
    names = group.attrs.get("weight_names", [])
    return [name.decode() if isinstance(name, bytes) else str(name) for name in names]


def _legacy_selection(handle, layer):
    """``[(name parts, dataset)]`` of a legacy layer's weights (its share of a nested model's group)."""
    group = handle.get(f"model_weights/{layer.h5_group}")
    if group is None:
        return []
    chosen = []
    for full in legacy_weight_names(group):
        parts = full.split("/")
        if layer.h5_group == layer.name or layer.name in parts[:-1]:
            chosen.append((parts, group[full]))
    return chosen


def layer_datasets(handle, layer, fmt):
    """Every dataset holding ``layer``'s weights (sublayers included), unread."""
    if fmt == "h5":
        return [dataset for _, dataset in _legacy_selection(handle, layer)]
    group = keras3_group(handle, layer)
    return [] if group is None else _datasets_under(group)


def total_datasets(handle, fmt):
    """Every weight dataset of the model (what ``model.count_params()`` counts), unread."""
    root = handle.get("model_weights" if fmt == "h5" else "layers")
    return [] if root is None else _datasets_under(root)


def _keyed(names, datasets, family, where):
    order = _ORDER[family]
    if len(datasets) not in (len(order), len(order) - 1):
        raise StoredLayoutError(f"{where} holds {len(datasets)} variables where its class saves {len(order)}")
    return dict(zip(names or order, datasets))


def _keras3_arrays(group, class_name, config, where):
    spec = spec_named(class_name)
    layout = getattr(spec, "stored_vars", None)  # a kind that says where each array is (its sublayers' groups)
    if layout is not None:
        return _laid_out(group, layout, where)
    if spec.family == "time_distributed":
        inner = config.get("layer") or {}
        return _keras3_arrays(_child(group, "layer", where), inner.get("class_name"), inner.get("config", {}), where)
    if spec.family == "bidirectional":
        inner = (config.get("layer") or {}).get("class_name")
        arrays = {}
        for direction in ("forward", "backward"):
            sub = _keras3_arrays(_child(group, f"{direction}_layer", where), inner, {}, where)
            arrays.update({f"{direction}/{key}": value for key, value in sub.items()})
        return arrays
    if spec.family == "rnn":
        group = _child(group, "cell", where)
    entry = group.get("vars")
    datasets = [] if entry is None else [entry[str(i)] for i in range(len(entry)) if str(i) in entry]
    return _keyed(None, datasets, spec.family, where)


def _laid_out(group, layout, where):
    """``{key: dataset}`` where ``layout`` maps each key to (sublayer group or "", index in its ``vars``)."""
    arrays = {}
    for key, (child, index) in layout.items():
        entry = (_child(group, child, where) if child else group).get("vars")
        if entry is not None and str(index) in entry:
            arrays[key] = entry[str(index)]
    return arrays


def _child(group, name, where):
    child = group.get(name)
    if child is None:
        raise StoredLayoutError(f"{where} has no {name!r} group where its class saves one")
    return child


def _legacy_arrays(selection, class_name, config):
    spec = spec_named(class_name)
    if spec.family == "time_distributed":
        inner = config.get("layer") or {}
        return _legacy_arrays(selection, inner.get("class_name"), inner.get("config", {}))
    if spec.family == "bidirectional":
        arrays = {}
        inner = (config.get("layer") or {}).get("class_name")
        for direction in ("forward", "backward"):
            mine = [(parts, data) for parts, data in selection
                    if any(part.startswith(direction + "_") for part in parts[:-1])]
            arrays.update({f"{direction}/{key}": value for key, value in _legacy_arrays(mine, inner, {}).items()})
        return arrays
    legacy = {names: key for key, names in getattr(spec, "legacy_vars", {}).items()}  # (sublayer, variable)
    aliases = _ALIASES.get(spec.family, {})
    arrays = {}
    for parts, dataset in selection:
        if legacy:
            key = legacy.get((parts[-2] if len(parts) > 1 else "", parts[-1].split(":", 1)[0]))
            if key is not None:
                arrays[key] = dataset
            continue
        key = parts[-1].split(":", 1)[0]
        arrays[aliases.get(key, key)] = dataset
    return arrays


def keyed_datasets(handle, layer, fmt, class_name=None, config=None):
    """``{registry key: h5py.Dataset}`` of a layer with neuron rows, unread.

    Parameters
    ----------
    handle : h5py.File
    layer : StoredLayer
    fmt : {"keras", "h5", "weights"}

    Raises
    ------
    StoredLayoutError
        When the variables are not where, or not as many as, its class saves them.
    """
    class_name = layer.class_name if class_name is None else class_name
    config = layer.config if config is None else config
    if fmt == "h5":
        return _legacy_arrays(_legacy_selection(handle, layer), class_name, config)
    group = keras3_group(handle, layer)
    if group is None:
        raise StoredLayoutError("no weights group in the file")
    return _keras3_arrays(group, class_name, config, "its weights group")


def dtype_problem(dataset):
    """Why a weight dataset does not hold real numbers Keras could load (``"complex64 data"``), or None."""
    dtype = dataset.dtype
    if dtype.kind in "fiu" and dtype.fields is None:
        return None
    if dtype.kind == "V" and dtype.itemsize == 2 and dtype.fields is None and dataset.attrs.get("dtype") in (
            "bfloat16", b"bfloat16"):
        return None  # Keras 3 writes bfloat16 variables as 2-byte opaque data with this attribute
    if dtype.fields is not None:
        return f"compound data (fields {', '.join(map(repr, dtype.names))})"
    return f"{dtype} data"


def _read(dataset):
    value = dataset[()]
    if value.dtype.kind == "V":  # bfloat16 (see dtype_problem)
        import ml_dtypes

        value = value.view(ml_dtypes.bfloat16)
    return np.asarray(value, dtype=np.float32)


def layer_arrays(handle, layer, fmt, class_name=None, config=None):
    """``{registry key: ndarray}`` of a layer with neuron rows, read now (one layer's worth).

    Parameters
    ----------
    handle : h5py.File
    layer : StoredLayer
    fmt : {"keras", "h5", "weights"}

    Returns
    -------
    dict of str to ndarray of float32

    Raises
    ------
    StoredLayoutError
        When the variables are not where, or not as many as, its class saves them, or hold no real numbers.
    """
    arrays = keyed_datasets(handle, layer, fmt, class_name, config)
    for key, dataset in arrays.items():
        problem = dtype_problem(dataset)
        if problem is not None:
            raise StoredLayoutError(f"its {key} is {problem}")
    return {key: _read(dataset) for key, dataset in arrays.items()}
