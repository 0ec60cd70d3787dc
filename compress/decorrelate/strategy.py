"""The ``tf.distribute`` strategy a retrain trains under, and the copy of the model built inside it."""

import os

from weightkit.analysis._tf import import_keras, import_tensorflow
from weightkit.analysis.errors import WeightkitError

__all__ = ["choose_strategy", "copy_into"]

_STRATEGIES = {}


def choose_strategy():
    """The ``tf.distribute`` strategy to train under.

    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set (a multi-machine job; refused unless
    ``WEIGHTKIT_TRY_MULTIWORKER`` is set, since Keras 3's ``fit`` fails under it), else
    ``MirroredStrategy`` over the local GPUs (or logical CPUs) when there are several, else the
    default strategy.

    Returns
    -------
    strategy : tf.distribute.Strategy
    name : str
    """
    if os.environ.get("TF_CONFIG") and not os.environ.get("WEIGHTKIT_TRY_MULTIWORKER"):
        raise WeightkitError(
            "TF_CONFIG is set, but training on several machines (MultiWorkerMirroredStrategy) fails in Keras 3's fit "
            "on per-replica values (keras-team/keras#20585; tested with two local workers); unset TF_CONFIG to "
            "train on this machine's GPUs or CPUs.")
    tf = import_tensorflow()
    if os.environ.get("TF_CONFIG"):
        # Collective ops are configured when the strategy is made, which must come before any other op
        # runs (loading a model runs some): the command makes it first, and every later call gets that one.
        if "multi_worker" not in _STRATEGIES:
            _STRATEGIES["multi_worker"] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES["multi_worker"], "MultiWorkerMirroredStrategy"
    for kind in ("GPU", "CPU"):
        devices = tf.config.list_logical_devices(kind)
        if len(devices) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in devices]), "MirroredStrategy"
        if kind == "GPU" and devices:
            break
    return tf.distribute.get_strategy(), "default"


def copy_into(model, strategy):
    """A copy of ``model`` built under ``strategy`` with the same weights; the input stays untouched.

    Returns
    -------
    copy : keras.Model
    note : str or None
        Why the loaded model itself is trained (a subclassed model cannot be cloned; default strategy only).

    Raises
    ------
    WeightkitError
        When the model cannot be cloned for a multi-device strategy.
    """
    keras = import_keras()
    try:
        with strategy.scope():
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
        return copy, None
    except Exception as error:  # noqa: BLE001 - subclassed models cannot be cloned
        if strategy is import_tensorflow().distribute.get_strategy():
            return model, f"could not copy the model ({type(error).__name__}); trained the loaded copy in place"
        raise WeightkitError(
            f"model {model.name!r}: cannot be rebuilt for multi-device training ({type(error).__name__}); "
            "save it as a Functional or Sequential model, or run on one device."
        ) from error
