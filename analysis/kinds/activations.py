"""Element-wise activation layers (a group passes through them) and Softmax (it mixes channels)."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["ActivationKind", "KINDS"]


class ActivationKind(LayerKind):
    """An element-wise activation layer: Activation, ReLU, LeakyReLU, ELU."""

    family = "step"
    merge = "activation"

    def step_problem(self, layer, rank):
        problem = super().step_problem(layer, rank)
        if problem is None:
            name = layer.get_config().get("activation", "relu")
            if not isinstance(name, str) or name in ("softmax", "log_softmax"):
                problem = f"activation {name!r} does not act on each channel separately"
        return problem


KINDS = {name: ActivationKind() for name in ("Activation", "ReLU", "LeakyReLU", "ELU")}
KINDS["Softmax"] = LayerKind(family="step", activation="softmax")  # mixes channels: stops a merge walk
