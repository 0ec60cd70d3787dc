"""Composite layers of Keras-ecosystem libraries whose sublayers weight analysis from the file can open.

A composite layer (keras-hub's TransformerEncoder) builds its sublayers in its code: its saved
configuration does not list them, so the file alone cannot tell which class each sublayer group
holds. This table says it, per registered class, for the sublayers with neuron rows (Keras'
own path finds them on the live layer, :func:`weightkit.analysis.rows.composite_leaves`, in the
same order): the attribute Keras saves the sublayer under, its layer name, and its Keras class.
:data:`BACKBONES` does the same for a layer that builds its sublayers from its own config (keras-hub's
GemmaBackbone: its decoder blocks' attention projections and gated FFN, with their EinsumDense equations):
:func:`stored_sublayers` gives either table's sublayers.

:data:`FEED_FORWARDS` describes the feed-forward network inside a composite (its up, or gate and up,
projections, its down projection, the config key of its width and its activation), so that a merge can
cut its intermediate neurons and fold them into the down projection: :func:`composite_ffn`.
:data:`ATTENTION_HEADS` describes the grouped-query attention inside a composite whose config sets its query-head
count apart from its head size (Gemma's decoder block), so that a merge can remove query heads:
:func:`composite_heads`. A composite absent from it (keras-hub's TransformerEncoder: its key_dim is
``hidden_dim // num_heads``) keeps its heads.
"""

from dataclasses import dataclass

__all__ = ["ATTENTION_HEADS", "BACKBONES", "COMPOSITES", "FEED_FORWARDS", "CompositeFFN", "CompositeHeads",
           "StoredSublayer", "composite_ffn", "composite_heads", "composite_sublayers", "stored_sublayers"]

#: Registered name -> ((saved attribute, layer name, Keras class name), ...), in the layer's tracking order.
COMPOSITES = {
    "keras_hub>TransformerEncoder": (
        ("_self_attention_layer", "self_attention_layer", "MultiHeadAttention"),
        ("_feedforward_intermediate_dense", "feedforward_intermediate_dense", "Dense"),
        ("_feedforward_output_dense", "feedforward_output_dense", "Dense"),
    ),
}


def composite_sublayers(registered_name):
    """The sublayers with neuron rows of a composite class (see :data:`COMPOSITES`); empty when unknown."""
    return COMPOSITES.get(registered_name, ())


@dataclass(frozen=True)
class StoredSublayer:
    """A sublayer of a composite or backbone layer, as weight analysis from the file reads it.

    Attributes
    ----------
    group : str
        Where its variables sit under its owner's weights group (``layers/gemma_decoder_block_1/attention/key_dense``).
    path : str
        Its entry's layer name as Keras' path gives it: ``enc0/self_attention_layer`` under a composite layer
        (:func:`weightkit.analysis.rows.composite_leaves`), ``decoder_block_1/attention/key`` in a backbone (a
        Functional model, whose layers Keras' walk lists as the model's own).
    class_name : str
        The Keras class whose kind reads its weights (``"EinsumDense"``, ``"Embedding"``).
    type : str
        The class name Keras' path reports (``type(layer).__name__``: ``"ReversibleEmbedding"``).
    config : dict
        The config its kind reads (an EinsumDense's ``equation``), as its owner builds it.
    """

    group: str
    path: str
    class_name: str
    type: str
    config: dict


_MAX_BLOCKS = 1024  # Gemma's largest has 62 decoder blocks


def _gemma_backbone(config):
    """keras-hub's GemmaBackbone (``keras_hub/src/models/gemma/gemma_backbone.py``): its token embedding, each
    decoder block's attention projections (``gemma_attention.py``) and gated FFN (``gemma_decoder_block.py``),
    its final normalization. The backbone is Functional: its layers are saved as a container, after its two
    inputs, one group per class made unique (``gemma_decoder_block``, ``gemma_decoder_block_1``...)."""
    heads, kv_heads = int(config["num_query_heads"]), int(config["num_key_value_heads"])
    head_dim, hidden, width = int(config["head_dim"]), int(config["hidden_dim"]), int(config["intermediate_dim"])
    blocks = int(config["num_layers"])
    if not 0 <= blocks <= _MAX_BLOCKS:  # an untrusted file's config: never plan millions of entries
        raise ValueError(f"Expected 0 to {_MAX_BLOCKS} decoder blocks. Received: num_layers={blocks}.")

    def einsum(equation, shape):
        return {"equation": equation, "output_shape": list(shape), "bias_axes": None}

    subs = [StoredSublayer("layers/reversible_embedding", "token_embedding", "Embedding", "ReversibleEmbedding", {})]
    for i in range(blocks):
        group, path = "layers/gemma_decoder_block" + (f"_{i}" if i else ""), f"decoder_block_{i}"
        for attribute, name, equation, shape in (
                ("query_dense", "query", "btd,ndh->btnh", (None, heads, head_dim)),
                ("key_dense", "key", "bsd,kdh->bskh", (None, kv_heads, head_dim)),
                ("value_dense", "value", "bsd,kdh->bskh", (None, kv_heads, head_dim)),
                ("output_dense", "attention_output", "btnh,nhd->btd", (None, hidden))):
            subs.append(StoredSublayer(f"{group}/attention/{attribute}", f"{path}/attention/{name}", "EinsumDense",
                                       "EinsumDense", einsum(equation, shape)))
        for attribute, name, equation, shape in (
                ("gating_ffw", "ffw_gating", "btd,df->btf", (None, width // 2)),
                ("gating_ffw_2", "ffw_gating_2", "btd,df->btf", (None, width // 2)),
                ("ffw_linear", "ffw_linear", "btf,fd->btd", (None, hidden))):
            subs.append(StoredSublayer(f"{group}/{attribute}", f"{path}/{name}", "EinsumDense", "EinsumDense",
                                       einsum(equation, shape)))
    subs.append(StoredSublayer("layers/rms_normalization", "final_normalization", "RMSNormalization",
                               "RMSNormalization", {}))
    return subs


#: Registered name -> function(config) -> [StoredSublayer]: layers that build their sublayers from their own
#: config (keras-hub backbones), whose saved config lists none of them.
BACKBONES = {
    "keras_hub>GemmaBackbone": _gemma_backbone,
}


def stored_sublayers(registered_name, config, name):
    """The :class:`StoredSublayer` list of a composite or backbone layer from its registered name and config.

    Parameters
    ----------
    registered_name : str or None
        ``"keras_hub>GemmaBackbone"``, as the file's configuration records it.
    config : dict
        The layer's saved config.
    name : str
        The layer's name: a composite's sublayer paths start with it (a backbone's do not).

    Returns
    -------
    list of StoredSublayer
        Empty when the class is not in :data:`COMPOSITES` or :data:`BACKBONES`, or its config lacks a key the
        table reads.
    """
    if registered_name in BACKBONES:
        try:
            return BACKBONES[registered_name](config)
        except (KeyError, TypeError, ValueError):
            return []
    return [StoredSublayer(attribute, f"{name}/{sub}", class_name, class_name, {})
            for attribute, sub, class_name in composite_sublayers(registered_name)]


@dataclass(frozen=True)
class CompositeFFN:
    """The feed-forward network inside a composite layer: ``down(act(up(x)))`` or ``down(act(gate(x)) * up(x))``.

    Every projection has a 2-D kernel: the producers ``(d, n)`` (one column per intermediate neuron),
    the consumer ``(n, d_out)`` (one row per neuron). The intermediate activation, the tensor whose
    neurons are merged, is exactly the consumer's input: a merge probes it there.

    Attributes
    ----------
    producers : tuple of str
        Attributes of the projections that make the intermediate neurons: ``(up,)``, or ``(gate, up)``
        for a gated MLP (one coupled group: both are cut together).
    consumer : str
        Attribute of the down projection, which reads the intermediate neurons.
    config_key : str
        The config key of the intermediate width, on the layer and on a model that builds it from its
        own config (keras-hub's GemmaBackbone).
    per_neuron : int
        ``config[config_key] = per_neuron * n``: Gemma's blocks make ``intermediate_dim // 2`` neurons.
    activation : str or None
        The activation applied to the up (gated: the gate) projection, when fixed by the class.
    activation_key : str or None
        Otherwise the config key that holds it.
    """

    producers: tuple
    consumer: str
    config_key: str
    per_neuron: int = 1
    activation: str = None
    activation_key: str = None

    @property
    def gated(self):
        """Two producers: ``act(gate) * up`` (a neuron is a pair of gate and up columns)."""
        return len(self.producers) == 2

    def activation_of(self, config):
        """The activation's name (``"relu"``, ``"gelu"``) from the layer's config."""
        if self.activation is not None:
            return self.activation
        value = config.get(self.activation_key, "linear")
        return value if isinstance(value, str) else "custom"  # a serialized object: no rule known for it

    def width_config(self, neurons):
        """The value of :attr:`config_key` for ``neurons`` intermediate neurons."""
        return int(self.per_neuron * neurons)


#: Registered name (``package>Class``, or ``module>Class`` for a class Keras has no name for) -> its FFN.
FEED_FORWARDS = {
    "keras_hub>TransformerEncoder": CompositeFFN(
        ("_feedforward_intermediate_dense",), "_feedforward_output_dense", "intermediate_dim",
        activation_key="activation"),
    "keras_hub>TransformerDecoder": CompositeFFN(
        ("_feedforward_intermediate_dense",), "_feedforward_output_dense", "intermediate_dim",
        activation_key="activation"),
    # gelu(gate, approximate=True) * up, down: keras_hub/src/models/gemma/gemma_decoder_block.py
    "keras_hub.src.models.gemma.gemma_decoder_block>GemmaDecoderBlock": CompositeFFN(
        ("gating_ffw", "gating_ffw_2"), "ffw_linear", "intermediate_dim", per_neuron=2,
        activation="gelu_approximate"),
}


def _described(layer, table):
    """The entry of ``table`` for a live layer's class or a base class (registered name or ``module>Class``), or None."""
    from weightkit.analysis._tf import import_keras

    registered = import_keras().saving.get_registered_name
    for cls in type(layer).__mro__:
        for key in (registered(cls), f"{cls.__module__}>{cls.__name__}"):
            if key in table:
                return table[key]
    return None


def composite_ffn(layer):
    """The :class:`CompositeFFN` of a live composite layer (its class or a base class in :data:`FEED_FORWARDS`),
    or None."""
    return _described(layer, FEED_FORWARDS)


@dataclass(frozen=True)
class CompositeHeads:
    """Grouped-query attention inside a composite layer, whose query heads can be removed.

    The attention sublayer's query projection writes ``heads`` query heads (kernel ``(heads, d, head_dim)``,
    equation ``btd,ndh->btnh``), its key and value projections ``groups`` key/value heads (kernels
    ``(groups, d, head_dim)``), and query head ``i`` attends with key/value head ``i // (heads // groups)``. Its
    output projection reads every head's attention-weighted values (input ``(batch, T, heads, head_dim)``,
    kernel ``(heads, head_dim, d_out)``, equation ``btnh,nhd->btd``). Removing a query head removes its slice
    ``[i]`` of both kernels (the head axis is the first of each); head_dim, the key and the value stay.

    A model that builds all its blocks from its own config (keras-hub's GemmaBackbone: the config key is on it)
    has one head count for every block: every block loses the same number of query heads, and the count must
    stay a multiple of the key/value head count, so each block loses the same number from every key/value group.

    Attributes
    ----------
    attention : str
        Attribute of the attention sublayer on the composite layer.
    query, key, value, output : str
        Attributes of the projections on the attention sublayer.
    heads_key : str
        The config key of the query-head count, on the layer and on a model that builds it from its own config.
    groups_key : str
        The config key of the key/value head count (``heads_key``'s value is a multiple of it).
    """

    attention: str
    query: str
    key: str
    value: str
    output: str
    heads_key: str
    groups_key: str


#: Registered name (``package>Class``, or ``module>Class``) of a composite layer -> its attention heads.
ATTENTION_HEADS = {
    # keras_hub/src/models/gemma/gemma_attention.py: q reshaped to (kv heads, q heads per kv head, head_dim)
    "keras_hub.src.models.gemma.gemma_decoder_block>GemmaDecoderBlock": CompositeHeads(
        "attention", "query_dense", "key_dense", "value_dense", "output_dense", "num_query_heads",
        "num_key_value_heads"),
}


def composite_heads(layer):
    """The :class:`CompositeHeads` of a live composite layer (its class or a base class in
    :data:`ATTENTION_HEADS`), or None."""
    return _described(layer, ATTENTION_HEADS)
