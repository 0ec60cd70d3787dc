"""DepthwiseConv (a filter per input channel) and SeparableConv (a depthwise half, then a pointwise producer)."""

import numpy as np

from weightkit.analysis.kinds.base import Kernel, LayerKind, bias
from weightkit.analysis.kinds.config_rules import (as_tuple, conv_output_shape, input_channels, kernel_positions,
                                                   positive_int, without_bias)

__all__ = ["DepthwiseKind", "KINDS", "SKIP_DEPTHWISE_HALF", "SeparableKind"]


#: Why a SeparableConv's depthwise entry is not probed.
SKIP_DEPTHWISE_HALF = ("the depthwise output of a separable convolution is internal to the layer; "
                       "its /pointwise entry is analyzed")


def _depthwise_rows(kernel):
    return kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1]).T  # (*k, in_channels, multiplier)


def _multiplier_problem(layer):
    return None if int(layer.depth_multiplier) == 1 else "depth_multiplier > 1 is not supported"


def _depthwise_shape(config, input_shape, rank):
    """``(depthwise kernel shape, channels out)`` from a config and an input shape (None: unknown)."""
    last, multiplier = input_channels(config, input_shape), config.get("depth_multiplier", 1)
    kernel = as_tuple(config.get("kernel_size", 1), rank) + (last, multiplier)
    return kernel, None if last is None else last * multiplier


def _declared_multiplier(config):
    multiplier = config.get("depth_multiplier", 1)
    return multiplier if isinstance(multiplier, int) else 1


class DepthwiseKind(LayerKind):
    """A depthwise convolution: no channels of its own; merges with the layer that feeds it."""

    family = "depthwise"
    variables = {"kernel": "kernel", "bias": "bias"}
    kernels = (Kernel(None, "", "kernel", "depthwise_regularizer", "depthwise"),)
    merge = "depthwise"
    has_neurons = True
    order = 3
    legacy_aliases = {"depthwise_kernel": "kernel"}  # Keras 2's DepthwiseConv2D names its kernel so
    window_key = "kernel_size"

    def neuron_rows(self, config, arrays):
        return [(None, _depthwise_rows(arrays["kernel"]), bias(arrays))]

    def output_shape(self, config, input_shape):
        channels = input_channels(config, input_shape)
        channels = None if channels is None else channels * config.get("depth_multiplier", 1)
        return conv_output_shape(config, input_shape, channels)

    def weight_shapes(self, config, input_shape):
        kernel, channels = _depthwise_shape(config, input_shape, self.rank)
        return without_bias({"kernel": kernel, "bias": (channels,)}, config)

    def declared_parameters(self, config, width):
        kernel = kernel_positions(config)
        return None if width is None or kernel is None else kernel * width * _declared_multiplier(config)

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
    internal_reason = SKIP_DEPTHWISE_HALF
    merge = "separable"
    units_key = "filters"
    has_neurons = True
    order = 4
    window_key = "kernel_size"
    #: The variable that holds its output channels (the cut and the rows of a group read it).
    output_kernel = "pointwise_kernel"

    def neuron_rows(self, config, arrays):
        pointwise = arrays["pointwise_kernel"]  # (1, ..., in_channels * multiplier, filters)
        return [("depthwise", _depthwise_rows(arrays["depthwise_kernel"]), None),
                ("pointwise", pointwise.reshape(-1, pointwise.shape[-1]).T, bias(arrays))]

    def entry_parts(self, config):
        return ["depthwise", "pointwise"]

    def output_shape(self, config, input_shape):
        return conv_output_shape(config, input_shape, config.get("filters"))

    def weight_shapes(self, config, input_shape):
        depthwise, channels = _depthwise_shape(config, input_shape, self.rank)
        filters = config.get("filters")
        return without_bias({"depthwise_kernel": depthwise, "pointwise_kernel": (1,) * self.rank + (channels, filters),
                             "bias": (filters,)}, config)

    def declared_parameters(self, config, width):
        kernel, filters, multiplier = kernel_positions(config), config.get("filters"), _declared_multiplier(config)
        if width is None or kernel is None or not positive_int(filters):
            return None
        return kernel * width * multiplier + width * multiplier * filters

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

    def input_kernels(self, layer, prefix=""):
        return [(f"{prefix}pointwise_kernel", f"{prefix}bias", None)]  # its depthwise half passes the channels

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
    KINDS[f"DepthwiseConv{_n}"] = DepthwiseKind(rank=int(_n[0]))
    KINDS[f"SeparableConv{_n}"] = SeparableKind(rank=int(_n[0]))
