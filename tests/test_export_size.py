"""The bytes of an exported .tflite that are not weights: fewer ops at the export, repeats stored once after it.

On the zoo's ViT (tests/zoo_transformers.py, trained for seconds, saved and reloaded) the int8-io file
is mostly graph: ops, tensors and their quantization parameters. ``lean_ops.fewer_ops`` traces Dense,
Reshape and MultiHeadAttention into fewer ops, ``compact.compact_flatbuffer`` stores repeated vectors and
tables once, and ``shrink.strip.slim_export`` keeps each step only when the outputs stay identical.
Thresholds are below what was measured on 2026-12-07 (given beside each) so that another machine's
training rounding cannot fail them, and far above what a broken route gives (no saving).
"""

import numpy as np
import pytest


def _ops(content):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    codes = model.operatorCodes
    return [names[max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)]
            for graph in model.subgraphs for op in graph.operators]


def _convert(model, x, mode):
    from weightkit.compress.quantize import convert_mode, representative_dataset

    conversion = convert_mode(mode, keras_model=model, representative=representative_dataset(x, 50, seed=0))
    assert conversion.ok, conversion.error
    return conversion.content


@pytest.fixture(scope="module")
def vit(load_transformer):
    """The zoo's ViT (loaded from its saved file) and its digits."""
    _, model, data = load_transformer("vit_digits")
    return model, data


@pytest.fixture(scope="module")
def vit_int8(vit):
    """The ViT as int8-io, converted with the ops Keras traces and with :func:`fewer_ops`."""
    from weightkit.compress.quantize.lean_ops import fewer_ops
    from weightkit.compress.quantize.norms import integer_friendly_norms

    model, data = vit
    with integer_friendly_norms(model):
        plain = _convert(model, data.x_train, "int8-io")
        with fewer_ops(model) as names:
            lean = _convert(model, data.x_train, "int8-io")
    return plain, lean, names


def test_fewer_ops_leaves_out_the_run_time_shape_ops_and_keeps_int8_agreement(vit, vit_int8):
    from weightkit.compress.quantize import TFLiteModel

    model, data = vit
    plain, lean, names = vit_int8
    assert names == ["grid", "patches", "patch_embed", "b0_mha", "b0_ffn1", "b0_ffn2", "b1_mha", "b1_ffn1",
                     "b1_ffn2", "probs"]
    before, after = _ops(plain), _ops(lean)
    assert len(after) < 0.6 * len(before)  # measured 170 -> 98 on the unshrunk ViT (2026-12-07 13:05 UTC)
    for shape_op in ("SHAPE", "REDUCE_PROD", "PACK", "STRIDED_SLICE"):
        assert before.count(shape_op) >= 2 and after.count(shape_op) <= 1, shape_op  # one slice: the position ids
    assert len(lean) < 0.92 * len(plain)  # measured 66,056 -> 58,240 bytes (names included)
    expected = np.argmax(model.predict(data.x_test, verbose=0), axis=1)
    agreement = np.mean(np.argmax(TFLiteModel(lean).predict(data.x_test), axis=1) == expected)
    assert agreement >= 0.97  # measured 0.99, as without the rewrite


def test_fewer_ops_float32_computes_what_keras_does(vit):
    from weightkit.compress.quantize import TFLiteModel
    from weightkit.compress.quantize.lean_ops import fewer_ops

    model, data = vit
    with fewer_ops(model):
        content = _convert(model, data.x_train, "float32")
    assert "call" not in vars(model.get_layer("b0_mha"))  # given back
    diff = np.abs(TFLiteModel(content).predict(data.x_test) - model.predict(data.x_test, verbose=0))
    assert diff.max() < 1e-5  # float32 rounding of another order (the folded 1/sqrt(key_dim)): measured 1e-6


@pytest.mark.parametrize(("heads", "key_dim", "value_dim", "source", "output_shape"),
                         [(1, 8, None, 6, None), (3, 4, None, 6, None), (2, 4, 5, 9, None), (2, 4, None, 6, (2, 3))])
def test_attention_rewrite_computes_what_keras_does(keras, heads, key_dim, value_dim, source, output_shape):
    from weightkit.compress.quantize.lean_ops import fewer_ops

    rng = np.random.default_rng(0)
    query, value = keras.Input((6, 8)), keras.Input((source, 5))
    attention = keras.layers.MultiHeadAttention(heads, key_dim, value_dim=value_dim, output_shape=output_shape,
                                                name="mha")
    model = keras.Model([query, value], attention(query, value))
    attention.set_weights([rng.normal(size=w.shape).astype("float32") for w in attention.get_weights()])
    inputs = [rng.normal(size=(4, 6, 8)).astype("float32"), rng.normal(size=(4, source, 5)).astype("float32")]
    expected = np.asarray(model(inputs))
    with fewer_ops(model) as names:
        rewritten = np.asarray(model(inputs))
    assert names == ["mha"]
    np.testing.assert_allclose(rewritten, expected, rtol=0, atol=1e-4)  # |outputs| up to ~50: float32 rounding
    assert "call" not in vars(attention) and np.array_equal(np.asarray(model(inputs)), expected)


def test_a_masked_attention_keeps_keras_own_call(keras):
    from weightkit.compress.quantize.lean_ops import fewer_ops

    rng = np.random.default_rng(1)
    tokens = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(9, 8, mask_zero=True)(tokens)
    model = keras.Model(tokens, keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x))
    ids = rng.integers(1, 9, size=(3, 5)).astype("int32")
    ids[:, 3:] = 0  # padding: Keras masks those keys
    expected = np.asarray(model(ids))
    with fewer_ops(model):
        assert np.array_equal(np.asarray(model(ids)), expected)


def test_compact_flatbuffer_stores_repeats_once_and_changes_no_output(vit, vit_int8):
    from tensorflow.lite.tools import flatbuffer_utils

    from weightkit.compress.quantize import TFLiteModel
    from weightkit.compress.quantize.compact import compact_flatbuffer

    _, data = vit
    _, lean, _ = vit_int8
    compact = compact_flatbuffer(lean)
    assert len(compact) < 0.82 * len(lean)  # measured 58,240 -> 44,552 bytes (names kept)
    same = [flatbuffer_utils.convert_bytearray_to_object(bytearray(c)).subgraphs[0] for c in (lean, compact)]
    assert [len(g.operators) for g in same] == [len(same[0].operators)] * 2
    assert [len(g.tensors) for g in same] == [len(same[0].tensors)] * 2
    assert np.array_equal(TFLiteModel(compact).predict(data.x_test), TFLiteModel(lean).predict(data.x_test))
    assert compact_flatbuffer(compact) == compact  # nothing left to share


def test_slim_export_says_what_each_step_saved(vit, vit_int8):
    from weightkit.compress.shrink.strip import slim_export

    _, data = vit
    _, lean, _ = vit_int8
    slim, steps = slim_export(lean, data.x_test[:50])
    assert [label for label, _ in steps] == ["tensor names stripped", "repeated vectors and tables stored once"]
    assert all(saved > 1000 for _, saved in steps) and len(slim) == len(lean) - sum(s for _, s in steps)
