"""Recurrent layers unrolled for the TFLite converter.

TF 2.21 cannot convert SimpleRNN / LSTM / GRU kept as a while loop over a tensor list
(``'tf.TensorListReserve' op requires element_shape to be static``); with ``unroll=True`` in each
recurrent layer's config, the same weights convert in every mode (float32, dynamic, int8) and
the batch stays resizable (see /work/shared/NOTES.md). Unrolling needs a fixed sequence length.
"""

from weightkit.analysis._tf import import_keras, import_tensorflow
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.files.loading import walk_layers

__all__ = ["UNROLL_MAX_STEPS", "frozen_function", "recurrent_layers", "unrolled_copy"]

UNROLL_MAX_STEPS = 64  # longer sequences stay rolled: an unrolled graph grows with every step


def _is_recurrent(layer):
    """A SimpleRNN/LSTM/GRU or Bidirectional layer (its kind runs over time steps)."""
    kind = kind_for(layer)
    return kind is not None and kind.recurrent


def recurrent_layers(model):
    """Names of the recurrent layers (Bidirectional wrappers included) that are not unrolled yet."""
    return [layer.name for layer in walk_layers(model)
            if _is_recurrent(layer) and not _unrolled(layer.get_config())]


def _unrolled(config):
    if "layer" in config and isinstance(config["layer"], dict):  # Bidirectional
        return config["layer"]["config"].get("unroll", False)
    return config.get("unroll", False)


def _unroll_config(config):
    config = dict(config)
    for key in ("layer", "backward_layer"):
        if isinstance(config.get(key), dict):
            inner = dict(config[key])
            inner["config"] = {**inner["config"], "unroll": True}
            config[key] = inner
    if "units" in config:
        config["unroll"] = True
    return config


def unrolled_copy(model):
    """A copy of ``model`` with every recurrent layer unrolled and the same weights; None when none is rolled.

    Returns
    -------
    keras.Model or None
    """
    keras = import_keras()
    if not recurrent_layers(model):
        return None

    def clone(layer):
        if _is_recurrent(layer):
            return layer.__class__.from_config(_unroll_config(layer.get_config()))
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def frozen_function(model, input_shape, batch=1):
    """The model as a TensorFlow function of static batch ``batch``, its variables frozen to constants.

    What the converter can take for a recurrent layer kept rolled (too many steps to unroll): a
    static batch and sequence length, and no resource variables left for the LiteRT interpreter
    to read inside the while loop (``READ_VARIABLE ... variable != nullptr`` otherwise).

    Parameters
    ----------
    model : keras.Model
        One input.
    input_shape : tuple
        ``(None, steps, ...)``.
    batch : int, default=1

    Returns
    -------
    tf.types.experimental.ConcreteFunction
    """
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((batch,) + tuple(int(d) for d in input_shape[1:]), model.inputs[0].dtype)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return convert_variables_to_constants_v2(function)
