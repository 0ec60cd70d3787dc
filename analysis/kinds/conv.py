"""Convolutions: one neuron per filter (Conv1D/2D/3D), and the transposed ones (analyzed, not merged)."""

import math

import numpy as np

from weightkit.analysis.kinds.base import Kernel, LayerKind, axis_tuple, bias, count, grouped, value_of
from weightkit.analysis.kinds.config_rules import (as_tuple, conv_output_shape, input_channels, kernel_positions,
                                                   positive_int, without_bias)
from weightkit.analysis.kinds.dense import PLAIN_KERNEL, PLAIN_VARIABLES

__all__ = ["ConvKind", "ConvTransposeKind", "KINDS"]


class ConvKind(LayerKind):
    """A convolution: kernel ``(*kernel_size, in_channels / groups, filters)``, a filter per neuron."""

    family = "conv"
    variables = PLAIN_VARIABLES
    kernels = PLAIN_KERNEL
    merge = "neurons"
    units_key = "filters"
    has_neurons = True
    order = 1
    spatial = True
    window_key = "kernel_size"

    def neuron_rows(self, config, arrays):
        kernel = arrays["kernel"]
        return [(None, kernel.reshape(-1, kernel.shape[-1]).T, bias(arrays))]

    def output_shape(self, config, input_shape):
        return conv_output_shape(config, input_shape, config.get("filters"))

    def weight_shapes(self, config, input_shape):
        last, filters, groups = input_channels(config, input_shape), config.get("filters"), config.get("groups", 1) or 1
        kernel = as_tuple(config.get("kernel_size", 1), self.rank) + (None if last is None else last // groups, filters)
        return without_bias({"kernel": kernel, "bias": (filters,)}, config)

    def declared_parameters(self, config, width):
        kernel, filters, groups = kernel_positions(config), config.get("filters"), config.get("groups", 1)
        if width is None or kernel is None or not positive_int(filters):
            return None
        return kernel * (width // (groups if isinstance(groups, int) and groups else 1)) * filters

    def chain_role(self, config):
        return "weighted"

    def chain_member_ok(self, config, weight_shapes):
        return (config.get("data_format", "channels_last") in (None, "channels_last")
                and int(config.get("groups", 1) or 1) == 1 and config.get("padding", "valid") in ("valid", "same")
                and len(weight_shapes) in (1, 2))

    def chain_params(self, configs, first_shape, units, bias):
        from weightkit.analysis.structure.linear_chains import conv_geometry

        kernel_size, _, _, _ = conv_geometry(configs)
        return math.prod(kernel_size) * first_shape[-2] * units + (units if bias else 0)

    def chain_step(self, layer):
        bias = value_of(layer.bias) if getattr(layer, "use_bias", False) else None
        rank = len(layer.kernel.shape) - 2
        return ("conv", value_of(layer.kernel), bias, axis_tuple(layer.strides, rank),
                axis_tuple(layer.dilation_rate, rank))

    def consumer_problem(self, layer, after_flatten):
        if after_flatten:
            return "reads a flattened tensor"
        if self.layout_problem(layer) is None:
            return None
        return "is a grouped convolution" if grouped(layer) else "uses channels_first"

    def zero_padded(self, layer):
        return layer.padding in ("same", "causal")


class ConvTransposeKind(LayerKind):
    """A transposed convolution: kernel ``(*kernel_size, filters, in_channels)``; analyzed, not merged."""

    family = "conv_transpose"
    variables = PLAIN_VARIABLES
    kernels = (Kernel(None, "", "kernel", "kernel_regularizer", "transpose"),)
    units_key = "filters"
    has_neurons = True
    order = 2

    def neuron_rows(self, config, arrays):
        kernel = arrays["kernel"]
        return [(None, np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1), bias(arrays))]

    def applications(self, input_shape, output_shape):
        return count(None if input_shape is None else input_shape[1:-1])  # each filter once per *input* position

    def output_shape(self, config, input_shape):
        return conv_output_shape(config, input_shape, config.get("filters"), transpose=True)

    def weight_shapes(self, config, input_shape):
        last, filters = input_channels(config, input_shape), config.get("filters")
        kernel = as_tuple(config.get("kernel_size", 1), self.rank) + (filters, last)
        return without_bias({"kernel": kernel, "bias": (filters,)}, config)

    def declared_parameters(self, config, width):
        kernel, filters = kernel_positions(config), config.get("filters")
        return None if width is None or kernel is None or not positive_int(filters) else kernel * width * filters


KINDS = {}
for _n in ("1D", "2D", "3D"):
    KINDS[f"Conv{_n}"] = ConvKind(chain_family=f"conv{_n.lower()}", filter_images=_n != "3D", rank=int(_n[0]))
    KINDS[f"Conv{_n}Transpose"] = ConvTransposeKind(rank=int(_n[0]))
