"""ModelGraph: the flat graph of every zoo form, reloaded from a file as a user has it."""

import numpy as np
import pytest
from zoo import EXTRA_ZOO, ZOO, keras, load_zoo, zoo_inputs

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph

ALL = sorted(ZOO) + sorted(EXTRA_ZOO)
L = keras.layers


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="module")
def graphs(zoo_dir):
    """name -> (reloaded model, its ModelGraph), built lazily once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            model = load_zoo(name, zoo_dir)
            cache[name] = model, ModelGraph(model)
        return cache[name]

    return get


def _layer(graph, name):
    (layer,) = [lay for lay in graph.layers if lay.name == name]
    return layer


def _flat_values(outputs):
    return [np.asarray(v) for v in keras.tree.flatten(outputs)]


@pytest.mark.parametrize("name", ["sequential_mlp", "sequential_mlp_h5", "embedding_lstm", "gru_sequences",
                                  "simple_rnn", "segmentation_cnn"])
def test_reloaded_sequential_has_one_node_per_layer(graphs, name):
    model, graph = graphs(name)
    assert max(len(layer._inbound_nodes) for layer in model.layers) > 1  # the Keras 3.15 leftovers
    assert [len(graph.nodes_of(layer)) for layer in model.layers] == [1] * len(model.layers)
    assert graph.layers == model.layers
    assert not any(graph.is_shared(layer) for layer in model.layers)


@pytest.mark.parametrize("name", ALL)
def test_nodes_are_topological_and_indexed(graphs, name):
    _, graph = graphs(name)
    assert [node.index for node in graph.nodes] == list(range(len(graph.nodes)))
    for node in graph.nodes:
        for tid in node.inputs:
            producer = graph.producer(tid)
            assert producer is None or producer.index < node.index
        assert not isinstance(node.layer, (keras.Model, L.InputLayer))


@pytest.mark.parametrize("name", ALL)
def test_readers_and_producer_agree(graphs, name):
    _, graph = graphs(name)
    for tid in graph.input_ids:
        assert graph.producer(tid) is None
        assert graph.readers(tid)  # every zoo input is used
    for node in graph.nodes:
        for tid in node.outputs:
            assert graph.producer(tid) is node
            assert all(tid in reader.inputs for reader in graph.readers(tid))
        for tid in node.inputs:
            assert graph.readers(tid).count(node) == 1
    for tid in graph.output_ids:
        assert graph.is_output(tid)
        assert graph.producer(tid) is not None
    every = set(graph.input_ids).union(*(n.outputs for n in graph.nodes))
    assert all(graph.readers(t) or graph.is_output(t) for t in every)  # no dangling tensor in the zoo


@pytest.mark.parametrize("name", ALL)
def test_shapes_match_the_model(graphs, name):
    model, graph = graphs(name)
    assert [graph.shape(t) for t in graph.output_ids] == [tuple(kt.shape) for kt in model.outputs]
    assert [graph.shape(t) for t in graph.input_ids] == [tuple(kt.shape) for kt in model.inputs]
    assert [graph.dtype(t) for t in graph.input_ids] == [kt.dtype for kt in model.inputs]
    for layer in graph.layers:
        nodes = graph.nodes_of(layer)
        assert graph.input_shapes(layer) == [[graph.shape(t) for t in n.inputs] for n in nodes]
        assert len(graph.output_shapes(layer)) == len(nodes)


@pytest.mark.parametrize("name, layer, inputs, outputs", [
    ("segmentation_cnn", "mask", [[(None, 8, 8, 4)]], [[(None, 8, 8, 1)]]),
    ("residual_cnn", "skip", [[(None, 8, 8, 4), (None, 8, 8, 4)]], [[(None, 8, 8, 4)]]),
    ("residual_cnn", "pool", [[(None, 4, 4, 4)]], [[(None, 4)]]),
    ("two_inputs", "join", [[(None, 4), (None, 2)]], [[(None, 6)]]),
    ("concat_branches", "head", [[(None, 7)]], [[(None, 2)]]),
    ("shared_dense", "shared", [[(None, 4)], [(None, 4)]], [[(None, 3)], [(None, 3)]]),
    ("nested_sequential", "enc1", [[(None, 6)]], [[(None, 8)]]),
    ("nested_functional", "inner_dense", [[(None, 6)]], [[(None, 4)]]),
    ("embedding_lstm", "lstm", [[(None, 7, 4)]], [[(None, 5)]]),
    ("gru_sequences", "per_step", [[(None, 6, 5)]], [[(None, 6, 2)]]),
    ("bidirectional_lstm", "bilstm", [[(None, 6, 3)]], [[(None, 8)]]),
    ("lstm_states", "lstm", [[(None, 6, 3)]], [[(None, 6, 4), (None, 4), (None, 4)]]),
    ("attention", "mha", [[(None, 5, 4), (None, 3, 4)]], [[(None, 5, 4)]]),
    ("masked_lstm", "lstm", [[(None, 7, 4), (None, 7)]], [[(None, 5)]]),
])
def test_layer_shapes(graphs, name, layer, inputs, outputs):
    _, graph = graphs(name)
    assert graph.input_shapes(_layer(graph, layer)) == inputs
    assert graph.output_shapes(_layer(graph, layer)) == outputs


@pytest.mark.parametrize("name", ["embedding_lstm", "masked_lstm"])
def test_integer_input_dtype(graphs, name):
    _, graph = graphs(name)
    assert [graph.dtype(t) for t in graph.input_ids] == ["int32"]


def test_shared_dense_has_two_nodes(graphs):
    _, graph = graphs("shared_dense")
    shared = _layer(graph, "shared")
    assert len(graph.nodes_of(shared)) == 2 and graph.is_shared(shared)
    assert [graph.producer(n.inputs[0]).layer.name for n in graph.nodes_of(shared)] == ["left", "right"]
    assert [lay.name for lay in graph.layers] == ["left", "right", "shared", "sum"]
    assert graph.nodes_of(L.Dense(1)) == [] and not graph.is_shared(L.Dense(1))


def test_two_outputs(graphs):
    model, graph = graphs("two_outputs")
    assert [lay.name for lay in graph.output_layers()] == ["class_head", "value_head"]
    assert graph.output_names == ["class_head", "value_head"] == list(model.output_names)
    assert [graph.shape(t) for t in graph.output_ids] == [(None, 3), (None, 1)]
    trunk = graph.nodes_of(_layer(graph, "trunk"))[0]
    assert [n.layer.name for n in graph.readers(trunk.outputs[0])] == ["class_head", "value_head"]


def test_names_of_inputs_and_outputs(graphs):
    assert graphs("two_inputs")[1].input_names == ["numbers", "extra"]
    assert graphs("dict_inputs")[1].input_names == ["a", "b"]  # Keras flattens a dict by sorted key
    assert graphs("sequential_mlp")[1].input_names == ["features"]
    assert graphs("sequential_mlp")[1].output_names == ["probs"]
    assert graphs("nested_sequential")[1].output_names == ["head"]
    lstm_states = graphs("lstm_states")[1]
    assert lstm_states.output_names == ["head", "lstm"]  # dict outputs {"head", "sequence"}, sorted
    assert [lay.name for lay in lstm_states.output_layers()] == ["head", "lstm"]


@pytest.mark.parametrize("name, nested, names", [
    ("nested_sequential", ["encoder"], ["pre", "encoder/enc1", "encoder/enc2", "head"]),
    ("nested_functional", ["block", "inner"],
     ["block/block_dense", "block/inner/inner_dense", "block/block_out", "head"]),
    ("nested_training", ["block"], ["pre", "block/block_dense", "block/block_bn", "head"]),
    ("dict_inputs", ["tower"], ["tower/tower_dense", "tower/tower_dense", "join", "head"]),
    ("functional_mlp", [], ["hidden1", "hidden2", "probs"]),
])
def test_nested_models_are_unwrapped(graphs, name, nested, names):
    _, graph = graphs(name)
    assert graph.nested_models() == nested
    assert [node.name for node in graph.nodes] == names
    assert [node.path for node in graph.nodes] == [tuple(n.split("/")[:-1]) for n in names]
    assert not any(isinstance(layer, keras.Model) for layer in graph.layers)
    assert all(len(graph.nodes_of(layer)) == 1 for layer in graph.layers if name != "dict_inputs")


def test_nested_model_boundary_is_one_tensor(graphs):
    _, graph = graphs("nested_sequential")
    pre, enc1, enc2, head = graph.nodes
    assert enc1.inputs == pre.outputs  # the encoder's input is the outer tensor feeding it
    assert head.inputs == enc2.outputs  # the encoder's output is the outer call's output
    assert graph.output_layers() == [head.layer]


def test_shared_nested_model(graphs):
    _, graph = graphs("dict_inputs")
    tower_dense = _layer(graph, "tower_dense")
    first, second = graph.nodes_of(tower_dense)
    assert graph.is_shared(tower_dense)
    assert (first.inputs, second.inputs) == ((graph.input_ids[0],), (graph.input_ids[1],))


@pytest.mark.parametrize("name", ALL)
def test_flat_model_reproduces_predict(graphs, name):
    model, graph = graphs(name)
    flat, tensors = graph.flat_model()
    assert sorted(tensors) == list(range(max(tensors) + 1))
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    x = zoo_inputs(model)
    expected = _flat_values(model.predict(x, verbose=0))
    got = _flat_values(flat.predict(x, verbose=0))
    assert [v.shape for v in got] == [v.shape for v in expected]
    for a, b in zip(got, expected):
        # Same layers, same weights, same kernels: float32 round-off at most.
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_flat_model_keeps_the_training_flag_of_a_nested_call(graphs):
    model, graph = graphs("nested_training")
    flat, _ = graph.flat_model()
    x = zoo_inputs(model)
    # The nested block was called with training=True: BatchNormalization uses batch statistics.
    assert np.abs(np.asarray(model(x)) - np.asarray(model(x, training=False))).max() > 1e-2
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), atol=1e-6, rtol=0)


def test_flat_model_outputs_of_a_shared_layer_at_both_call_sites(graphs):
    model, graph = graphs("shared_dense")
    shared, left, right = (_layer(graph, n) for n in ("shared", "left", "right"))
    ids = [node.outputs[0] for node in graph.nodes_of(shared)]
    probe, tensors = graph.flat_model(outputs=ids)
    assert [tuple(tensors[t].shape) for t in ids] == [(None, 3), (None, 3)]
    x = zoo_inputs(model)
    at_left, at_right = probe.predict(x, verbose=0)
    np.testing.assert_allclose(at_left, np.asarray(shared(left(x))), atol=1e-6, rtol=0)
    np.testing.assert_allclose(at_right, np.asarray(shared(right(x))), atol=1e-6, rtol=0)
    np.testing.assert_allclose(at_left + at_right, model.predict(x, verbose=0), atol=1e-6, rtol=0)


def test_flat_model_leaves_the_graph_unchanged(zoo_dir):
    model = load_zoo("sequential_mlp", zoo_dir, fresh=True)
    before = [len(layer._inbound_nodes) for layer in model.layers]
    ModelGraph(model).flat_model()
    ModelGraph(model).flat_model(outputs=[1])
    assert [len(layer._inbound_nodes) for layer in model.layers] == [n + 2 for n in before]
    graph = ModelGraph(model)
    assert [len(graph.nodes_of(layer)) for layer in model.layers] == [1, 1, 1]


def test_fresh_sequential_matches_its_reloaded_copy(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), name="features"), L.Dense(8, activation="relu", name="hidden1"),
                              L.Dense(6, activation="tanh", name="hidden2"), L.Dense(3, name="probs")])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [len(layer._inbound_nodes) for layer in model.layers] == [1, 1, 1]
    assert [len(layer._inbound_nodes) for layer in reloaded.layers] == [3, 2, 1]

    def summary(graph):
        return ([(n.name, n.inputs, n.outputs, n.path) for n in graph.nodes], graph.input_ids, graph.output_ids,
                graph.input_names, graph.output_names, [graph.output_shapes(lay) for lay in graph.layers],
                [lay.name for lay in graph.output_layers()])

    assert summary(ModelGraph(model)) == summary(ModelGraph(reloaded))


def test_sequential_inside_sequential(tmp_path):
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([L.Dense(4, activation="relu", name="inner1"), L.Dense(3, name="inner2")],
                             name="inner")
    model = keras.Sequential([keras.Input((5,)), L.Dense(6, name="outer1"), inner, L.Dense(2, name="outer2")])
    model.save(tmp_path / "m.keras")
    model = keras.saving.load_model(tmp_path / "m.keras")
    graph = ModelGraph(model)
    assert [n.name for n in graph.nodes] == ["outer1", "inner/inner1", "inner/inner2", "outer2"]
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(graph.flat_model()[0](x)), np.asarray(model(x)), atol=1e-6, rtol=0)


def test_raw_operation_is_a_node_but_not_a_layer(graphs):
    _, graph = graphs("masked_lstm")  # Embedding(mask_zero=True)'s mask is a keras.ops.not_equal node
    (op_node,) = [n for n in graph.nodes if not isinstance(n.layer, L.Layer)]
    lstm = graph.nodes_of(_layer(graph, "lstm"))[0]
    assert op_node.outputs[0] in lstm.inputs
    assert op_node.layer not in graph.layers


def test_subclassed_model_is_refused():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__(name="tiny")
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Tiny()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(WeightkitError) as info:
        ModelGraph(sub)
    assert str(info.value) == (
        "Model 'tiny' (Tiny) is a subclassed model without a functional graph, so weightkit cannot see its "
        "layers. Wrap it in a functional model: inp = keras.Input(shape=...); model = keras.Model(inp, "
        "sub.call(inp)).")
    inp = keras.Input((3,))
    wrapped = ModelGraph(keras.Model(inp, sub.call(inp)))
    assert [n.layer for n in wrapped.nodes] == [sub.dense]


def test_unbuilt_sequential_and_non_models_are_refused():
    with pytest.raises(WeightkitError) as info:
        ModelGraph(keras.Sequential([L.Dense(2)], name="later"))
    assert str(info.value) == (
        "Sequential model 'later' is not built, so it has no graph to read. Start it with keras.Input(shape=...) "
        "or call model.build((None, ...)) before passing it.")
    with pytest.raises(WeightkitError) as info:
        ModelGraph(L.Dense(2))
    assert str(info.value) == "Expected a keras.Model (Functional or Sequential). Received: Dense."


def test_unknown_tensor_id_is_refused(graphs):
    _, graph = graphs("functional_mlp")
    with pytest.raises(WeightkitError) as info:
        graph.shape(99)
    assert str(info.value) == (
        "Unknown tensor id 99 in the graph of model 'functional_mlp': expected an int in [0, 4). Take ids from "
        "GraphNode.inputs/outputs or ModelGraph.input_ids/output_ids.")
    with pytest.raises(WeightkitError):
        graph.flat_model(outputs=[-1])


def test_flat_model_refuses_a_name_used_twice(tmp_path):
    encoder = keras.Sequential([keras.Input((4,)), L.Dense(3, name="dense")], name="encoder")
    inp = keras.Input((5,), name="features")
    model = keras.Model(inp, encoder(L.Dense(4, name="dense")(inp)), name="clash")
    model.save(tmp_path / "clash.keras")
    graph = ModelGraph(keras.saving.load_model(tmp_path / "clash.keras"))
    assert [n.name for n in graph.nodes] == ["dense", "encoder/dense"]
    with pytest.raises(WeightkitError) as info:
        graph.flat_model()
    assert str(info.value) == (
        "Cannot flatten model 'clash': the name 'dense' is used by layer 'dense' and layer 'encoder/dense', and one "
        "functional model needs unique names. Rename one of them in the model and save it again.")


@pytest.mark.parametrize("name", ["sequential_mlp", "nested_functional", "two_outputs", "residual_cnn", "segmentation_cnn"])
def test_a_plain_merge_site_is_the_walks_group_with_one_producer(graphs, name):
    # The site's producer, per-channel members and consumers are those of its channel group (issue 26).
    from weightkit.analysis.structure.channels import channel_groups
    from weightkit.compress.merge.planning.plan import find_merge_sites

    model, graph = graphs(name)
    groups = {g.producers[0]: g for g in channel_groups(graph) if len(g.producers) == 1 and g.mergeable}
    plain = {n: s for n, s in find_merge_sites(model).items() if s.mergeable}
    assert plain
    for site_name, site in plain.items():
        group, walked = site.channel_group(), groups[site_name]
        assert (group.n, group.producers) == (walked.n, walked.producers)
        assert [u.layer for u in group.members] == [u.layer for u in walked.members]
        assert [u.layer for u in group.consumers] == list(dict.fromkeys(u.layer for u in walked.consumers))



@pytest.mark.parametrize("name", ["sequential_mlp", "nested_functional", "functional_mlp", "segmentation_cnn"])
def test_a_site_leads_only_where_the_channel_walk_carries_its_channels(graphs, name):
    # One walk (issue 26): a site is read off its producer's channel group. Given no groups, no producer leads to a
    # consumer, and a producer that merges is stopped at its first reader with the channel walk's words.
    from weightkit.compress.merge.planning.plan import find_merge_sites

    model, graph = graphs(name)
    sites = find_merge_sites(model, graph)
    blind = find_merge_sites(model, graph, groups=[])
    assert any(site.mergeable for site in sites.values())
    for site_name, site in blind.items():
        assert not site.mergeable
        if sites[site_name].mergeable:
            reader = graph.readers(graph.nodes_of(_layer(graph, site_name))[0].outputs[0])[0].layer
            assert site.reason == (f"{reader.name} ({type(reader).__name__}) reads its channels and weightkit "
                                   "cannot follow them through it")
        else:
            assert site.reason == sites[site_name].reason


@pytest.mark.parametrize("name, layer", [("gru_sequences", "gru"), ("simple_rnn", "rnn"), ("embedding_lstm", "lstm")])
def test_recurrent_readers_are_read_off_the_channel_walk(graphs, name, layer):
    # One walk (issue 26): the channel walk opens a group on a recurrent layer's output when asked (readers_of), and
    # follow_readers reads the layer's consumers off it; given no group, it stops at the first reader.
    from weightkit.analysis.structure.channels import channel_groups
    from weightkit.compress.merge.recurrent_units import RecurrentSite, follow_readers

    model, graph = graphs(name)
    (group,) = [g for g in channel_groups(graph, readers_of=(layer,)) if g.producers == [layer]]
    tensor = graph.nodes_of(_layer(graph, layer))[0].outputs[0]
    site, blind = RecurrentSite(layer, ""), RecurrentSite(layer, "")
    assert follow_readers(graph, tensor, site, group) is None
    assert [name for name, _ in site.consumers] == [u.layer for u in group.consumers]
    reader = graph.readers(tensor)[0].layer
    assert follow_readers(graph, tensor, blind, None) == (
        f"{reader.name} ({type(reader).__name__}) reads its channels and weightkit cannot follow them through it")
    assert layer not in {p for g in channel_groups(graph) for p in g.producers}
