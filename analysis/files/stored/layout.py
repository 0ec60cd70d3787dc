"""A saved model's layers from its configuration alone: class, config, nesting, and where their weights are.

The layers come in the order :func:`weightkit.analysis.files.loading.walk_layers` gives a loaded model's
(``model.layers``, nested models expanded, the models themselves left out), so that entries are
named and numbered as on the Keras path.

Where a layer's variables sit, per format, as Keras' own saving code puts them:

- Keras 3 (``.keras``, ``.weights.h5``; ``keras/src/saving/saving_lib.py``): ``_save_state`` walks
  the model; a Functional or Sequential model saves ``model.layers`` first, as a container, each
  layer under ``layers/<snake_case(class name)>`` made unique per container (``dense``,
  ``dense_1``...; ``_save_container_state``), in ``model.layers`` order (a Sequential's leaves its
  InputLayer out, a Functional's keeps it). A layer's own variables are ``<group>/vars/0, 1, ...``
  and its tracked sublayers follow by attribute name (an RNN's ``cell``, a Bidirectional's
  ``forward_layer`` / ``backward_layer``, a TimeDistributed's ``layer``). Keras 3.15 also writes
  the layer's name as the ``name`` attribute of ``vars``: where it is there it decides
  (:func:`keras3_group`).
- legacy ``.h5`` (``keras/src/legacy/saving/legacy_h5_format.py``): ``model_weights/<top-level layer
  name>`` with a ``weight_names`` attribute; a nested model's group holds all its layers' weights,
  each named ``.../<layer name>/<variable>`` (Keras 2 adds ``:0``).
"""

import re
from dataclasses import dataclass, field

__all__ = ["StoredLayer", "is_model", "keras3_group", "model_layers", "saved_name", "snake_case"]

_MODELS = ("Functional", "Sequential", "Model")


@dataclass
class StoredLayer:
    """One layer of a saved model, as its configuration describes it.

    Attributes
    ----------
    name : str
    class_name : str
        ``class_name`` of its serialized entry (``"Dense"``).
    config : dict
        Its ``config``.
    item : dict
        The whole serialized entry (``module``, ``build_config``, ``inbound_nodes``).
    keras_group : str
        Where Keras 3 saves its variables (``layers/functional/layers/dense_1``).
    h5_group : str
        The ``model_weights`` group of a legacy ``.h5`` holding them (its top-level layer's name).
    path : tuple of str
        Names of the nested models it sits in, outermost first.
    index : int
        Position in the model's walk order.
    """

    name: str
    class_name: str
    config: dict
    item: dict
    keras_group: str
    h5_group: str
    path: tuple = ()
    index: int = 0
    container: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def module(self):
        return self.item.get("module")


def snake_case(name):
    """Keras' ``naming.to_snake_case``: ``"Conv2D" -> "conv2d"``, ``"InputLayer" -> "input_layer"``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def is_model(item):
    """Whether a serialized entry is a Functional or Sequential model (whose layers are listed)."""
    return (isinstance(item, dict) and item.get("class_name") in _MODELS
            and isinstance(model_entries(item), list))


def model_entries(item):
    """The serialized layers of a model entry (a Keras 2.2 Sequential's config is the list itself)."""
    inner = item.get("config")
    return inner if isinstance(inner, list) else (inner or {}).get("layers")


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def model_layers(config):
    """The leaf layers of a model configuration, in walk order.

    Parameters
    ----------
    config : dict
        The model's serialized configuration (``config.json``, or an ``.h5`` file's ``model_config``).

    Returns
    -------
    list of StoredLayer
    """
    found = []

    def visit(model, prefix, top, path):
        used = {}
        sequential = model.get("class_name") == "Sequential"
        for item in model_entries(model) or []:
            if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
                continue
            class_name, inner = item.get("class_name"), item["config"]
            if sequential and class_name == "InputLayer":
                continue
            group = f"{prefix}layers/{_unique(snake_case(str(class_name)), used)}"
            name = str(inner.get("name"))
            if is_model(item):
                visit(item, group + "/", top or name, path + (name,))
            else:
                found.append(StoredLayer(name, str(class_name), inner, item, group, top or name, path,
                                         len(found), prefix))

    visit(config, "", None, ())
    return found


def keras3_group(handle, layer):
    """The group of ``handle`` (a Keras 3 weights file) holding ``layer``'s variables, or None.

    The computed path is used when its ``vars`` carries no name or the layer's; otherwise the
    sibling whose ``vars`` names the layer.
    """
    group = handle.get(layer.keras_group)
    if group is not None and saved_name(group) in (None, layer.name):
        return group
    container = handle.get(layer.container + "layers")
    if container is None:
        return None
    for child in container.values():
        if saved_name(child) == layer.name:
            return child
    return None


def saved_name(group):
    """The layer name Keras 3.15 records on a group's ``vars``, or None."""
    entry = group.get("vars") if hasattr(group, "get") else None
    name = None if entry is None else entry.attrs.get("name")
    return name.decode() if isinstance(name, bytes) else name
