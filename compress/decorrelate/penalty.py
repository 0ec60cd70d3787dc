"""A weight regularizer that makes neurons develop uncorrelated weights.

The math core (:func:`kernel_rows`, :func:`decorrelation_penalty`) takes tensors and returns
tensors through ``keras.ops``, so it runs on any backend and inside any ``tf.distribute``
strategy; :class:`DecorrelationRegularizer` wraps it as a serializable Keras regularizer.
Attaching it to the layers of a loaded model lives in :mod:`weightkit.compress.decorrelate.kernels`.

"Neuron rows" are exactly those of :mod:`weightkit.analysis.rows`: the penalty pushes down the very
Pearson correlations that ``weightkit analyze`` measures.
"""

from weightkit.analysis._tf import import_keras

__all__ = ["LAYOUTS", "DecorrelationRegularizer", "decorrelation_penalty"]

keras = import_keras()
ops = keras.ops

#: How a kernel's axes map to neuron rows, as in :mod:`weightkit.analysis.rows`.
#: ``"last"``: Dense ``(fan_in, units)``, Conv ``(*k, in, filters)``, an RNN's input kernel
#: ``(features, gates * units)``: one neuron per index of the last axis, all other axes flattened.
#: ``"transpose"``: Conv*Transpose ``(*k, filters, in)``: one neuron per index of axis -2.
#: ``"depthwise"``: DepthwiseConv ``(*k, in, multiplier)``: one neuron per ``in * multiplier``
#: channel, its ``prod(k)`` spatial weights as the row.
LAYOUTS = ("last", "transpose", "depthwise")


def kernel_rows(kernel, layout="last"):
    """Neuron weight rows of a kernel tensor, as ``analysis`` defines them.

    Parameters
    ----------
    kernel : tensor of rank >= 2
        A layer's kernel (see :data:`LAYOUTS` for the axis conventions).
    layout : {"last", "transpose", "depthwise"}, default="last"

    Returns
    -------
    rows : tensor of shape (n_neurons, fan_in)
    """
    kernel = ops.convert_to_tensor(kernel)
    shape = tuple(kernel.shape)
    if layout == "last":
        return ops.transpose(ops.reshape(kernel, (-1, shape[-1])))
    if layout == "transpose":
        rank = len(shape)
        order = [rank - 2] + [axis for axis in range(rank) if axis != rank - 2]
        return ops.reshape(ops.transpose(kernel, order), (shape[-2], -1))
    if layout == "depthwise":
        return ops.transpose(ops.reshape(kernel, (-1, shape[-2] * shape[-1])))
    raise ValueError(f"Invalid value for argument `layout`. Expected one of {list(LAYOUTS)}. "
                     f"Received: layout={layout!r}")


def decorrelation_penalty(rows, *, blocks=1, epsilon=1e-6):
    """Mean squared Pearson correlation over all pairs of distinct neuron rows.

    Parameters
    ----------
    rows : tensor of shape (n_neurons, fan_in)
        One neuron's weights per row.
    blocks : int, default=1
        Split the neurons into this many equal consecutive blocks (an RNN kernel's gates) and
        average the per-block penalties; pairs across blocks are not penalized.
    epsilon : float, default=1e-6
        Relative guard in the row norms: a row is scaled by
        ``1 / sqrt(|c|² + epsilon · mean|c|² + 1e-30)``, ``c`` the centered row.

    Returns
    -------
    penalty : scalar tensor, float32
        ``mean_{i<j} r_ij²``, in [0, 1]; 0 for one neuron per block.

    Notes
    -----
    Rows are centered and normalized, then one matrix product gives every correlation at once:
    ``sum_ij r_ij² = ||U Uᵀ||_F² = ||Uᵀ U||_F²``, and the smaller of the two Gram matrices is
    formed, so the cost is ``O(n · fan_in · min(n, fan_in))`` per block and memory
    ``O(min(n, fan_in)²)``. The diagonal (``|u_i|²``, 1 for a varying row) is subtracted
    exactly. A constant row becomes a zero row: its correlations count as 0 (as in
    :func:`weightkit.analysis.pearson_matrix`), and its gradient is finite (zero), never NaN. Because the
    epsilon is relative to the layer's mean row norm, the penalty does not depend on the scale
    of the weights.
    """
    rows = ops.cast(rows, "float32")
    n, fan_in = rows.shape[0], rows.shape[1]
    if n % blocks:
        raise ValueError(f"{n} neurons cannot be split into {blocks} equal blocks.")
    per_block = n // blocks
    if per_block < 2:
        return ops.zeros((), dtype="float32")
    centered = rows - ops.mean(rows, axis=1, keepdims=True)
    squared = ops.sum(ops.square(centered), axis=1, keepdims=True)
    guard = epsilon * ops.stop_gradient(ops.mean(squared)) + 1e-30
    unit = centered * ops.rsqrt(squared + guard)
    unit = ops.reshape(unit, (blocks, per_block, fan_in))
    if per_block <= fan_in:
        gram = ops.matmul(unit, ops.transpose(unit, (0, 2, 1)))  # (blocks, n, n)
    else:
        gram = ops.matmul(ops.transpose(unit, (0, 2, 1)), unit)  # (blocks, fan_in, fan_in)
    total = ops.sum(ops.square(gram), axis=(1, 2))
    diagonal = ops.sum(ops.square(ops.sum(ops.square(unit), axis=2)), axis=1)
    pairs = per_block * (per_block - 1)
    return ops.mean(ops.maximum(total - diagonal, 0.0) / pairs)


@keras.saving.register_keras_serializable(package="weightkit")
class DecorrelationRegularizer(keras.regularizers.Regularizer):
    """Penalize Pearson correlation between the weight rows of a layer's neurons.

    ``penalty = strength × mean over neuron pairs i < j of r_ij²``, with ``r_ij`` the Pearson
    correlation of neuron ``i``'s and neuron ``j``'s incoming weights (rows exactly as
    ``weightkit analyze`` builds them). Unlike ``keras.regularizers.OrthogonalRegularizer``
    (uncentered cosine, rank-2 kernels only) it is centered, so it targets the redundancy that
    the analysis reports, and it handles Conv, Conv*Transpose and Depthwise kernels.

    Parameters
    ----------
    strength : float, default=1.0
        Weight of the penalty in the loss. The penalty itself lies in [0, 1]; random rows with
        ``fan_in`` inputs score about ``1 / fan_in``.
    layout : {"last", "transpose", "depthwise"}, default="last"
        Which kernel axes are neurons (see :data:`LAYOUTS`). :func:`weightkit.compress.attach_decorrelation`
        chooses it from the layer class.
    blocks : int, default=1
        Penalize correlations only within equal consecutive blocks of neurons. Used for RNN
        input kernels ``(features, gates × units)``: ``blocks`` is the number of gates, so each
        gate's units are decorrelated among themselves.
    epsilon : float, default=1e-6
        Relative guard in the row norms (constant rows give 0, never NaN).

    Notes
    -----
    A Keras regularizer sees one variable. For SimpleRNN/LSTM/GRU it is attached to the input
    kernel only: the rows it decorrelates are each gate unit's *input* weights, while
    ``analysis`` concatenates input and recurrent weights, so the recurrent part of the
    measured correlation is left to training.

    Examples
    --------
    >>> import keras
    >>> from compress import DecorrelationRegularizer
    >>> layer = keras.layers.Dense(32, kernel_regularizer=DecorrelationRegularizer(0.5))
    """

    def __init__(self, strength=1.0, layout="last", blocks=1, epsilon=1e-6):
        strength = float(strength)
        if not strength >= 0.0 or strength == float("inf"):
            raise ValueError(f"Invalid value for argument `strength`. Expected a finite number >= 0. "
                             f"Received: strength={strength}")
        if layout not in LAYOUTS:
            raise ValueError(f"Invalid value for argument `layout`. Expected one of {list(LAYOUTS)}. "
                             f"Received: layout={layout!r}")
        if int(blocks) < 1:
            raise ValueError(f"Invalid value for argument `blocks`. Expected an integer >= 1. "
                             f"Received: blocks={blocks}")
        if not float(epsilon) > 0.0:
            raise ValueError(f"Invalid value for argument `epsilon`. Expected a number > 0. "
                             f"Received: epsilon={epsilon}")
        self.strength = strength
        self.layout = layout
        self.blocks = int(blocks)
        self.epsilon = float(epsilon)

    def __call__(self, x):
        if self.strength == 0.0:
            return ops.zeros((), dtype="float32")
        rows = kernel_rows(x, self.layout)
        return self.strength * decorrelation_penalty(rows, blocks=self.blocks, epsilon=self.epsilon)

    def get_config(self):
        return {"strength": self.strength, "layout": self.layout, "blocks": self.blocks,
                "epsilon": self.epsilon}

    def __repr__(self):
        return (f"DecorrelationRegularizer(strength={self.strength}, layout={self.layout!r}, "
                f"blocks={self.blocks})")
