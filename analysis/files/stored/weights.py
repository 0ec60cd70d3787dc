"""A stored layer's weight arrays under the layer registry's keys, read lazily from the HDF5 datasets.

Keras 3 saves a layer's variables unnamed, as ``vars/0, 1, ...`` in the order its
``save_own_variables`` lists them (``keras/src/layers/layer.py``: the layer's own variables in the
order they were created; Dense and the convolutions ``kernel`` then ``bias``, a SeparableConv
``depthwise_kernel``, ``pointwise_kernel``, ``bias``, an RNN cell ``kernel``, ``recurrent_kernel``,
``bias``). A legacy ``.h5`` names each weight; its last path component is the variable
(``dense/kernel:0`` -> ``kernel``). Each layer's kind says which (its ``stored_order``, ``stored_group``,
``stored_vars``, ``legacy_vars``, ``legacy_aliases`` and a wrapper's ``stored_wrapped``:
:class:`weightkit.analysis.kinds.config_rules.ConfigRules`). See :mod:`weightkit.analysis.files.stored.layout`
for where the groups are.
"""

import numpy as np

from weightkit.analysis.kinds.registry import kind_named
from weightkit.analysis.files.stored.layout import keras3_group

__all__ = ["StoredLayoutError", "dtype_problem", "keyed_datasets", "layer_arrays", "layer_datasets",
           "legacy_weight_names", "total_datasets"]

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


def _keyed(datasets, order, where):
    if len(datasets) not in (len(order), len(order) - 1):
        raise StoredLayoutError(f"{where} holds {len(datasets)} variables where its class saves {len(order)}")
    return dict(zip(order, datasets))


def _keras3_arrays(group, class_name, config, where):
    """``{key: dataset}`` of a layer's Keras 3 group, laid out as its kind says."""
    kind = kind_named(class_name)
    if kind.stored_vars is not None:  # its arrays lie in its sublayers' groups
        return _laid_out(group, kind.stored_vars, where)
    wrapped = kind.stored_wrapped(config)
    if wrapped:
        arrays = {}
        for inner in wrapped:
            sub = _keras3_arrays(_child(group, inner.group, where), inner.class_name, inner.config, where)
            arrays.update({inner.prefix + key: value for key, value in sub.items()})
        return arrays
    if kind.stored_group:
        group = _child(group, kind.stored_group, where)
    entry = group.get("vars")
    datasets = [] if entry is None else [entry[str(i)] for i in range(len(entry)) if str(i) in entry]
    return _keyed(datasets, kind.stored_order, where)


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
    """``{key: dataset}`` of a legacy layer's named weights, as its kind names them."""
    kind = kind_named(class_name)
    wrapped = kind.stored_wrapped(config)
    if wrapped:
        arrays = {}
        for inner in wrapped:
            mine = selection if inner.legacy_prefix is None else [
                (parts, data) for parts, data in selection if any(p.startswith(inner.legacy_prefix) for p in parts[:-1])]
            sub = _legacy_arrays(mine, inner.class_name, inner.config)
            arrays.update({inner.prefix + key: value for key, value in sub.items()})
        return arrays
    legacy = {names: key for key, names in kind.legacy_vars.items()}  # (sublayer, variable)
    aliases = kind.legacy_aliases
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
