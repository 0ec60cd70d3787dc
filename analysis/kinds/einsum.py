"""EinsumDense: neuron rows read from its equation.

The output axes that come from the kernel and not from the input are the neuron axes
(``btd,df->btf``: ``f`` neurons, each of fan-in ``d``). When several do, the first is a head axis and
the rest go into each head's row (keras-hub Gemma/Llama's ``btd,ndh->btnh``: ``n`` heads, rows of
``d * h``), as Keras itself reads the axes from the equation (``EinsumDense.quantize``), never from shapes.
"""

import numpy as np

from weightkit.analysis.kinds.base import LayerKind, count

__all__ = ["EinsumDenseKind", "KINDS", "einsum_axes"]


def einsum_axes(equation):
    """``(input axes, kernel axes, output axes, neuron axes)`` of an EinsumDense equation (``...`` dropped).

    Parameters
    ----------
    equation : str
        ``"ab,bc->ac"``, ``"...b,bc->...c"``, ``"btd,ndh->btnh"``.

    Returns
    -------
    tuple of str
        The neuron axes are the output axes found in the kernel and not in the input, in output order.

    Raises
    ------
    ValueError
        When the equation is not ``input,kernel->output``.
    """
    try:
        inputs, output = str(equation).replace(" ", "").split("->")
        first, kernel = inputs.split(",")
    except ValueError:
        raise ValueError(f"Expected an EinsumDense equation 'input,kernel->output'. Received: {equation!r}.") from None
    first, kernel, output = (part.replace("...", "") for part in (first, kernel, output))
    neurons = "".join(axis for axis in output if axis in kernel and axis not in first)
    return first, kernel, output, neurons


def einsum_rows(equation, kernel, bias=None, bias_axes=""):
    """``(part, rows, bias)`` of an EinsumDense kernel; ``part`` is ``"heads"`` when there are several neuron axes.

    Parameters
    ----------
    equation : str
    kernel : ndarray
        Its axes are the equation's kernel letters, in order.
    bias : ndarray or None
        Its axes are ``bias_axes``, in order.
    bias_axes : str

    Returns
    -------
    part : str or None
    rows : ndarray of shape (n_neurons, fan_in)
        The first neuron axis, then every other kernel axis (in kernel order) flattened into the row.
    bias : ndarray of shape (n_neurons, k) or None
        None when the bias is not indexed by the first neuron axis (it is shared by every neuron).
    """
    _, letters, _, neurons = einsum_axes(equation)
    if not neurons:
        raise KeyError(f"equation {equation!r} has no output axis from the kernel alone: no neurons")
    head = neurons[0]
    axis = letters.index(head)
    rows = np.moveaxis(np.asarray(kernel), axis, 0)
    rows = rows.reshape(rows.shape[0], -1)
    row_bias = None
    bias_axes = bias_axes or ""
    if bias is not None and head in bias_axes and set(bias_axes) <= set(neurons):
        row_bias = np.moveaxis(np.asarray(bias), bias_axes.index(head), 0).reshape(rows.shape[0], -1)
        row_bias = row_bias[:, 0] if row_bias.shape[1] == 1 else row_bias
    return ("heads" if len(neurons) > 1 else None), rows, row_bias


class EinsumDenseKind(LayerKind):
    """An EinsumDense layer: its neurons are the output axes the kernel alone brings (see :func:`einsum_axes`).

    Analyzed only: merging an EinsumDense needs its equation's axes carried through the merge walk.
    """

    family = "einsum"
    variables = {"kernel": "kernel", "bias": "bias"}
    has_neurons = True
    internal = ("heads",)  # a head's output is inside the layer, not its output tensor
    order = 8
    #: Where a Keras 3 file keeps each array: (sublayer group, index in its ``vars``); "" is the layer's own.
    stored_vars = {"kernel": ("", 0), "bias": ("", 1)}

    def neuron_rows(self, config, arrays):
        part, rows, bias = einsum_rows(config.get("equation"), arrays["kernel"], arrays.get("bias"),
                                       config.get("bias_axes"))
        return [(part, rows, bias)]

    def entry_parts(self, config):
        """The entry parts its config gives, before any array is read (``[None]`` or ``["heads"]``)."""
        neurons = einsum_axes(config.get("equation"))[3]
        return ["heads"] if len(neurons) > 1 else [None]

    def applications(self, input_shape, output_shape):
        """Input positions (between the batch and the last axis): where each kernel weight is used."""
        return count(None if input_shape is None else input_shape[1:-1])

    def unmergeable_reason(self, layer):
        return "EinsumDense layers are analyzed, not merged yet (their neuron axes come from the equation)"

    def support(self, name):
        return dict(super().support(name), activations="its output when one axis holds the neurons; not per head")

    def entries_text(self):
        return "one per output axis the kernel brings (several: one per head)"

    def merge_support(self):
        return "no (analyzed only)"


KINDS = {"EinsumDense": EinsumDenseKind()}
