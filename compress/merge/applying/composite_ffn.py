"""The feed-forward networks inside composite layers, as arrays: find them, read their rows, cut and fold them.

A composite layer (keras-hub's TransformerEncoder, Gemma's decoder block) holds its FFN as sublayers
its kind describes (:func:`weightkit.analysis.kinds.composites.composite_ffn`): up (gated: gate and
up) projections whose kernel columns are the intermediate neurons, and a down projection whose kernel
rows read them. Merging neuron ``j`` into the kept ones is the usual fold
(:func:`weightkit.compress.merge.applying.math.fold_into_kernel`) on the down projection, and the
producers lose the columns of the removed neurons. Nothing here runs the model.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.composites import composite_ffn
from weightkit.compress.merge.applying.math import fold_into_kernel
from weightkit.compress.merge.planning.plan import HOMOGENEOUS_ACTIVATIONS

__all__ = ["FfnSite", "described_layers", "ffn_sites"]


def _numpy(variable):
    return np.asarray(import_keras().ops.convert_to_numpy(variable))


@dataclass
class FfnSite:
    """One composite layer's FFN.

    Attributes
    ----------
    layer : keras.layers.Layer
        The composite layer.
    owner : keras.Model or None
        The innermost model holding ``layer`` whose config has the width key (keras-hub's
        GemmaBackbone builds its blocks from its own ``intermediate_dim``): its config, not the
        layer's, sets the width, one width for all its blocks.
    ffn : CompositeFFN
    producers : list of keras.layers.Layer
        Up, or gate and up, projections: kernels ``(d, n)``.
    consumer : keras.layers.Layer
        Down projection: kernel ``(n, d_out)``.
    """

    layer: object
    owner: object
    ffn: object
    producers: list
    consumer: object

    @property
    def name(self):
        return self.layer.name

    @property
    def paths(self):
        """The producers' paths under the model (``enc0/feedforward_intermediate_dense``), as analysis names them."""
        return [f"{self.layer.name}/{sub.name}" for sub in self.producers]

    @property
    def consumer_path(self):
        return f"{self.layer.name}/{self.consumer.name}"

    @property
    def n_neurons(self):
        return int(self.consumer.kernel.shape[0])

    @property
    def consumer_has_bias(self):
        return getattr(self.consumer, "bias", None) is not None

    def problem(self):
        """Why the FFN cannot be cut by columns and rows of 2-D kernels, or None."""
        n = self.n_neurons
        for sub in self.producers + [self.consumer]:
            if len(sub.kernel.shape) != 2:
                return f"{self.layer.name}/{sub.name}: its kernel is not 2-D ({tuple(sub.kernel.shape)})"
        if any(int(sub.kernel.shape[1]) != n for sub in self.producers):
            return f"its projections' widths differ from the down projection's {n} inputs"
        for sub in self.producers:
            bias = getattr(sub, "bias", None)
            if bias is not None and tuple(bias.shape) != (n,):
                return f"{self.layer.name}/{sub.name}: its bias is not one value per neuron"
        if n < 2:
            return "only one intermediate neuron: nothing to merge"
        return None

    def activation(self):
        if self.ffn.activation is not None:  # a class's own: its get_config is not asked (keras-hub 0.32's Llama
            return self.ffn.activation       # decoder block fails there)
        return self.ffn.activation_of(self.layer.get_config())

    def requirement(self):
        """The pair rule of :mod:`~weightkit.compress.merge.applying.math` for a weight merge: a gated MLP
        merges twins (gate and up rows both equal), an ungated one by its activation."""
        activation = self.activation()
        if self.ffn.gated or activation not in HOMOGENEOUS_ACTIVATIONS:
            return "twin"
        return "linear" if activation == "linear" else "positive"

    def producer_rows(self):
        """Each neuron's incoming weights, bias last, the producers side by side.

        Returns
        -------
        ndarray of shape (n_neurons, n_producers * (d + 1)), float64
        """
        blocks = []
        for sub in self.producers:
            kernel = _numpy(sub.kernel).astype(np.float64)
            bias = getattr(sub, "bias", None)
            bias = np.zeros(kernel.shape[1]) if bias is None else _numpy(bias).astype(np.float64)
            blocks.append(np.concatenate([kernel.T, bias[:, None]], axis=1))
        return np.concatenate(blocks, axis=1)

    def consumer_rows(self):
        """The down projection's kernel, one row per neuron: ndarray of shape (n_neurons, d_out)."""
        return _numpy(self.consumer.kernel).astype(np.float64)

    def folded(self, relation):
        """The new arrays of a relation ``h[removed] ≈ β h[kept] + shift`` on the intermediate neurons.

        Parameters
        ----------
        relation : Relation
            A nonzero ``shift`` needs a down projection with a bias.

        Returns
        -------
        dict
            ``id(variable) -> ndarray``: producers' kernels ``(d, n_kept)`` and biases ``(n_kept,)``, the
            down projection's kernel ``(n_kept, d_out)`` and bias ``(d_out,)``.
        """
        arrays = {}
        kept = relation.kept
        for sub in self.producers:
            arrays[id(sub.kernel)] = _numpy(sub.kernel)[:, kept]
            if getattr(sub, "bias", None) is not None:
                arrays[id(sub.bias)] = _numpy(sub.bias)[kept]
        bias = _numpy(self.consumer.bias) if self.consumer_has_bias else None
        if bias is None and np.any(relation.shift != 0):
            raise ValueError(f"{self.consumer_path}: an intercept needs a bias the down projection does not have")
        kernel, bias = fold_into_kernel(_numpy(self.consumer.kernel), bias, relation, layout="dense")
        arrays[id(self.consumer.kernel)] = kernel
        if self.consumer_has_bias:
            arrays[id(self.consumer.bias)] = bias
        return arrays

    def params(self, neurons):
        """The FFN's parameters (producers and down projection) at a width of ``neurons``."""
        total = 0
        for sub in self.producers:
            total += int(sub.kernel.shape[0]) * neurons + (neurons if getattr(sub, "bias", None) is not None else 0)
        return total + neurons * int(self.consumer.kernel.shape[1]) + (
            int(self.consumer.kernel.shape[1]) if self.consumer_has_bias else 0)


def described_layers(model, describe, key):
    """``[(layer, owner, description)]``: every layer of ``model`` (nested models opened) that ``describe`` knows.

    ``describe(layer)`` gives a kind's description (:func:`~weightkit.analysis.kinds.composites.composite_ffn`) or
    None; ``owner`` is the innermost model holding the layer whose config has ``key(description)`` (keras-hub's
    GemmaBackbone builds its blocks from its own config), or None. In model order.
    """
    keras = import_keras()
    found, seen = [], set()

    def visit(container, models):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.Model):
                visit(layer, models + [layer])
                continue
            description = describe(layer)
            if description is not None:
                owner = next((m for m in reversed(models) if key(description) in m.get_config()), None)
                found.append((layer, owner, description))

    visit(model, [])
    return found


def ffn_sites(model):
    """Every composite layer's FFN in ``model`` (nested models opened), in model order.

    Returns
    -------
    list of FfnSite
    """
    return [FfnSite(layer, owner, ffn, [getattr(layer, a) for a in ffn.producers], getattr(layer, ffn.consumer))
            for layer, owner, ffn in described_layers(model, composite_ffn, lambda ffn: ffn.config_key)]
