"""The questions fold, quantize, shrink and the reports ask a layer's kind instead of its class name (issue 26).

Each table below is what the asking module used to hold as a list of class names; the kinds must give
the same answers, and a subclass of a Keras layer gets its parent's.
"""

import numpy as np
import pytest

from weightkit.analysis.kinds import KINDS, kind_for


def _with(attribute):
    return {name for name, kind in KINDS.items() if getattr(kind, attribute)}


def test_the_kinds_answer_as_the_class_lists_they_replace():
    convolutions = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                    "SeparableConv2D"}
    pooling = {f"{kind}Pooling{n}" for kind in ("Max", "Average") for n in ("1D", "2D", "3D")}
    assert {name for name, kind in KINDS.items() if kind.window_key == "kernel_size"} == convolutions
    assert {name for name, kind in KINDS.items() if kind.window_key == "pool_size"} == pooling
    assert _with("filter_images") == {"Conv1D", "Conv2D"}
    assert _with("over_time") == {"SimpleRNN", "LSTM", "GRU", "Bidirectional", "RNN"}
    assert {name: KINDS[name].fused_op for name in _with("fused_op")} == {"SimpleRNN": "simple_rnn", "LSTM": "lstm"}
    assert _with("moving_statistics") == {"BatchNormalization"}
    assert {name for name, kind in KINDS.items() if kind.chain_role({}) == "weighted"} == {
        "Dense", "Conv1D", "Conv2D", "Conv3D"}


def test_a_subclass_gets_its_parents_answers(keras):
    class MyNorm(keras.layers.BatchNormalization):
        pass

    class MyLSTM(keras.layers.LSTM):
        pass

    assert kind_for(MyNorm()).moving_statistics
    assert kind_for(MyLSTM(3)).fused_op == "lstm" and kind_for(MyLSTM(3)).over_time


def test_chain_steps_carry_the_layers_weights(keras):
    inputs = keras.Input((6, 2))
    conv = keras.layers.Conv1D(3, 2, strides=2, name="conv")
    norm = keras.layers.BatchNormalization(scale=False, name="bn")
    dense = keras.layers.Dense(4, use_bias=False, name="dense")
    keras.Model(inputs, dense(norm(conv(inputs))))
    name, kernel, bias, strides, dilation = kind_for(conv).chain_step(conv)
    assert (name, kernel.shape, bias.shape, strides, dilation) == ("conv", (2, 2, 3), (3,), (2,), (1,))
    name, gamma, beta, mean, variance, epsilon = kind_for(norm).chain_step(norm)
    assert name == "batchnorm" and gamma is None and beta.shape == mean.shape == variance.shape == (3,)
    assert epsilon == norm.epsilon
    assert kind_for(dense).chain_step(dense)[0] == "dense" and kind_for(dense).chain_step(dense)[2] is None


def test_random_inputs_follow_a_leading_normalization(keras):
    from weightkit.compress.quantize.sampling import input_sampler

    inputs = keras.Input((3,), name="features")
    norm = keras.layers.Normalization(mean=[10.0, 0.0, -5.0], variance=[4.0, 1.0, 0.25], name="norm")
    model = keras.Model(inputs, keras.layers.Dense(1)(norm(inputs)))
    description, draw = input_sampler(model)
    assert description == "normal around the mean and spread of Normalization norm"
    x = draw(np.random.default_rng(0), (4000, 3))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=0), [10.0, 0.0, -5.0], atol=0.1)  # 4000 draws: the mean within 0.1
    np.testing.assert_allclose(x.std(axis=0), [2.0, 1.0, 0.5], rtol=0.05)


@pytest.mark.parametrize("masking", ["layer", "embedding"])
def test_a_mask_is_a_kind_answer(keras, masking):
    from weightkit.analysis.kinds import LayerKind

    layer = keras.layers.Masking() if masking == "layer" else keras.layers.Embedding(5, 2, mask_zero=True)
    assert (kind_for(layer) or LayerKind()).makes_mask(layer)
    assert not kind_for(keras.layers.Embedding(5, 2)).makes_mask(keras.layers.Embedding(5, 2))
