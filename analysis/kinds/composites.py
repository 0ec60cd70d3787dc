"""Composite layers of Keras-ecosystem libraries whose sublayers weight analysis from the file can open.

A composite layer (keras-hub's TransformerEncoder) builds its sublayers in its code: its saved
configuration does not list them, so the file alone cannot tell which class each sublayer group
holds. This table says it, per registered class, for the sublayers with neuron rows (Keras'
own path finds them on the live layer, :func:`weightkit.analysis.rows.composite_leaves`, in the
same order): the attribute Keras saves the sublayer under, its layer name, and its Keras class.
:data:`BACKBONES` does the same for a layer that builds its sublayers from its own config (keras-hub's
GemmaBackbone and LlamaBackbone: their decoder blocks' attention projections, with their EinsumDense equations,
and gated FFN): :func:`stored_sublayers` gives either table's sublayers.

:data:`FEED_FORWARDS` describes the feed-forward network inside a composite (its up, or gate and up,
projections, its down projection, the config key of its width and its activation), so that a merge can
cut its intermediate neurons and fold them into the down projection: :func:`composite_ffn`.
:data:`ATTENTION_HEADS` describes the grouped-query attention inside a composite whose config sets its query-head
count apart from its head size (Gemma's, Mistral's and Qwen3's decoder blocks), so that a merge can remove query heads:
:func:`composite_heads`. A composite absent from it (keras-hub's TransformerEncoder: its key_dim is
``hidden_dim // num_heads``) keeps its heads; :data:`TIED_HEADS` names the grouped-query ones whose head size
follows from the head count (keras-hub's Llama), so that a merge says why: :func:`tied_heads`.
"""

from dataclasses import dataclass

__all__ = ["ATTENTION_HEADS", "BACKBONES", "COMPOSITES", "FEED_FORWARDS", "TIED_HEADS", "CompositeFFN",
           "CompositeHeads", "StoredSublayer", "composite_ffn", "composite_heads", "composite_sublayers",
           "stored_sublayers", "tied_heads"]

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


def _einsum(equation, shape):
    """The config an EinsumDense kind reads: its equation and output shape, no bias."""
    return {"equation": equation, "output_shape": list(shape), "bias_axes": None}


def _backbone_sizes(config, head_dim_key=None):
    """``(blocks, heads, kv_heads, head_dim, hidden, width)`` of a decoder backbone's config, checked.

    ``head_dim_key``: the config key of the head size, or None where the attention derives it as
    ``hidden_dim // num_query_heads`` (keras-hub's Llama)."""
    heads, kv_heads = int(config["num_query_heads"]), int(config["num_key_value_heads"])
    hidden, width, blocks = int(config["hidden_dim"]), int(config["intermediate_dim"]), int(config["num_layers"])
    if not 0 <= blocks <= _MAX_BLOCKS:  # an untrusted file's config: never plan millions of entries
        raise ValueError(f"Expected 0 to {_MAX_BLOCKS} decoder blocks. Received: num_layers={blocks}.")
    if heads < 1:
        raise ValueError(f"Expected at least one query head. Received: num_query_heads={heads}.")
    head_dim = int(config[head_dim_key]) if head_dim_key else hidden // heads
    return blocks, heads, kv_heads, head_dim, hidden, width


def _decoder_blocks(blocks, group, path, projections):
    """The :class:`StoredSublayer` list of a backbone's ``blocks`` decoder blocks, saved under ``layers/{group}``,
    ``layers/{group}_1``... and named ``{path}_0``, ``{path}_1``... by Keras' path; ``projections``: ``(attribute
    under the block's group, name under its path, Keras class, config)`` of each sublayer, in tracking order."""
    return [StoredSublayer(f"layers/{group}" + (f"_{i}" if i else "") + f"/{attribute}", f"{path}_{i}/{name}",
                           class_name, class_name, config)
            for i in range(blocks) for attribute, name, class_name, config in projections]


def _gemma_backbone(config):
    """keras-hub's GemmaBackbone (``keras_hub/src/models/gemma/gemma_backbone.py``): its token embedding, each
    decoder block's attention projections (``gemma_attention.py``) and gated FFN (``gemma_decoder_block.py``),
    its final normalization. The backbone is Functional: its layers are saved as a container, after its two
    inputs, one group per class made unique (``gemma_decoder_block``, ``gemma_decoder_block_1``...)."""
    blocks, heads, kv_heads, head_dim, hidden, width = _backbone_sizes(config, "head_dim")
    projections = [(f"attention/{attribute}", f"attention/{name}", "EinsumDense", _einsum(equation, shape))
                   for attribute, name, equation, shape in (
                       ("query_dense", "query", "btd,ndh->btnh", (None, heads, head_dim)),
                       ("key_dense", "key", "bsd,kdh->bskh", (None, kv_heads, head_dim)),
                       ("value_dense", "value", "bsd,kdh->bskh", (None, kv_heads, head_dim)),
                       ("output_dense", "attention_output", "btnh,nhd->btd", (None, hidden)))]
    projections += [(attribute, name, "EinsumDense", _einsum(equation, shape)) for attribute, name, equation, shape in (
        ("gating_ffw", "ffw_gating", "btd,df->btf", (None, width // 2)),
        ("gating_ffw_2", "ffw_gating_2", "btd,df->btf", (None, width // 2)),
        ("ffw_linear", "ffw_linear", "btf,fd->btd", (None, hidden)))]
    return [StoredSublayer("layers/reversible_embedding", "token_embedding", "Embedding", "ReversibleEmbedding", {}),
            *_decoder_blocks(blocks, "gemma_decoder_block", "decoder_block", projections),
            StoredSublayer("layers/rms_normalization", "final_normalization", "RMSNormalization", "RMSNormalization",
                           {})]


def _llama_backbone(config):
    """keras-hub's LlamaBackbone (``keras_hub/src/models/llama/llama_backbone.py``; Llama3Backbone is its subclass):
    its token embedding, each decoder block's attention projections (``llama_attention.py``: head size
    ``hidden_dim // num_query_heads``) and gated FFN (``llama_decoder.py``: Dense kernels, no biases, in the
    block's tracking order intermediate (up), gate, output), its final LlamaLayerNorm. Saved as Gemma's, under
    ``llama_transformer_decoder``, ``llama_transformer_decoder_1``..., each attribute under its own name."""
    blocks, heads, kv_heads, head_dim, hidden, width = _backbone_sizes(config)
    projections = [(f"_self_attention_layer/{attribute}", f"self_attention/{name}", "EinsumDense",
                    _einsum(equation, shape)) for attribute, name, equation, shape in (
                        ("_query_dense", "query", "bqm,muh->bquh", (None, heads, head_dim)),
                        ("_key_dense", "key", "bkm,mvh->bkvh", (None, kv_heads, head_dim)),
                        ("_value_dense", "value", "bkm,mvh->bkvh", (None, kv_heads, head_dim)),
                        ("_output_dense", "attention_output", "bquh,uhm->bqm", (None, hidden)))]
    projections += [(f"_{name}", name, "Dense", {"units": units, "use_bias": False}) for name, units in (
        ("feedforward_intermediate_dense", width), ("feedforward_gate_dense", width),
        ("feedforward_output_dense", hidden))]
    return [StoredSublayer("layers/reversible_embedding", "token_embedding", "Embedding", "ReversibleEmbedding", {}),
            *_decoder_blocks(blocks, "llama_transformer_decoder", "transformer_layer", projections),
            StoredSublayer("layers/llama_layer_norm", "sequence_output_layernorm", "LlamaLayerNorm", "LlamaLayerNorm",
                           {})]


#: Registered name -> function(config) -> [StoredSublayer]: layers that build their sublayers from their own
#: config (keras-hub backbones), whose saved config lists none of them.
BACKBONES = {
    "keras_hub>GemmaBackbone": _gemma_backbone,
    "keras_hub>LlamaBackbone": _llama_backbone,
    "keras_hub>Llama3Backbone": _llama_backbone,
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


def _silu_gated(prefix="_", **activation):
    """keras-hub's Llama-family FFN: ``feedforward_output_dense(silu(feedforward_gate_dense(x)) *
    feedforward_intermediate_dense(x))``, three Dense without bias, width ``intermediate_dim``."""
    return CompositeFFN((f"{prefix}feedforward_gate_dense", f"{prefix}feedforward_intermediate_dense"),
                        f"{prefix}feedforward_output_dense", "intermediate_dim", **activation)


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
    # keras_hub/src/models/llama/llama_decoder.py (Llama3Backbone's blocks too). LlamaBackbone passes ops.silu, and
    # the block's get_config fails in keras-hub 0.32 (it reads rope_scaling_factor, never set): silu is fixed here.
    "keras_hub.src.models.llama.llama_decoder>LlamaTransformerDecoder": _silu_gated(activation="silu"),
    # The same FFN under the same attributes; their get_config gives the activation (silu from their backbones).
    "keras_hub.src.models.mistral.mistral_transformer_decoder>MistralTransformerDecoder": _silu_gated(
        activation_key="activation"),
    "keras_hub.src.models.qwen.qwen_decoder>QwenTransformerDecoder": _silu_gated(activation_key="activation"),
    "keras_hub.src.models.qwen3.qwen3_decoder>Qwen3TransformerDecoder": _silu_gated(activation_key="activation"),
    "keras_hub.src.models.phi3.phi3_decoder>Phi3Decoder": _silu_gated("", activation_key="activation"),
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

    The attention sublayer's query projection writes ``heads`` query heads (Gemma: kernel ``(heads, d, head_dim)``,
    equation ``btd,ndh->btnh``; Mistral, Qwen3: ``(d, heads, head_dim)``, ``bqm,muh->bquh``), its key and value
    projections ``groups`` key/value heads (kernels with the head axis in the same place), and query head ``i``
    attends with key/value head ``i // (heads // groups)``. Its output projection reads every head's
    attention-weighted values (input ``(batch, T, heads, head_dim)``, kernel ``(heads, head_dim, d_out)``, equation
    ``btnh,nhd->btd`` or ``bquh,uhm->bqm``). Removing a query head removes its slice along :attr:`head_axis` of the
    query kernel and its slice ``[i]`` of the output kernel; head_dim, the key and the value stay.

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
    head_axis : int, default=0
        The head axis of the query, key and value kernels: 0 for ``(heads, d, head_dim)``, 1 for
        ``(d, heads, head_dim)``.
    head_dim_key : str or None, default=None
        The config key of the head size where a None value means ``hidden_dim // heads`` (keras-hub's Mistral):
        a re-created holder gets the size it had, so that fewer query heads keep it.
    """

    attention: str
    query: str
    key: str
    value: str
    output: str
    heads_key: str
    groups_key: str
    head_axis: int = 0
    head_dim_key: str = None


def _bquh_heads():
    """keras-hub's Mistral and Qwen3 attention (``mistral_attention.py``, ``qwen3_attention.py``): EinsumDense
    projections without biases, query ``bqm,muh->bquh``, key and value ``bkm,mvh->bkvh``, output ``bquh,uhm->bqm``;
    their ``head_dim`` is set apart (Mistral: None derives it as ``hidden_dim // num_query_heads``). Qwen3's
    query/key normalization and both rotary embeddings act within a head: removing heads leaves them alone."""
    return CompositeHeads("_self_attention_layer", "_query_dense", "_key_dense", "_value_dense", "_output_dense",
                          "num_query_heads", "num_key_value_heads", head_axis=1, head_dim_key="head_dim")


#: Registered name (``package>Class``, or ``module>Class``) of a composite layer -> its attention heads.
ATTENTION_HEADS = {
    # keras_hub/src/models/gemma/gemma_attention.py: q reshaped to (kv heads, q heads per kv head, head_dim)
    "keras_hub.src.models.gemma.gemma_decoder_block>GemmaDecoderBlock": CompositeHeads(
        "attention", "query_dense", "key_dense", "value_dense", "output_dense", "num_query_heads",
        "num_key_value_heads"),
    "keras_hub.src.models.mistral.mistral_transformer_decoder>MistralTransformerDecoder": _bquh_heads(),
    "keras_hub.src.models.qwen3.qwen3_decoder>Qwen3TransformerDecoder": _bquh_heads(),
}


def composite_heads(layer):
    """The :class:`CompositeHeads` of a live composite layer (its class or a base class in
    :data:`ATTENTION_HEADS`), or None."""
    return _described(layer, ATTENTION_HEADS)


#: Registered name (``package>Class``) of a composite layer -> (attribute of its attention sublayer, its head size):
#: grouped-query attention whose head size follows from the query-head count, so that fewer query heads would
#: resize every head kept. Their heads stay: :func:`tied_heads`.
TIED_HEADS = {
    "keras_hub.src.models.llama.llama_decoder>LlamaTransformerDecoder": (
        "_self_attention_layer", "hidden_dim // num_query_heads"),  # llama_attention.py, build
    "keras_hub.src.models.qwen.qwen_decoder>QwenTransformerDecoder": (
        "_self_attention_layer", "hidden_dim // num_query_heads"),  # qwen_attention.py, build
    "keras_hub.src.models.phi3.phi3_decoder>Phi3Decoder": (
        "attention", "hidden_dim // num_query_heads"),  # phi3_attention.py, build
}


def tied_heads(layer):
    """``(attention sublayer, reason)`` of a live composite layer in :data:`TIED_HEADS`, or None.

    The reason is the one line a merge reports for its ``path/heads``."""
    described = _described(layer, TIED_HEADS)
    if described is None:
        return None
    attribute, size = described
    attention = getattr(layer, attribute)
    return attention, (f"{type(attention).__name__} sets its head size to {size}: fewer query heads would resize "
                       "every head kept, so weightkit leaves its heads alone")
