"""Dense: one neuron per unit, its kernel column the neuron's row."""

from weightkit.analysis.kinds.base import Kernel, LayerKind, bias, value_of
from weightkit.analysis.kinds.config_rules import positive_int, without_bias

__all__ = ["DenseKind", "KINDS", "PLAIN_KERNEL", "PLAIN_VARIABLES"]

#: A kernel and a bias on the layer itself.
PLAIN_VARIABLES = {"kernel": "kernel", "bias": "bias"}
#: The penalty on that kernel, neurons on its last axis.
PLAIN_KERNEL = (Kernel(None, "", "kernel", "kernel_regularizer", "last"),)


class DenseKind(LayerKind):
    """A fully connected layer: kernel ``(fan_in, units)``; merges as a producer and as a consumer."""

    family = "dense"
    variables = PLAIN_VARIABLES
    kernels = PLAIN_KERNEL
    merge = "neurons"
    units_key = "units"
    has_neurons = True
    order = 0

    def neuron_rows(self, config, arrays):
        return [(None, arrays["kernel"].T, bias(arrays))]  # kernel (fan_in, units)

    chain_family = "dense"

    def chain_role(self, config):
        return "weighted"

    def chain_member_ok(self, config, weight_shapes):
        return len(weight_shapes) in (1, 2) and len(weight_shapes[0]) == 2

    def chain_params(self, configs, first_shape, units, bias):
        return first_shape[0] * units + (units if bias else 0)

    def chain_step(self, layer):
        return "dense", value_of(layer.kernel), value_of(layer.bias) if getattr(layer, "use_bias", False) else None

    def output_shape(self, config, input_shape):
        return input_shape[:-1] + (config.get("units"),)

    def weight_shapes(self, config, input_shape):
        units = config.get("units")
        last = input_shape[-1] if input_shape is not None and len(input_shape) > 1 else None
        return without_bias({"kernel": (last, units), "bias": (units,)}, config)

    def declared_parameters(self, config, width):
        units = config.get("units")
        return width * units + units if width is not None and positive_int(units) else None

    def input_layout(self, after_flatten):
        return "flatten" if after_flatten else "dense"

    def consumer_problem(self, layer, after_flatten):
        return None

    def stream_writes(self, layer):
        if layer.get_config().get("activation") != "linear":
            return None  # an activation after x W + b: not linear in its columns
        return [("kernel", -1)] + ([("bias", 0)] if layer.use_bias else [])

    def stream_width_config(self, config, width):
        config["units"] = int(width)
        return config

    def stream_reads(self, layer, carried, passed):
        return [("kernel", "bias" if layer.use_bias else None)]


KINDS = {"Dense": DenseKind()}
