"""Weight analysis from the file opens a keras-hub backbone nested as a layer (issue #27, "Loading").

A tiny untrained GemmaBackbone classifier (2 decoder blocks, 4 query heads, 1 key/value head: grouped-query
attention) is saved to a ``.keras`` file, and a LlamaBackbone one (2 blocks, 4 query heads on 2 key/value heads,
gated silu FFN of Dense layers). The TF-free reader (analysis/files/stored/, the table in
analysis/kinds/composites.py) must give the entries Keras' own path gives on the loaded model: same names, types,
counts and rows, and the same skipped layers with the same reasons, without importing TensorFlow.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weightkit.analysis.files.loading import load_model
from weightkit.analysis.files.stored import iter_stored_rows, open_stored, plan_entries
from weightkit.analysis.kinds.composites import stored_sublayers
from weightkit.analysis.model_analysis import analyze_model, collect_entries

REPOSITORY = Path(__file__).resolve().parents[1]
LENGTH = 6


def _saved(keras, folder, backbone):
    """``folder/name.keras``: ``backbone`` on inputs ``token_ids`` and ``padding_mask``, with a Dense classifier."""
    tokens = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    mask = keras.Input((LENGTH,), dtype="int32", name="padding_mask")
    x = backbone({"token_ids": tokens, "padding_mask": mask})
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model([tokens, mask], keras.layers.Dense(2, activation="softmax", name="probs")(x))
    path = folder / f"{backbone.name}.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def gemma_file(keras, tmp_path_factory):
    """A saved, untrained GemmaBackbone (vocabulary 20, hidden 16, intermediate 32, head_dim 4) + Dense classifier."""
    import keras_hub

    keras.utils.set_random_seed(0)
    return _saved(keras, tmp_path_factory.mktemp("stored_gemma"), keras_hub.models.GemmaBackbone(
        vocabulary_size=20, num_layers=2, num_query_heads=4, num_key_value_heads=1, hidden_dim=16, intermediate_dim=32,
        head_dim=4, name="gemma"))


@pytest.fixture(scope="module")
def llama_file(keras, tmp_path_factory):
    """A saved, untrained LlamaBackbone (vocabulary 20, hidden 16, 4 query heads on 2 key/value heads: head size
    16 // 4, intermediate 32) + Dense classifier."""
    import keras_hub

    keras.utils.set_random_seed(0)
    return _saved(keras, tmp_path_factory.mktemp("stored_llama"), keras_hub.models.LlamaBackbone(
        vocabulary_size=20, num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=16, intermediate_dim=32,
        name="llama"))


def _entries_from_both(path):
    """``(entries by the file, skipped by the file, skipped by Keras)``, the entries checked equal to Keras' own:
    names, types, counts, and rows (the same float32 weights, read by h5py instead of Keras: equal up to float32
    rounding)."""
    by_keras, skipped_keras = collect_entries(load_model(path).model)
    stored = open_stored(path)
    planned, skipped_file = plan_entries(stored)
    by_file = list(iter_stored_rows(stored, planned))
    assert [(e.name, e.layer_name, e.type, e.params, e.macs) for e in by_file] == [
        (e.name, e.layer_name, e.type, e.params, e.macs) for e in by_keras]
    for mine, theirs in zip(by_file, by_keras):
        np.testing.assert_allclose(mine.rows, np.asarray(theirs.rows), rtol=0, atol=1e-6, err_msg=mine.name)
        assert (mine.bias is None) == (theirs.bias is None)
    return by_file, skipped_file, skipped_keras


def test_gemma_backbone_entries_from_the_file_equal_keras(gemma_file):
    by_file, skipped_file, skipped_keras = _entries_from_both(gemma_file)
    assert by_file[0].name == "decoder_block_0/attention/query/heads"
    assert [e.name for e in by_file if e.name.startswith("decoder_block_1/")] == [
        "decoder_block_1/attention/query/heads", "decoder_block_1/attention/key/heads",
        "decoder_block_1/attention/value/heads", "decoder_block_1/attention/attention_output",
        "decoder_block_1/ffw_gating", "decoder_block_1/ffw_gating_2", "decoder_block_1/ffw_linear"]
    assert [s.to_dict() for s in skipped_file] == [s.to_dict() for s in skipped_keras]
    assert [s.name for s in skipped_file] == ["token_embedding", "final_normalization"]


def test_llama_backbone_entries_from_the_file_equal_keras(llama_file):
    by_file, skipped_file, skipped_keras = _entries_from_both(llama_file)
    assert [e.name for e in by_file if e.name.startswith("transformer_layer_1/")] == [
        "transformer_layer_1/self_attention/query/heads", "transformer_layer_1/self_attention/key/heads",
        "transformer_layer_1/self_attention/value/heads", "transformer_layer_1/self_attention/attention_output",
        "transformer_layer_1/feedforward_intermediate_dense", "transformer_layer_1/feedforward_gate_dense",
        "transformer_layer_1/feedforward_output_dense"]
    assert [s.to_dict() for s in skipped_file] == [s.to_dict() for s in skipped_keras]
    assert [(s.name, s.type) for s in skipped_file] == [("token_embedding", "ReversibleEmbedding"),
                                                        ("sequence_output_layernorm", "LlamaLayerNorm")]


def _analysis_from_both(path):
    """The whole analysis (``to_dict()``) by the file, checked equal to Keras' own."""
    by_keras = analyze_model(load_model(path).model, path=str(path)).to_dict()
    by_file = analyze_model(open_stored(path), path=str(path)).to_dict()
    assert json.loads(json.dumps(by_file)) == json.loads(json.dumps(by_keras))
    return by_file


def test_gemma_backbone_analysis_from_the_file_equals_keras(gemma_file):
    # One key/value head (grouped-query attention): both paths skip key/value with the same reason.
    reasons = {s["name"]: s["reason"] for s in _analysis_from_both(gemma_file)["skipped"]}
    assert reasons["decoder_block_0/attention/key/heads"] == "only one neuron: nothing to compare it with"


def test_llama_backbone_analysis_from_the_file_equals_keras(llama_file):
    by_file = _analysis_from_both(llama_file)
    assert "transformer_layer_0/feedforward_gate_dense" in {layer["name"] for layer in by_file["layers"]}


_NO_TF = """
import sys
from weightkit.analysis.files.stored import open_stored
from weightkit.analysis.model_analysis import analyze_model
result = analyze_model(open_stored(sys.argv[1]))
print(len(result.layers), file=sys.stderr)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("IMPORTED", loaded, file=sys.stderr)
"""


def test_gemma_backbone_from_the_file_never_imports_tensorflow(gemma_file):
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    done = subprocess.run([sys.executable, "-c", _NO_TF, str(gemma_file)], capture_output=True, text=True, env=env,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-2:] == ["11", "IMPORTED []"]


GEMMA = {"num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 1, "head_dim": 4, "hidden_dim": 16,
         "intermediate_dim": 32}


LLAMA = {key: value for key, value in GEMMA.items() if key != "head_dim"}


@pytest.mark.parametrize("change", [{"num_layers": 10 ** 9}, {"num_layers": -1}, {"head_dim": None},
                                    {"hidden_dim": "wide"}])
def test_a_gemma_config_the_table_cannot_read_opens_nothing(change):
    # An untrusted file's config: the backbone is then skipped as before, never planned as a billion entries.
    assert stored_sublayers("keras_hub>GemmaBackbone", {**GEMMA, **change}, "gemma") == []


@pytest.mark.parametrize("change", [{"num_layers": 10 ** 9}, {"num_query_heads": 0}, {"intermediate_dim": None}])
def test_a_llama_config_the_table_cannot_read_opens_nothing(change):
    assert stored_sublayers("keras_hub>LlamaBackbone", {**LLAMA, **change}, "llama") == []


def test_the_table_names_a_composites_sublayers_under_it_and_a_backbones_as_its_own():
    encoder = stored_sublayers("keras_hub>TransformerEncoder", {}, "enc")
    assert [sub.path for sub in encoder] == ["enc/self_attention_layer", "enc/feedforward_intermediate_dense",
                                             "enc/feedforward_output_dense"]
    backbone = stored_sublayers("keras_hub>GemmaBackbone", GEMMA, "gemma")
    assert [sub.group for sub in backbone[1:8]] == [
        "layers/gemma_decoder_block/attention/query_dense", "layers/gemma_decoder_block/attention/key_dense",
        "layers/gemma_decoder_block/attention/value_dense", "layers/gemma_decoder_block/attention/output_dense",
        "layers/gemma_decoder_block/gating_ffw", "layers/gemma_decoder_block/gating_ffw_2",
        "layers/gemma_decoder_block/ffw_linear"]
    assert backbone[8].group == "layers/gemma_decoder_block_1/attention/query_dense"
    llama = stored_sublayers("keras_hub>Llama3Backbone", LLAMA, "llama3")  # LlamaBackbone's subclass, its layout
    assert [sub.group for sub in llama[1:8]] == [
        "layers/llama_transformer_decoder/_self_attention_layer/_query_dense",
        "layers/llama_transformer_decoder/_self_attention_layer/_key_dense",
        "layers/llama_transformer_decoder/_self_attention_layer/_value_dense",
        "layers/llama_transformer_decoder/_self_attention_layer/_output_dense",
        "layers/llama_transformer_decoder/_feedforward_intermediate_dense",
        "layers/llama_transformer_decoder/_feedforward_gate_dense",
        "layers/llama_transformer_decoder/_feedforward_output_dense"]
    assert llama[1].config["output_shape"] == [None, 4, 4]  # head size hidden_dim // num_query_heads
    assert stored_sublayers("keras_hub>OtherBackbone", GEMMA, "x") == []
