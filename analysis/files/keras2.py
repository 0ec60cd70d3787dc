"""Keras 2 model files as people have them: repair what Keras 3 refuses, then load with Keras' own code.

Two things real Keras 2 ``.h5`` files carry that Keras 3.15 cannot load: ``time_major`` in
recurrent layer configs (Keras 2.5; refused as an unknown argument) and, in Keras 2.2-era
Sequential files, no InputLayer but a ``batch_input_shape`` on the first layer (Keras 3 builds
it with a doubled batch axis and fails). :func:`repaired_keras2_config` fixes a copy of the
configuration, saying what it did; :func:`load_h5_with_config` loads the file's weights into it.
"""

from weightkit.analysis._tf import import_keras, silenced_stderr
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.hdf5 import open_h5

__all__ = ["repaired_keras2_config", "load_h5_with_config"]


#: Layer-config keys that Keras 2 wrote and Keras 3 refuses, with what dropping them means. A key
#: is dropped only with the value that Keras 3 behaves as; another value is refused.
_OBSOLETE_KEYS = {"time_major": (False, "Keras 3 recurrent layers are always batch-major")}


def repaired_keras2_config(config, path, notes):
    """A copy of a Keras 2 model config without keys Keras 3 refuses, or None when it has none."""
    found = []

    def strip(item):
        if isinstance(item, list):
            return [strip(v) for v in item]
        if not isinstance(item, dict):
            return item
        inner = item.get("config")
        is_layer = isinstance(item.get("class_name"), str) and isinstance(inner, dict)
        copy = {k: strip(v) for k, v in item.items()}
        if is_layer:
            for key, (harmless, why) in _OBSOLETE_KEYS.items():
                if key not in inner:
                    continue
                if inner[key] != harmless:
                    raise WeightkitError(
                        f"{path}: layer {inner.get('name')!r} was saved with {key}={inner[key]!r}, which Keras 3 "
                        f"cannot run ({why}); save the model with {key}={harmless!r} in the Keras that wrote it."
                    )
                found.append((inner.get("name"), key))
                del copy["config"][key]
        return copy

    repaired = strip(config)
    _add_input_layer(repaired, found)
    if not found:
        return None
    for key in dict.fromkeys(key for _, key in found):
        layers = ", ".join(repr(name) for name, k in found if k == key)
        if key == "batch_input_shape":
            notes.append(f"a Keras 2 Sequential without an InputLayer: built from the batch_input_shape of "
                         f"layer {layers}")
        else:
            notes.append(f"a Keras 2 file: dropped {key} from layer {layers} (Keras 3 does not take it; the "
                         "model computes the same)")
    notes.append("loaded without its training settings (a repaired Keras 2 configuration)")
    return repaired


def _add_input_layer(config, found):
    """Give a Keras 2.2-era Sequential (no InputLayer, ``batch_input_shape`` on its first layer) an InputLayer.

    Keras 3.15 builds such a model with a doubled batch axis ((None, None, 5, 3)) and fails.
    """
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        return
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
        return
    first = layers[0].get("config") or {}
    if layers[0].get("class_name") == "InputLayer" or "batch_input_shape" not in first:
        return
    dtype = first.get("dtype") if isinstance(first.get("dtype"), str) else "float32"
    layers.insert(0, {"class_name": "InputLayer",
                      "config": {"batch_shape": first.pop("batch_input_shape"), "dtype": dtype,
                                 "name": f"{first.get('name', 'layer')}_input"}})
    found.append((first.get("name"), "batch_input_shape"))


def load_h5_with_config(path, config, custom_objects, unsafe):
    """Keras' own legacy .h5 loading (``legacy_h5_format.load_model_from_hdf5``) on a repaired configuration.

    The file is only read. Keras' errors propagate: the caller words them.
    """
    from keras.src.legacy.saving import legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    import_keras()
    with silenced_stderr(), open_h5(path, path) as handle, \
            saving_options.keras_option_scope(use_legacy_config=True), \
            serialization_lib.SafeModeScope(not unsafe):
        model = saving_utils.model_from_config(config, custom_objects=custom_objects or {})
        legacy_h5_format.load_weights_from_hdf5_group(handle["model_weights"], model)
    return model
