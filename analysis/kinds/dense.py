"""Dense: one neuron per unit, its kernel column the neuron's row."""

from weightkit.analysis.kinds.base import Kernel, LayerKind, bias

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

    def input_layout(self, after_flatten):
        return "flatten" if after_flatten else "dense"

    def consumer_problem(self, layer, after_flatten):
        return None

    def wrapped_layout(self, layer):
        """The consumer layout of this layer inside a TimeDistributed, or None when it absorbs nothing."""
        return "dense"


KINDS = {"Dense": DenseKind()}
