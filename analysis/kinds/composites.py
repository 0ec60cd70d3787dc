"""Composite layers of Keras-ecosystem libraries whose sublayers weight analysis from the file can open.

A composite layer (keras-hub's TransformerEncoder) builds its sublayers in its code: its saved
configuration does not list them, so the file alone cannot tell which class each sublayer group
holds. This table says it, per registered class, for the sublayers with neuron rows (Keras'
own path finds them on the live layer, :func:`weightkit.analysis.rows.composite_leaves`, in the
same order): the attribute Keras saves the sublayer under, its layer name, and its Keras class.

:data:`FEED_FORWARDS` describes the feed-forward network inside a composite (its up, or gate and up,
projections, its down projection, the config key of its width and its activation), so that a merge can
cut its intermediate neurons and fold them into the down projection: :func:`composite_ffn`.
"""

from dataclasses import dataclass

__all__ = ["COMPOSITES", "FEED_FORWARDS", "CompositeFFN", "composite_ffn", "composite_sublayers"]

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


def composite_ffn(layer):
    """The :class:`CompositeFFN` of a live composite layer (its class or a base class in :data:`FEED_FORWARDS`),
    or None."""
    from weightkit.analysis._tf import import_keras

    registered = import_keras().saving.get_registered_name
    for cls in type(layer).__mro__:
        for key in (registered(cls), f"{cls.__module__}>{cls.__name__}"):
            if key in FEED_FORWARDS:
                return FEED_FORWARDS[key]
    return None
