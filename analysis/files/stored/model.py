"""A saved model as its file holds it: configuration and weights, never built, nothing deserialized."""

import contextlib
import math
import os

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.keras2 import repaired_keras2_config
from weightkit.analysis.files.loading import read_model_config
from weightkit.analysis.files.stored.checks import check_weights_fit_config
from weightkit.analysis.files.stored.files import WEIGHTS_SUFFIX, open_weights, read_weights_config
from weightkit.analysis.files.stored.layout import model_layers
from weightkit.analysis.files.stored.nodes import walk_calls
from weightkit.analysis.files.stored.weights import layer_datasets, total_datasets

__all__ = ["StoredModel", "open_stored"]


class StoredModel:
    """A model file read as data: what weight analysis needs, without Keras.

    Parameters
    ----------
    path : str
        The model file (``.keras``, ``.h5``) or a ``.weights.h5`` file.
    fmt : {"keras", "h5", "weights"}
    config : dict
        The model's configuration.
    notes : list of str
        What reading it had to do (a Keras 2 file's repairs), as the Keras loader words it.

    Attributes
    ----------
    name : str
        The model's name from its configuration.
    layers : list of weightkit.analysis.files.stored.layout.StoredLayer
        Leaf layers in ``walk_layers`` order.
    """

    def __init__(self, path, fmt, config, notes=()):
        self.path, self.format, self.config, self.notes = path, fmt, config, list(notes)
        inner = config.get("config")
        self.name = str(inner.get("name") if isinstance(inner, dict) else config.get("name", "model"))
        self.layers = model_layers(config)
        self._sizes = None
        self.shape_notes = []
        self._input_shapes = None

    def __repr__(self):
        return f"<StoredModel {self.name!r} from {self.path} ({self.format}, {len(self.layers)} layers)>"

    @contextlib.contextmanager
    def open(self):
        """The weights file, open (see :func:`weightkit.analysis.files.stored.files.open_weights`)."""
        with open_weights(self.path, self.format) as handle:
            yield handle

    def propagated_shape(self, layer):
        """The input shape of the layer's first call, propagated through the configs from the model's inputs."""
        if self._input_shapes is None:
            shapes = {}
            for call in walk_calls(self.config)[0]:
                shapes.setdefault(call.name, call.input_shape)
            self._input_shapes = shapes
        return self._input_shapes.get("/".join(layer.path + (layer.name,)))

    def _read_sizes(self):
        if self._sizes is None:
            with self.open() as handle:
                shapes = {layer.name: [tuple(int(n) for n in d.shape) for d in layer_datasets(handle, layer,
                                                                                              self.format)]
                          for layer in self.layers}
                total = sum(int(d.size) for d in total_datasets(handle, self.format))
            self._sizes = (shapes, total)
        return self._sizes

    def weight_shapes(self, layer):
        """Shapes of ``layer``'s stored weights, in the layer's order (``[w.shape for w in layer.weights]``)."""
        return tuple(self._read_sizes()[0][layer.name])

    def layer_params(self, layer):
        """Values stored for ``layer`` (``layer.count_params()``)."""
        return sum(math.prod(shape) for shape in self.weight_shapes(layer))

    def count_params(self):
        """Values stored for the whole model (``model.count_params()``)."""
        return self._read_sizes()[1]


def open_stored(path):
    """Read a model file's configuration and open its weights for analysis, with the loader's checks.

    Parameters
    ----------
    path : str or os.PathLike
        ``.keras``, legacy ``.h5``, or ``.weights.h5`` with its configuration beside it
        (see :func:`weightkit.analysis.files.stored.files.config_beside`).

    Returns
    -------
    StoredModel

    Raises
    ------
    WeightkitError
        Missing, empty, corrupt, truncated or forged files, in one line (as :func:`weightkit.analysis.load_model`),
        and a model with no weights at all.
    """
    path = os.fspath(path)
    notes = []
    if path.endswith(WEIGHTS_SUFFIX) and os.path.isfile(path):
        config, _ = read_weights_config(path)
        fmt = "weights"
    else:
        fmt, config = read_model_config(path)
        if fmt == "h5":
            config = repaired_keras2_config(config, path, notes) or config
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise WeightkitError(f"{path}: its configuration is not a Keras model configuration (no class_name); "
                             "save the model with model.save('model.keras').")
    stored = StoredModel(path, fmt, config, notes)
    _refuse_subclassed(stored)
    try:
        total = stored.count_params()
    except (OSError, KeyError, ValueError) as error:
        raise WeightkitError(f"{path}: its weights cannot be read ({error}); copy or save the model again.") from error
    if not total:
        kinds = sorted({layer.class_name for layer in stored.layers} - {"InputLayer"})
        raise WeightkitError(
            f"{path}: model {stored.name!r} has no layer with weights (only {', '.join(kinds) or 'its input'}), "
            "so there is nothing to analyze or change; check that this is the trained model you meant."
        )
    with stored.open() as handle:
        check_weights_fit_config(stored, handle)
    return stored


def _refuse_subclassed(stored):
    """A subclassed model's file lists no layers (its class's code builds them): name the class, one line."""
    inner = stored.config.get("config")
    if stored.layers or (isinstance(inner, dict) and "layers" in inner) or \
            stored.config["class_name"] in ("Functional", "Sequential"):
        return
    name = stored.config.get("registered_name") or stored.config["class_name"]
    raise WeightkitError(
        f"{stored.path}: the model is a subclassed model of custom class {name}, whose layers only its code builds, "
        "so the file lists none to read (and --unsafe cannot help: the class is not in this process); in Python, "
        "with the class imported, save it as a functional model: inp = keras.Input(shape=...); "
        "keras.Model(inp, model.call(inp)).save('model.keras')."
    )
