"""Keras 3 SimpleRNN as TFLite's fused UNIDIRECTIONAL_SEQUENCE_RNN, through the converter's OpHint stub.

TFLite has no composite-function interface for a simple RNN (as it has for Keras' LSTM), but its
converter still legalizes the stub op ``UnidirectionalSequenceRnn`` that TF 1's OpHint tooling wrote
(``LegalizeUnidirectionalSequenceRnn`` in ``legalize_tf.cc``): five operands, time-major input
(steps, batch, features), input weights (units, features), recurrent weights (units, units), bias
(units,) and the hidden state (batch, units); two results, the second the output sequence
(steps, batch, units); tanh always; it must carry a ``_tflite_input_indices`` attribute. The stub
has no TensorFlow kernel: a graph holding it can be converted, never run by TensorFlow. It reaches
the converter as a frozen GraphDef (``tf.compat.v1.lite.TFLiteConverter``): a SavedModel holding it
fails to load in Python before the converter sees it.

The LiteRT kernel runs float32 and dynamic-range (int8 weights, float activations) only: the
converter leaves the op float in an int8 model.
"""

import functools

from weightkit.analysis._tf import import_tensorflow

__all__ = ["CONVERTER_OP", "STUB_OP", "frozen_graph", "register_stub", "stub_rnn_sequences"]

STUB_OP = "WeightkitSequenceRnnStub"
CONVERTER_OP = "UnidirectionalSequenceRnn"
# The converter registers CONVERTER_OP itself on its first conversion, declaring the internal attribute
# _tflite_input_indices, which TensorFlow's node validation then never finds (it skips "_" attributes):
# a graph cannot hold that op. So the graph holds STUB_OP, registered here without the attribute, and
# the frozen GraphDef given to the converter names CONVERTER_OP (see frozen_graph).
_OPDEF = f"""name: "{STUB_OP}"
input_arg {{ name: "Input" type: DT_FLOAT }}
input_arg {{ name: "Weights" type: DT_FLOAT }}
input_arg {{ name: "RecurrentWeights" type: DT_FLOAT }}
input_arg {{ name: "Bias" type: DT_FLOAT }}
input_arg {{ name: "HiddenState" type: DT_FLOAT }}
output_arg {{ name: "LastState" type: DT_FLOAT }}
output_arg {{ name: "Output" type: DT_FLOAT }}
"""


@functools.cache
def register_stub():
    """Register :data:`STUB_OP` with TensorFlow's op registry (process-wide, once)."""
    import_tensorflow()
    from tensorflow.lite.python.convert import register_custom_opdefs
    from tensorflow.python.framework import op_def_registry

    if op_def_registry.get(STUB_OP) is None:  # registering an op twice aborts the process
        register_custom_opdefs([_OPDEF])
    return True


def frozen_graph(model, signature):
    """``model`` as a frozen GraphDef at a static signature, its stub ops renamed for the converter.

    Parameters
    ----------
    model : keras.Model
        A copy from :func:`~weightkit.compress.quantize.fused.fused_copy`.
    signature : list
        Static shapes, as :func:`~weightkit.compress.quantize.fused.static_signature` gives them (one argument).

    Returns
    -------
    graph_def : tf.compat.v1.GraphDef
    inputs : list of (str, list of int)
        Input node names and shapes, for ``tf.compat.v1.lite.TFLiteConverter``.
    outputs : list of str
        Output node names.
    """
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    def call(inputs):
        return model(inputs, training=False)

    (argument,) = signature
    frozen = convert_variables_to_constants_v2(tf.function(call, autograph=False).get_concrete_function(argument))
    graph_def = frozen.graph.as_graph_def()
    nodes = list(graph_def.node) + [node for function in graph_def.library.function for node in function.node_def]
    for node in nodes:
        if node.op == STUB_OP:
            node.op = CONVERTER_OP
    inputs = [(tensor.name.split(":")[0], tensor.shape.as_list()) for tensor in frozen.inputs]
    return graph_def, inputs, [tensor.name.split(":")[0] for tensor in frozen.outputs]


def stub_rnn_sequences(inputs, kernel, recurrent_kernel, bias, go_backwards=False):
    """The stub op over ``inputs`` in a graph being traced.

    Parameters
    ----------
    inputs : tf.Tensor of shape (batch, steps, features)
        Static shape.
    kernel : tf.Tensor of shape (features, units)
        Keras' layout (the op takes its transpose).
    recurrent_kernel : tf.Tensor of shape (units, units)
    bias : tf.Tensor of shape (units,)
    go_backwards : bool, default=False
        Keras' option: the steps are read last to first and the sequence comes out in that order.

    Returns
    -------
    last : tf.Tensor of shape (batch, units)
    sequence : tf.Tensor of shape (batch, steps, units)
    """
    tf = import_tensorflow()
    register_stub()
    batch, steps = int(inputs.shape[0]), int(inputs.shape[1])
    units = int(kernel.shape[1])
    time_major = tf.transpose(inputs, [1, 0, 2])
    if go_backwards:
        time_major = tf.reverse(time_major, axis=[0])
    indices = tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(i=[0, 1, 2, 3, 4]))
    operands = [time_major, tf.transpose(kernel), tf.transpose(recurrent_kernel), bias,
                tf.zeros((batch, units), inputs.dtype)]
    op = tf.compat.v1.get_default_graph().create_op(STUB_OP, operands, [inputs.dtype, inputs.dtype],
                                                     attrs={"_tflite_input_indices": indices})
    op.outputs[0].set_shape((batch, units))
    op.outputs[1].set_shape((steps, batch, units))
    sequence = tf.transpose(op.outputs[1], [1, 0, 2])
    return sequence[:, -1], sequence
