"""Load a saved Keras model safely, with one clear line for every way it can fail.

Formats: ``.keras`` (Keras 3 zip archives) and legacy ``.h5`` (Keras 2 or 3). Before Keras sees
a file we read its configuration ourselves, so that a Lambda layer or an unknown custom class is
refused by name *before* any code from the file could run; ``unsafe=True`` lifts that. Classes of
installed Keras-ecosystem libraries (keras-hub) are installed code, not the file's: they load in
safe mode (:data:`weightkit.analysis.files.own_classes.ECOSYSTEM_PACKAGES`).
"""

import contextlib
import os
import tempfile
from dataclasses import dataclass, field

from weightkit.analysis._tf import import_keras, silenced_stderr
from weightkit.analysis.files.config_files import first_line, h5_config, keras_config
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.keras2 import load_h5_with_config, repaired_keras2_config
from weightkit.analysis.files.limits import check_regular_file
from weightkit.analysis.files.own_classes import (OWN_CLASSES, ecosystem_package, import_ecosystem, is_own_class,
                                           own_custom_objects)

__all__ = ["LoadedModel", "load_model", "is_saved_model_dir", "walk_layers", "read_model_config",
           "check_model_weights", "check_model_path"]

_UNSAFE_HINT = "pass --unsafe (unsafe=True) only if you trust the file"


@dataclass
class LoadedModel:
    """A loaded model and what loading it had to do.

    Attributes
    ----------
    model : keras.Model
    path : str or None
        None for a model that was given in memory (see :func:`weightkit.analysis.data.inputs.as_model`).
    format : {"keras", "h5"} or None
    notes : list of str
        Things the user should know (e.g. "loaded without its compiled settings").
    compiled : bool
        Whether the optimizer, loss and metrics saved with the model were restored.
    """

    model: object
    path: str
    format: str
    notes: list = field(default_factory=list)
    compiled: bool = False


def is_saved_model_dir(path):
    """True when ``path`` is a TensorFlow SavedModel directory."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def _check_path(path):
    if not os.path.exists(path):
        raise WeightkitError(f"{path}: no such file; check the path to the model (.keras or .h5).")
    if is_saved_model_dir(path):
        raise WeightkitError(
            f"{path}: is a TensorFlow SavedModel directory, which Keras 3 cannot load as a model; "
            "load it where it was made and save it with model.save('model.keras')."
        )
    if os.path.isdir(path):
        raise WeightkitError(f"{path}: is a directory, not a model file; give the path of a .keras or .h5 file.")
    if not os.access(path, os.R_OK):
        raise WeightkitError(f"{path}: cannot be read (permission denied); fix its permissions.")
    check_regular_file(path)
    if os.path.getsize(path) == 0:
        raise WeightkitError(f"{path}: is an empty file, not a model; save the model again.")


def check_model_path(path):
    """Check a model path without reading the model (no TensorFlow): what :func:`load_model` checks first.

    A TensorFlow SavedModel folder passes (``quantize`` converts one; :func:`load_model` refuses it).

    Raises
    ------
    WeightkitError
        A missing, unreadable, empty or special file, or a plain folder, in one line.
    """
    if not is_saved_model_dir(path):
        _check_path(path)


def _sniff_format(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK"):
        return "keras"
    if head == b"\x89HDF\r\n\x1a\n":
        return "h5"
    suffix = os.path.splitext(path)[1].lower()
    what = {".keras": "a .keras zip archive", ".h5": "an HDF5 file", ".hdf5": "an HDF5 file"}
    expected = what.get(suffix, "a .keras or .h5 model file")
    raise WeightkitError(
        f"{path}: is not {expected} (unrecognized content); check that the file is a saved "
        "Keras model and was copied completely."
    )


def read_model_config(path):
    """Read a model file's architecture configuration without loading the model.

    Parameters
    ----------
    path : str
        A ``.keras`` or ``.h5`` file.

    Returns
    -------
    fmt : {"keras", "h5"}
    config : dict
        The model's serialized configuration.

    Raises
    ------
    WeightkitError
        If the file is missing, empty, truncated, not a model, or unsafe to extract.
    """
    _check_path(path)
    fmt = _sniff_format(path)
    config = keras_config(path) if fmt == "keras" else h5_config(path)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        where = "config.json" if fmt == "keras" else "its model_config"
        raise WeightkitError(
            f"{path}: {where} is not a Keras model configuration (no class_name); save the model "
            "with model.save('model.keras')."
        )
    return fmt, config


def _known_class_names():
    keras = import_keras()
    names = {"Functional", "Sequential", "Model", "InputLayer"}
    for module in (
        keras.layers,
        keras.initializers,
        keras.regularizers,
        keras.constraints,
        keras.optimizers,
        keras.losses,
        keras.metrics,
        keras.activations,
        keras.dtype_policies,
        keras.models,
    ):
        names.update(name for name in dir(module) if not name.startswith("_"))
    names.update({"DTypePolicy", "Policy", "FloatDTypePolicy"})
    return names - {"Lambda"}


# Plain data that Keras' serializer writes with a reserved class name (tensors, slices, bytes):
# deserializing them runs no code from the file. ``__lambda__`` (a serialized Python lambda) is
# not among them: it is code.
_DATA_CLASS_NAMES = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__",
                               "__slice__", "__typespec__"})


def _config_objects(config, layer_name=None):
    """``(object, enclosing_layer_name)`` for every ``{"class_name": ...}`` object in a config.

    The enclosing layer is the nearest object whose ``config`` has a ``name`` (a layer or a
    model), so that a custom initializer or activation is reported with the layer that uses it.
    """
    stack = [(config, layer_name)]
    while stack:
        item, owner = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str):
                inner = item.get("config")
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    owner = inner["name"]
                yield item, owner
            stack.extend((value, owner) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, owner) for value in item)


def _unsafe_objects(config):
    """``(description, layer_name)`` for code a config would run: Lambda layers, Python lambdas,
    TFSMLayers (an external SavedModel is a program), and classes or functions that Keras does not know."""
    keras = import_keras()
    known = _known_class_names()
    found = []
    for item, owner in _config_objects(config):
        class_name = item["class_name"]
        inner = item.get("config")
        is_layer = isinstance(inner, dict) and inner.get("name") == owner
        verb = "is" if is_layer else "uses"
        if class_name == "Lambda":
            found.append((f"{verb} a Lambda layer", owner))
            continue
        if class_name == "__lambda__":
            found.append(("uses a Python lambda", owner))
            continue
        if class_name == "TFSMLayer":  # Keras refuses it in safe mode too, in a message too long for one line
            source = inner.get("filepath") if isinstance(inner, dict) else None
            found.append((f"{verb} a TFSMLayer, which loads and runs an external SavedModel"
                          f"{f' ({source})' if isinstance(source, str) else ''}", owner))
            continue
        if class_name in _DATA_CLASS_NAMES:
            continue
        module = item.get("module")
        registered = item.get("registered_name") or class_name
        if isinstance(module, str) and (module == "keras" or module.startswith("keras.")):
            continue
        if is_own_class(module, class_name, registered) or _is_registered_here(keras, module, class_name, registered):
            continue
        if module is None and class_name in known and item.get("registered_name") in (None, class_name):
            continue
        what = inner if class_name == "function" and isinstance(inner, str) else registered
        if registered in OWN_CLASSES:  # not weightkit's class under its name: say what it is
            what = f"{module}.{class_name} registered as {registered}"
        found.append((f"{verb} an unknown custom object ({what})", owner))
    return found


def _import_ecosystems(config, path):
    """Import the Keras-ecosystem libraries whose classes ``config`` names (keras_hub), or refuse in one line.

    Their classes then pass :func:`_unsafe_objects` through Keras' registry, identity checked; a library
    that is not installed is refused whatever ``unsafe`` says, since the class cannot be found either way.
    """
    tried = {}
    for item, owner in _config_objects(config):
        package = ecosystem_package(item.get("module"), item.get("registered_name") or item["class_name"])
        if package is None:
            continue
        if package not in tried:
            tried[package] = import_ecosystem(package)
        if tried[package] is not None:
            where = "the model" if owner is None else f"layer {owner!r}"
            raise WeightkitError(f"{path}: {where} is {item.get('registered_name') or item['class_name']}, but "
                                 f"{tried[package]}.")


def _is_registered_here(keras, module, class_name, registered):
    """Whether a class registered in this process has this whole identity (module, class, registered name)."""
    if registered in OWN_CLASSES:
        return False  # weightkit's own names are checked against their table only
    found = keras.saving.get_registered_object(registered)
    name = getattr(found, "__name__", None)
    # A legacy .h5 stores the registered name as the class name ("keras_hub>TransformerEncoder") and no module.
    return (found is not None
            and (name == class_name.split(">", 1)[-1] or (class_name == "function" and callable(found)))
            and (module is None or getattr(found, "__module__", None) == module))


def load_model(path, *, unsafe=False, compile=True):
    """Load a ``.keras`` or ``.h5`` model, refusing embedded code unless ``unsafe``.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    unsafe : bool, default=False
        Allow Lambda layers and custom classes whose code would run while loading.
    compile : bool, default=True
        Restore the saved optimizer, loss and metrics when possible. A Keras 2 file whose
        training settings Keras 3 rejects is loaded with ``compile=False`` and a note says so.

    Returns
    -------
    LoadedModel

    Raises
    ------
    WeightkitError
        Missing, empty, corrupt, truncated, unsupported or unsafe files, each in one line.

    Notes
    -----
    weightkit's own serializable classes (the decorrelation regularizer a model keeps after
    ``weightkit retrain --keep-regularizer``) load in safe mode without the caller importing
    ``compress`` first, and so do the classes of installed Keras-ecosystem libraries (keras-hub's
    ``keras_hub>TransformerEncoder``, ``keras_hub>GemmaBackbone``, ...), imported only when the file
    names one: see :mod:`weightkit.analysis.files.own_classes`.
    """
    path = os.fspath(path)
    fmt, config = read_model_config(path)
    _import_ecosystems(config, path)
    unsafe_items = _unsafe_objects(config)
    if unsafe_items and not unsafe:
        description, layer_name = unsafe_items[0]
        where = "the model" if layer_name is None else f"layer {layer_name!r}"
        raise WeightkitError(
            f"{path}: {where} {description}, whose code would run while loading; refused in "
            f"safe mode: {_UNSAFE_HINT}."
        )
    keras = import_keras()
    notes = []
    own = own_custom_objects(item.get("registered_name") or item["class_name"] for item, _ in _config_objects(config))
    repaired = repaired_keras2_config(config, path, notes) if fmt == "h5" else None
    if repaired is not None:
        try:
            model = load_h5_with_config(path, repaired, own, unsafe)
        except Exception as error:  # noqa: BLE001 - any Keras failure becomes one line
            raise WeightkitError(_cannot_load(keras, path, error)) from error
        return LoadedModel(model=model, path=path, format=fmt, notes=notes, compiled=False)
    with _path_keras_accepts(path, fmt) as keras_path:
        model, compiled = _keras_load(keras, keras_path, path, fmt, unsafe, compile, notes,
                                      [item for item in unsafe_items if "custom object" in item[0]], own)
    return LoadedModel(model=model, path=path, format=fmt, notes=notes, compiled=compiled)


def _cannot_load(keras, path, error):
    return (f"{path}: Keras {keras.__version__} could not load the model ({type(error).__name__}: "
            f"{first_line(error)}); if an older Keras wrote it, load it there and save it again with "
            "model.save('model.keras'), or report the layer the error names.")


@contextlib.contextmanager
def _path_keras_accepts(path, fmt):
    """``path``, or a link to it whose suffix matches its content.

    Keras picks its reader by the file name (``.keras`` or ``.h5``/``.hdf5``); we went by the
    content, so an HDF5 model called ``model.bin`` or a zip called ``model.zip`` still loads.
    """
    suffixes = {"keras": (".keras",), "h5": (".h5", ".hdf5")}[fmt]
    if path.endswith(suffixes):  # Keras compares case-sensitively
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="weightkit-load-") as folder:
        link = os.path.join(folder, "model" + suffixes[0])
        os.symlink(os.path.abspath(path), link)
        yield link


def _keras_load(keras, keras_path, path, fmt, unsafe, compile, notes, custom=(), own=None):
    def attempt(with_compile):
        with silenced_stderr():
            return keras.models.load_model(keras_path, custom_objects=own or None, compile=with_compile,
                                           safe_mode=not unsafe)

    first_error = None
    if compile:
        try:
            model = attempt(True)
            return model, _is_compiled(model)
        except Exception as error:  # noqa: BLE001 - retried without compile, then reported
            first_error = error
    try:
        model = attempt(False)
    except Exception as error:  # noqa: BLE001 - any Keras failure becomes one line
        if unsafe and custom:
            description, layer_name = custom[0]
            where = "the model" if layer_name is None else f"layer {layer_name!r}"
            raise WeightkitError(
                f"{path}: Keras could not load the model: {where} {description}, which is not "
                "registered in this Python process; load it in Python with custom_objects=... or "
                "keras.saving.register_keras_serializable, then model.save() without it."
            ) from error
        raise WeightkitError(_cannot_load(keras, path, error)) from error
    if first_error is not None:
        notes.append(
            "loaded without its training settings (optimizer, loss): Keras 3 rejected them "
            f"({first_line(first_error)[:120]})"
        )
    return model, False


def _is_compiled(model):
    return getattr(model, "compiled", False) and getattr(model, "loss", None) is not None


def walk_layers(model):
    """Every layer of a model, nested models expanded, each layer once.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    layers : list of keras.layers.Layer
        In model order. A layer shared by several places appears once.
    """
    keras = import_keras()
    seen = set()
    ordered = []

    def visit(container):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.Model) or isinstance(layer, keras.Sequential):
                visit(layer)
            else:
                ordered.append(layer)

    visit(model)
    return ordered


def check_model_weights(model, path, *, finite=True):
    """Refuse a model with no weights at all, or (``finite``) with a NaN or Inf weight.

    Parameters
    ----------
    model : keras.Model
    path : str
        The file it came from, named in the message.
    finite : bool, default=True
        Also check every weight value; ``analyze`` and ``report`` pass False and list such a
        layer as skipped instead (a diagnosis), while commands that write a model refuse it.

    Raises
    ------
    WeightkitError
        Naming the model (or the first broken layer and weight) and what to do.
    """
    import numpy as np

    layers = walk_layers(model)
    if not any(layer.weights for layer in layers):
        kinds = sorted({type(layer).__name__ for layer in layers} - {"InputLayer"})
        raise WeightkitError(
            f"{path}: model {model.name!r} has no layer with weights (only {', '.join(kinds) or 'its input'}), "
            "so there is nothing to analyze or change; check that this is the trained model you meant."
        )
    if not finite:
        return
    for layer in layers:
        for weight in layer.weights:
            bad = int(np.count_nonzero(~np.isfinite(np.asarray(weight.numpy(), dtype=np.float64))))
            if bad:
                size = int(np.prod(weight.shape))
                raise WeightkitError(
                    f"{path}: layer {layer.name!r}: {bad} of its {size} {weight.name} values "
                    f"{'is' if bad == 1 else 'are'} NaN or Inf, so the model is broken (did training "
                    "diverge?); restore a good copy or retrain it. `weightkit analyze` lists such layers."
                )
