"""Keras 3 LSTM and SimpleRNN layers rebuilt so the TFLite converter emits its fused recurrent ops.

Keras 3 layers carry no mark for TFLite's fused recurrent ops, but the converter still knows two
ways in. An LSTM: its composite-function pass (``prepare_composite_functions_tf.cc``,
``ConvertKerasLSTMLayer`` in ``lstm_utils.cc``) replaces any function whose ``tf.api_implements``
attribute starts with ``"lstm_"`` by UNIDIRECTIONAL_SEQUENCE_LSTM: the interface of tf.keras 2's
``standard_lstm``, arguments ``(inputs, init_h, init_c, kernel, recurrent_kernel, bias)`` and five
results ``(last_output, outputs, new_h, new_c, runtime)`` of which only the first two may be read,
plus the attributes ``time_major`` and ``go_backwards``. It needs a static batch and sequence
length and erases the function's body: the body here (a loop with the math of Keras' LSTMCell,
gates in the order input, forget, cell, output) only runs in TensorFlow. A SimpleRNN: the stub op
of TF 1's OpHint tooling, which the converter legalizes to UNIDIRECTIONAL_SEQUENCE_RNN
(:mod:`weightkit.compress.quantize.fused_rnn`). GRU has neither: no fused TFLite op exists for it.

:func:`fused_copy` clones a model with each fusable LSTM, SimpleRNN and Bidirectional wrapper of
them replaced by such a layer, the same weights, every other layer cloned as it is. The fused ops
keep their state in variable tensors that persist between ``invoke()`` calls: reset them
(``reset_all_variables()``) before each sequence, as :class:`~weightkit.compress.quantize.evaluate.TFLiteModel`
does. BIDIRECTIONAL_SEQUENCE_LSTM is not emitted: a Bidirectional layer becomes two unidirectional ops.
"""

import functools
import uuid

from weightkit.analysis._tf import import_keras, import_tensorflow, silenced_stderr
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.kinds.base import LayerKind
from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.quantize.evaluate import make_interpreter
from weightkit.compress.quantize.fused_rnn import stub_rnn_sequences

__all__ = ["FUSED_OPS", "FusionRefused", "allocation_error", "converter_input", "fused_copy", "fused_op_counts",
           "fusion_refusal", "static_signature"]

FUSED_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN")
_MERGE_MODES = ("concat", "sum", "mul", "ave")
#: Per fused op (a kind's :attr:`~weightkit.analysis.kinds.LayerKind.fused_op`): the activations it computes.
_FUSED_ACTIVATIONS = {"lstm": (("activation", "tanh"), ("recurrent_activation", "sigmoid")),
                      "simple_rnn": (("activation", "tanh"),)}
#: Per fused op: what the converter must read for it to survive (see :func:`converter_input`).
_CONVERTER_INPUTS = {"lstm": "saved_model", "simple_rnn": "graph_def"}


def _fused_op(layer):
    """The fused TFLite op of a recurrent layer (its kind's), or None."""
    kind = kind_for(layer)
    return None if kind is None else kind.fused_op


def _over_time(layer):
    """Whether the layer loops over time steps (its kind's :attr:`over_time`)."""
    kind = kind_for(layer)
    return kind is not None and kind.over_time


def _halves(layer):
    """The forward and backward layers of a Bidirectional (its kind's halves), or None."""
    kind = kind_for(layer)
    halves = None if kind is None else kind.halves(layer)
    return None if halves is None else [half for _, half, _ in halves]


class FusionRefused(ValueError):
    """A recurrent layer the fused op cannot compute (the reason names the layer and the option)."""


def _cell_refusal(layer):
    """Why one LSTM or SimpleRNN cannot be fused, or None."""
    op = _fused_op(layer)
    if op is None:
        return f"{type(layer).__name__} has no fused TFLite op that the converter emits (LSTM and SimpleRNN have)"
    config = layer.get_config()
    for option in ("return_state", "stateful"):
        if config.get(option):
            return f"{option}=True, and the fused op returns the output sequence only, starting from zeros"
    for option, wanted in _FUSED_ACTIVATIONS[op]:
        if config.get(option) != wanted:
            return f"{option}={config.get(option)!r}, and the fused op computes {option}={wanted!r} only"
    if layer.compute_dtype != "float32":
        return f"compute dtype {layer.compute_dtype}, and the fused op is built from float32 weights"
    return None


def _layer_refusal(layer):
    halves = _halves(layer)
    if halves is not None:
        if layer.merge_mode not in _MERGE_MODES:
            return f"merge_mode={layer.merge_mode!r} gives two outputs (fused for {', '.join(_MERGE_MODES)})"
        for inner in halves:
            reason = _cell_refusal(inner)
            if reason:
                return reason
        return None
    return _cell_refusal(layer)


def fusion_refusal(model):
    """Why the recurrent layers of ``model`` cannot all become fused ops, or None when they can.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    str or None
        ``"layer NAME: reason"`` for the first layer that cannot be fused.
    """
    kinds = {}
    for layer in walk_layers(model):
        if (kind_for(layer) or LayerKind()).makes_mask(layer):
            return (f"layer {layer.name}: produces a mask, and the fused op has no mask input (a masked step "
                    "keeps the previous state)")
        if _over_time(layer):
            reason = _layer_refusal(layer)
            if reason:
                return f"layer {layer.name}: {reason}"
            kinds.setdefault(converter_input(layer), layer.name)
    if len(kinds) > 1:
        return (f"layer {kinds['graph_def']}: a SimpleRNN beside an LSTM ({kinds['saved_model']}), and their fused "
                "ops need different converter inputs (a frozen graph, a SavedModel)")
    return None


def converter_input(layer):
    """``"graph_def"`` for a SimpleRNN (or a Bidirectional one), ``"saved_model"`` for an LSTM.

    The LSTM's composite function must survive until the converter sees it (freezing inlines it);
    the SimpleRNN's stub op cannot be loaded from a SavedModel (:mod:`weightkit.compress.quantize.fused_rnn`).
    """
    halves = _halves(layer)
    return _CONVERTER_INPUTS.get(_fused_op(layer if halves is None else halves[0]), "saved_model")


def _lstm_steps(tf, inputs, init_h, init_c, kernel, recurrent_kernel, bias, go_backwards):
    """Keras' LSTMCell over the steps of ``inputs`` (batch, steps, features); gates i, f, c, o.

    A symbolic loop, so tracing costs the same at any length (a Python loop over 200 steps took
    4 s per trace). Returns ``(last output, output sequence, h, c)``.
    """
    steps = inputs.shape[1]
    sequence_in = tf.transpose(inputs, [1, 0, 2])  # (steps, batch, features)
    if go_backwards:
        sequence_in = tf.reverse(sequence_in, axis=[0])
    outputs = tf.TensorArray(inputs.dtype, size=steps, element_shape=init_h.shape)

    def step(t, h, c, outputs):
        z = tf.matmul(sequence_in[t], kernel) + tf.matmul(h, recurrent_kernel) + bias
        gate_i, gate_f, gate_c, gate_o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(gate_f) * c + tf.sigmoid(gate_i) * tf.tanh(gate_c)
        h = tf.sigmoid(gate_o) * tf.tanh(c)
        return t + 1, h, c, outputs.write(t, h)

    _, h, c, outputs = tf.while_loop(lambda t, *_: t < steps, step, (tf.constant(0), init_h, init_c, outputs))
    sequence = tf.transpose(outputs.stack(), [1, 0, 2])
    return h, sequence, h, c


def _composite_lstm(go_backwards):
    """A tf.function carrying tf.keras 2's ``standard_lstm`` interface, which the converter fuses."""
    tf = import_tensorflow()

    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        last, sequence, h, c = _lstm_steps(tf, inputs, init_h, init_c, kernel, recurrent_kernel, bias, go_backwards)
        return last, sequence, h, c, tf.constant(0.0)  # runtime: a float, as the converter's rewrite returns

    attributes = {"api_implements": f"lstm_{uuid.uuid4()}", "time_major": False, "go_backwards": bool(go_backwards)}
    return tf.function(standard_lstm, autograph=False, experimental_attributes=attributes)


@functools.cache
def _layer_classes():
    keras = import_keras()
    tf = import_tensorflow()

    class FusedWeights(keras.layers.Layer):
        """A recurrent layer's kernel (features, gates·units), recurrent kernel (units, gates·units), bias."""

        def __init__(self, kind, units, use_bias=True, go_backwards=False, **kwargs):
            super().__init__(**kwargs)
            self.kind, self.units, self.use_bias, self.go_backwards = kind, int(units), bool(use_bias), \
                bool(go_backwards)
            self.width = 4 * self.units if kind == "lstm" else self.units
            self._function = _composite_lstm(self.go_backwards) if kind == "lstm" else None

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(int(input_shape[-1]), self.width), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.width), name="recurrent_kernel")
            self.bias = self.add_weight(shape=(self.width,), name="bias", initializer="zeros") \
                if self.use_bias else None

        def sequences(self, inputs):
            """``(last output, output sequence)`` of shapes (batch, units) and (batch, steps, units)."""
            kernel, recurrent_kernel = tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.recurrent_kernel)
            bias = tf.convert_to_tensor(self.bias) if self.use_bias else tf.zeros((self.width,), inputs.dtype)
            if self.kind == "simple_rnn":
                return stub_rnn_sequences(inputs, kernel, recurrent_kernel, bias, self.go_backwards)
            batch = inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0]
            zeros = tf.zeros((batch, self.units), inputs.dtype)
            last, sequence, *_ = self._function(inputs, zeros, zeros, kernel, recurrent_kernel, bias)
            return last, sequence

    def _refuse_extra(name, mask, initial_state):
        if mask is not None or initial_state is not None:
            raise FusionRefused(f"layer {name}: {'a mask' if mask is not None else 'an initial state'} "
                                "is given, and the fused op has no input for it")

    class FusedRecurrent(keras.layers.Layer):
        """A Keras LSTM or SimpleRNN computed by one op the TFLite converter fuses."""

        def __init__(self, cell, return_sequences=False, **kwargs):
            super().__init__(**kwargs)
            self.return_sequences = bool(return_sequences)
            self.cell = FusedWeights(**cell, name="cell")

        def build(self, input_shape):
            self.cell.build(input_shape)

        def call(self, inputs, mask=None, initial_state=None):
            _refuse_extra(self.name, mask, initial_state)
            last, sequence = self.cell.sequences(inputs)
            return sequence if self.return_sequences else last

        def compute_output_shape(self, input_shape):
            units = self.cell.units
            return (input_shape[0], input_shape[1], units) if self.return_sequences else (input_shape[0], units)

    class FusedBidirectional(keras.layers.Layer):
        """Keras' Bidirectional(LSTM or SimpleRNN): a forward and a go_backwards fused op, merged."""

        def __init__(self, forward, backward, merge_mode="concat", return_sequences=False, **kwargs):
            super().__init__(**kwargs)
            self.merge_mode, self.return_sequences = merge_mode, bool(return_sequences)
            self.forward_cell = FusedWeights(**forward, name="forward")
            self.backward_cell = FusedWeights(**backward, name="backward")

        def build(self, input_shape):
            self.forward_cell.build(input_shape)
            self.backward_cell.build(input_shape)

        def call(self, inputs, mask=None, initial_state=None):
            _refuse_extra(self.name, mask, initial_state)
            forward_last, forward_sequence = self.forward_cell.sequences(inputs)
            backward_last, backward_sequence = self.backward_cell.sequences(inputs)
            if self.return_sequences:
                forward, backward = forward_sequence, tf.reverse(backward_sequence, axis=[1])
            else:
                forward, backward = forward_last, backward_last
            if self.merge_mode == "concat":
                return tf.concat([forward, backward], axis=-1)
            if self.merge_mode == "sum":
                return forward + backward
            if self.merge_mode == "mul":
                return forward * backward
            return (forward + backward) / 2.0

        def compute_output_shape(self, input_shape):
            units = self.forward_cell.units * (2 if self.merge_mode == "concat" else 1)
            return (input_shape[0], input_shape[1], units) if self.return_sequences else (input_shape[0], units)

    return FusedRecurrent, FusedBidirectional


def _cell_options(layer):
    return {"kind": _fused_op(layer), "units": layer.units, "use_bias": layer.cell.use_bias,
            "go_backwards": layer.go_backwards}


def _fused_layer(layer):
    fused_recurrent, fused_bidirectional = _layer_classes()
    halves = _halves(layer)
    if halves is not None:
        forward, backward = halves
        return fused_bidirectional(_cell_options(forward), _cell_options(backward), merge_mode=layer.merge_mode,
                                   return_sequences=layer.return_sequences, name=layer.name)
    return fused_recurrent(_cell_options(layer), return_sequences=layer.return_sequences, name=layer.name)


def fused_copy(model):
    """A copy of ``model`` whose LSTM and SimpleRNN layers the TFLite converter fuses, same weights.

    Parameters
    ----------
    model : keras.Model
        Every recurrent layer fusable (:func:`fusion_refusal` is None).

    Returns
    -------
    keras.Model
        Computes what ``model`` computes; export it with a static batch and sequence length
        (:func:`static_signature`) for the converter to fuse. With a SimpleRNN it can only be
        exported, not run: the RNN stub op has no TensorFlow kernel.

    Raises
    ------
    FusionRefused
        When a layer turns out not to be fusable while the copy is built (an initial state given
        as an input, a mask).
    """
    keras = import_keras()
    refusal = fusion_refusal(model)
    if refusal:
        raise FusionRefused(refusal)

    def clone(layer):
        if _over_time(layer):  # every one fusable: an LSTM, a SimpleRNN or a Bidirectional of them
            return _fused_layer(layer)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def static_signature(model, input_shapes, batch=1):
    """Input specs of a static batch and static other dimensions, for the export the converter fuses.

    Parameters
    ----------
    model : keras.Model
    input_shapes : list of tuple
        One ``(None, steps, ...)`` per model input.
    batch : int, default=1

    Returns
    -------
    list
        ``model.export``'s ``input_signature``: ``[spec]`` for one input, ``[[spec, ...]]`` for
        several (the model takes their list as one argument).
    """
    tf = import_tensorflow()
    specs = []
    for tensor, shape in zip(model.inputs, input_shapes):
        dims = tuple(shape[1:])
        if any(d is None for d in dims):
            raise FusionRefused(f"input {tensor.name} has unknown dimensions {tuple(shape)}: the fused op needs a "
                                "static sequence length")
        specs.append(tf.TensorSpec((batch,) + tuple(int(d) for d in dims), tensor.dtype, name=tensor.name))
    return specs if len(specs) == 1 else [specs]  # several inputs: one argument, their list (as Keras' export)


def fused_op_counts(content):
    """How many fused recurrent ops of each kind a ``.tflite`` model holds.

    Parameters
    ----------
    content : bytes

    Returns
    -------
    dict of str to int
        Op name → count, for the names of :data:`FUSED_OPS` present.
    """
    counts = {}
    for detail in make_interpreter(content)._get_ops_details():
        if detail["op_name"] in FUSED_OPS:
            counts[detail["op_name"]] = counts.get(detail["op_name"], 0) + 1
    return counts


def allocation_error(content):
    """Why LiteRT cannot allocate a ``.tflite`` model's tensors (one line), or None when it can.

    An int8 model with UNIDIRECTIONAL_SEQUENCE_RNN converts, but its kernel takes float32 only.

    Parameters
    ----------
    content : bytes

    Returns
    -------
    str or None
    """
    try:
        with silenced_stderr():
            make_interpreter(content).allocate_tensors()
    except RuntimeError as error:
        text = " ".join(str(error).split())
        return text.split("Node number")[0].strip() or type(error).__name__
    return None
