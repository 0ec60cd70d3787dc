"""What slicing a residual stream asks of a layer kind (:mod:`weightkit.compress.stream`).

A transformer's residual stream is the sum that its ``Add`` layers build: the embeddings, then each block's
attention and feed-forward outputs. Every layer that *writes* into it must be linear in its weights' output
channels (a Dense without activation, an Embedding, a MultiHeadAttention's output projection), every layer
that *reads* it must read it through a normalization over the channels (LayerNormalization, RMSNormalization)
or through kernels whose rows are its channels. Then the stream can be turned by an orthogonal matrix and its
weakest directions dropped (SliceGPT, Ashkboos et al. 2024): the writers' output columns and the readers' rows
change, nothing else. These defaults say "no part in a stream"; the kinds that have one override them.
"""

__all__ = ["StreamRules"]


class StreamRules:
    """The residual-stream part of a :class:`~weightkit.analysis.kinds.base.LayerKind`.

    A call's tensor arguments are named by :attr:`call_arguments` (positional ones by position, keywords by
    name), the names :meth:`stream_reads` is given.
    """

    #: Names of the layer's positional tensor arguments, in order (MultiHeadAttention: query, value, key).
    call_arguments = ("inputs",)

    def stream_writes(self, layer):
        """``[(array key, axis)]`` whose ``axis`` holds the channels of its output, when that output is linear
        in them (``x W + b``, a table's rows); None when the layer cannot write a stream.

        Keys are :class:`weightkit.compress.merge.applying.rebuild.WeightState`'s.
        """
        return None

    def stream_width_config(self, config, width):
        """``config`` (a copy's, changed in place and returned) with ``width`` output channels."""
        raise NotImplementedError(f"{type(self).__name__} writes no stream")

    def stream_reads(self, layer, carried, passed):
        """``[(kernel key, bias key or None)]`` whose first axis reads the stream's channels, or None.

        Parameters
        ----------
        layer : keras.layers.Layer
        carried : set of str
            The call arguments (names of :attr:`call_arguments`, or keywords) that hold the stream.
        passed : set of str
            Every tensor argument the call was given.
        """
        return None

    def stream_norm(self, layer, rank):
        """``(scale key or None, offset key or None, centers, epsilon)`` of a normalization over the channel
        axis alone (``centers``: it subtracts the channels' mean, as LayerNormalization) of a ``rank``-dimensional
        input; None otherwise."""
        return None

    def stream_norm_problem(self, layer, rank):
        """Why a normalization layer cannot be read as :meth:`stream_norm`, or None."""
        return None

    def stream_passes(self, layer):
        """Whether it maps each channel alone and the same way (dropout, average pooling over positions, channels
        last), so it commutes with turning the channels."""
        channels_first = getattr(layer, "data_format", None) == "channels_first"
        return getattr(self, "merge", None) in ("identity", "linear") and not channels_first

    def stream_read_config(self, config, layer):
        """``config`` (a copy's, changed in place and returned) of a layer that reads a stream and writes elsewhere,
        so that its output keeps its width when the stream narrows (a MultiHeadAttention infers it from the query)."""
        return config
