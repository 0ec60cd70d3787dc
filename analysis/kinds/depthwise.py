"""DepthwiseConv (a filter per input channel) and SeparableConv (a depthwise half, then a pointwise producer)."""

import numpy as np

from weightkit.analysis.kinds.base import Kernel, LayerKind, bias

__all__ = ["DepthwiseKind", "KINDS", "SeparableKind"]


def _depthwise_rows(kernel):
    return kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1]).T  # (*k, in_channels, multiplier)


def _multiplier_problem(layer):
    return None if int(layer.depth_multiplier) == 1 else "depth_multiplier > 1 is not supported"


class DepthwiseKind(LayerKind):
    """A depthwise convolution: no channels of its own; merges with the layer that feeds it."""

    family = "depthwise"
    variables = {"kernel": "kernel", "bias": "bias"}
    kernels = (Kernel(None, "", "kernel", "depthwise_regularizer", "depthwise"),)
    merge = "depthwise"
    has_neurons = True
    order = 3

    def neuron_rows(self, config, arrays):
        return [(None, _depthwise_rows(arrays["kernel"]), bias(arrays))]

    def step_problem(self, layer, rank):
        return super().step_problem(layer, rank) or _multiplier_problem(layer)

    def unmergeable_reason(self, layer):
        return f"a {type(layer).__name__} has no channels of its own: it merges with the layer that feeds it"

    def entries_text(self):
        return "one per channel (× depth multiplier)"

    def merge_support(self):
        return "its channels, with the layer that feeds it"


class SeparableKind(LayerKind):
    """A separable convolution: a depthwise half that passes channels, then a pointwise producer/consumer."""

    family = "separable"
    variables = {"depthwise_kernel": "depthwise_kernel", "pointwise_kernel": "pointwise_kernel", "bias": "bias"}
    kernels = (Kernel("depthwise", "", "depthwise_kernel", "depthwise_regularizer", "depthwise"),
               Kernel("pointwise", "", "pointwise_kernel", "pointwise_regularizer", "last"))
    internal = ("depthwise",)
    merge = "separable"
    units_key = "filters"
    has_neurons = True
    order = 4
    #: The variable that holds its output channels (the cut and the rows of a group read it).
    output_kernel = "pointwise_kernel"

    def neuron_rows(self, config, arrays):
        pointwise = arrays["pointwise_kernel"]  # (1, ..., in_channels * multiplier, filters)
        return [("depthwise", _depthwise_rows(arrays["depthwise_kernel"]), None),
                ("pointwise", pointwise.reshape(-1, pointwise.shape[-1]).T, bias(arrays))]

    def producer_kernel(self, arrays):
        depthwise = np.asarray(arrays["depthwise_kernel"], dtype=np.float64)[..., 0]  # (*k, C), multiplier 1
        pointwise = np.asarray(arrays["pointwise_kernel"], dtype=np.float64)
        return depthwise[..., None] * pointwise.reshape(-1, pointwise.shape[-1])  # (*k, C, filters)

    def producer_problem(self, layer):
        problem = super().producer_problem(layer)
        if problem is None and int(layer.depth_multiplier) != 1:
            problem = "SeparableConv with depth_multiplier > 1 is not supported"
        return problem

    def input_layout(self, after_flatten):
        return "separable"

    def consumer_problem(self, layer, after_flatten):
        return "reads a flattened tensor" if after_flatten else None

    def step_problem(self, layer, rank):
        return super().step_problem(layer, rank) or _multiplier_problem(layer)

    def unmergeable_reason(self, layer):
        return f"{type(layer).__name__} merges only as part of a channel group"

    def entries_text(self):
        return "depthwise, pointwise"

    def merge_support(self):
        return "yes"


KINDS = {}
for _n in ("1D", "2D"):
    KINDS[f"DepthwiseConv{_n}"] = DepthwiseKind()
    KINDS[f"SeparableConv{_n}"] = SeparableKind()
