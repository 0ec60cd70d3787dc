"""Recurrent layers: SimpleRNN, LSTM and GRU (a row per unit and gate), and the generic RNN (no rows)."""

import numpy as np

from weightkit.analysis.kinds.base import Kernel, LayerKind, count
from weightkit.analysis.kinds.config_rules import input_channels, positive_int

__all__ = ["GRUKind", "KINDS", "RecurrentKind", "SKIP_RNN_GATE", "per_timestep"]

#: Why an LSTM's or GRU's gate entries are not probed (``{name}``: the layer's name).
SKIP_RNN_GATE = "gate activations are internal to the recurrent cell; its hidden state is the entry {name!r}"

_VARIABLES = {"kernel": "cell.kernel", "recurrent_kernel": "cell.recurrent_kernel", "bias": "cell.bias"}


def per_timestep(input_shape):
    """Applications of a weight applied once per timestep of a ``(batch, time, ...)`` input."""
    return count(input_shape[1:2]) if input_shape is not None and len(input_shape) > 2 else 1


class RecurrentKind(LayerKind):
    """A SimpleRNN, LSTM or GRU: input kernel ``(features, gates · units)`` beside a recurrent one.

    Its units merge by data only (on the hidden states); as a consumer, every gate's input rows
    absorb a merged producer's channels.
    """

    family = "rnn"
    variables = _VARIABLES
    kernels = (Kernel(None, "cell", "kernel", "kernel_regularizer", "last", gated=True),)
    units_key = "units"
    has_neurons = True
    order = 5
    recurrent = True
    over_time = True
    stored_group = "cell"
    internal_reason = SKIP_RNN_GATE

    def __init__(self, gates, **attributes):
        super().__init__(gates=tuple(gates), internal=() if tuple(gates) == (None,) else ("*",), **attributes)

    def entry_parts(self, config):
        return list(self.gates)

    def output_shape(self, config, input_shape):
        units = config.get("units")
        return input_shape[:2] + (units,) if config.get("return_sequences") else (input_shape[0], units)

    def bias_rows(self, config):
        """The rows of its bias (a GRU with ``reset_after``: an input and a recurrent row)."""
        return 1

    def weight_shapes(self, config, input_shape):
        units = config.get("units")
        width = None if units is None else len(self.gates) * units
        shapes = {"kernel": (input_channels(config, input_shape), width), "recurrent_kernel": (units, width)}
        if config.get("use_bias", True):
            shapes["bias"] = (2, width) if self.bias_rows(config) == 2 else (width,)
        return shapes

    def declared_parameters(self, config, width):
        units = config.get("units")
        if width is None or not positive_int(units):
            return None
        return len(self.gates) * units * (width + units + 1)  # GRU with reset_after has one bias more: a lower bound

    def neuron_rows(self, config, arrays):
        kernel, recurrent = arrays["kernel"], arrays["recurrent_kernel"]  # (features | units, gates * units)
        bias = arrays.get("bias")
        units = recurrent.shape[0]
        parts = []
        for index, gate in enumerate(self.gates):
            columns = slice(index * units, (index + 1) * units)
            gate_rows = np.concatenate([kernel[:, columns].T, recurrent[:, columns].T], axis=1)
            gate_bias = None
            if bias is not None:
                gate_bias = bias[..., columns]
                gate_bias = gate_bias.T if gate_bias.ndim == 2 else gate_bias  # GRU reset_after: (2, u)
            parts.append((gate, gate_rows, gate_bias))
        return parts

    def applications(self, input_shape, output_shape):
        return per_timestep(input_shape)

    def gate_count(self, layer=None):
        return len(self.gates)

    def absorbing_layout(self, layer):
        return "rnn"

    def input_kernels(self, layer, prefix=""):
        return [(f"{prefix}kernel", f"{prefix}bias", 0 if self.two_row_bias(layer) else None)]

    def output_cuts(self, layer, prefix=""):
        # every gate's column block of both kernels, the recurrent kernel's rows (the state it reads), the bias
        return [(f"{prefix}kernel", 1), (f"{prefix}recurrent_kernel", 0), (f"{prefix}recurrent_kernel", 1),
                (f"{prefix}bias", 1 if self.two_row_bias(layer) else 0)]

    def own_input_kernels(self, layer, prefix=""):
        # the folded offset goes to the recurrent bias row, which a GRU's reset gate multiplies
        return [(f"{prefix}recurrent_kernel", f"{prefix}bias", 1 if self.two_row_bias(layer) else None)]

    def input_kernel_variables(self, layer):
        return [layer.cell.kernel]

    def config_problem(self, config):
        """Why its config cannot fold its units by data, or None."""
        if config.get("return_state"):
            return "it returns its states (return_state): they would need folding too"
        if config.get("stateful"):
            return "a stateful layer keeps its state between batches"
        return None

    def unmergeable_reason(self, layer):
        return (f"recurrent layers ({type(layer).__name__}) merge by data only (--mode data): a unit is rebuilt from "
                "the others on its hidden states and folded into every gate's recurrent kernel")

    def entries_text(self):
        return "one per unit" if self.gates == (None,) else "one per gate: " + ", ".join(self.gates)

    def merge_support(self):  # compress/merge/recurrent.py; as a consumer: compress/merge/applying/input_rows.py
        return "its units by data (`--mode data`), leaving every gate; absorbs a merged layer in every gate's inputs"


class GRUKind(RecurrentKind):
    """A GRU: with ``reset_after`` (Keras' default) its bias has an input row and a recurrent row."""

    def two_row_bias(self, layer):
        return bool(layer.get_config().get("reset_after", True))

    def bias_rows(self, config):
        return 2 if config.get("reset_after", True) else 1

    def config_problem(self, config):
        if config.get("return_state") or config.get("stateful") or config.get("reset_after", True):
            return super().config_problem(config)
        return ("a GRU with reset_after=False multiplies the state by the reset gate before the recurrent "
                "kernel: not linear in the state")


class GenericRNNKind(LayerKind):
    """``keras.layers.RNN`` over a custom cell: weights, but no rows weightkit can read."""

    family = "recurrent"
    skip = "a generic RNN over a custom cell: only SimpleRNN, LSTM and GRU are supported"
    over_time = True


KINDS = {
    "SimpleRNN": RecurrentKind((None,), fused_op="simple_rnn"),
    "LSTM": RecurrentKind(("input", "forget", "cell", "output"), fused_op="lstm"),
    "GRU": GRUKind(("update", "reset", "candidate")),
    "RNN": GenericRNNKind(),
}
