"""What running a model on data asks a kind: which activations can be probed, and which token ids a layer takes.

:class:`DataRules` is a base of :class:`~weightkit.analysis.kinds.base.LayerKind`, asked by
:mod:`weightkit.analysis.activations.collect` and :mod:`weightkit.analysis.data.token_ids`.
"""

__all__ = ["DataRules", "SKIP_INTERNAL"]

#: Why an internal entry's activations are not probed (the default of :attr:`DataRules.internal_reason`).
SKIP_INTERNAL = "internal to the layer; not probed"


class DataRules:
    """The questions about a live layer that the activation probes and the ``--data`` checks ask.

    Attributes
    ----------
    internal_reason : str
        Why the activations of its :attr:`~weightkit.analysis.kinds.base.LayerKind.internal` parts are
        not probed; ``{name}`` is the layer's name.
    """

    internal_reason = SKIP_INTERNAL

    def probe_skip(self, layer, part):
        """Why an entry's activations are not the layer's output, or None when they are.

        Parameters
        ----------
        layer : keras.layers.Layer
        part : str
            The last component of the entry's name (``"depthwise"`` of ``sep/depthwise``).
        """
        if "*" in self.internal or part in self.internal:
            return self.internal_reason.format(name=layer.name)
        return None

    def hidden_state_probed(self):
        """Whether its output, the hidden state, is probed as one more entry beside its internal gate entries
        (an LSTM, a GRU, a Bidirectional layer)."""
        return self.recurrent and "*" in self.internal

    def vocabulary_size(self, layer):
        """How many token ids the layer takes (an Embedding's ``input_dim``), or None when it takes none."""
        return None
