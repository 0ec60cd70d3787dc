"""Composite layers of Keras-ecosystem libraries whose sublayers weight analysis from the file can open.

A composite layer (keras-hub's TransformerEncoder) builds its sublayers in its code: its saved
configuration does not list them, so the file alone cannot tell which class each sublayer group
holds. This table says it, per registered class, for the sublayers with neuron rows (Keras'
own path finds them on the live layer, :func:`weightkit.analysis.rows.composite_leaves`, in the
same order): the attribute Keras saves the sublayer under, its layer name, and its Keras class.
"""

__all__ = ["COMPOSITES", "composite_sublayers"]

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
