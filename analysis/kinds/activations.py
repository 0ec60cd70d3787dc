"""Element-wise activation layers (a group passes through them) and Softmax (it mixes channels)."""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.base import LayerKind

__all__ = ["ActivationKind", "ElementwiseKind", "KINDS"]


class ElementwiseKind(LayerKind):
    """An activation layer: one function on each element (see :meth:`elementwise`)."""

    family = "step"
    merge = "activation"

    def step_problem(self, layer, rank):
        problem = super().step_problem(layer, rank)
        if problem is None:
            name = layer.get_config().get("activation", "relu")
            if not isinstance(name, str) or name in ("softmax", "log_softmax"):
                problem = f"activation {name!r} does not act on each channel separately"
        return problem

    def chain_role(self, config):
        return None

    def elementwise(self, layer):
        """``(description, homogeneous, function)`` of the function it applies; ``function`` None means the
        Keras activation named ``description`` (maybe not a string: a custom one)."""
        raise NotImplementedError(type(self).__name__)


class ActivationKind(ElementwiseKind):
    """``keras.layers.Activation``: the activation named in its config, on each element."""

    def chain_role(self, config):
        return "pass" if config.get("activation") in (None, "linear") else None

    def elementwise(self, layer):
        return layer.get_config()["activation"], None, None


class ReLUKind(ElementwiseKind):
    """``keras.layers.ReLU``: homogeneous unless capped or thresholded."""

    def elementwise(self, layer):
        config = layer.get_config()
        if config.get("max_value") is None and float(config.get("threshold", 0.0)) == 0.0:
            slope = float(config.get("negative_slope", 0.0))
            return "relu", True, lambda x, slope=slope: np.where(x > 0, x, slope * x)
        keras = import_keras()
        return "relu (capped or thresholded)", False, (
            lambda x, layer=layer: np.asarray(keras.ops.convert_to_numpy(layer(x.astype("float32"))),
                                              dtype=np.float64))


class LeakyReLUKind(ElementwiseKind):
    """``keras.layers.LeakyReLU``: positively homogeneous."""

    def elementwise(self, layer):
        slope = float(layer.get_config()["negative_slope"])
        return "leaky_relu", True, lambda x, slope=slope: np.where(x > 0, x, slope * x)


class ELUKind(ElementwiseKind):
    """``keras.layers.ELU``: element-wise, not homogeneous."""

    def elementwise(self, layer):
        alpha = float(layer.get_config().get("alpha", 1.0))
        return "elu", False, lambda x, alpha=alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


KINDS = {"Activation": ActivationKind(), "ReLU": ReLUKind(), "LeakyReLU": LeakyReLUKind(), "ELU": ELUKind()}
KINDS["Softmax"] = LayerKind(family="step", activation="softmax", same_shape=True)  # mixes channels: stops a merge walk
