"""Put the decorrelation regularizer on the kernels of a built (loaded) model, and take it off.

Which kernels of a layer the penalty sees, on which object and in which axis layout, is the
layer registry's word (:attr:`weightkit.analysis.kinds.layers.LayerSpec.kernels`). On a built layer
Keras reads the loss from the *variable's* ``regularizer`` and the saved configuration from the
*layer's* ``*_regularizer`` attribute, so both are set; a regularizer the layer already had (an
L2 weight decay) is kept and summed with ours.
"""

from dataclasses import dataclass

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.selection import check_layer_names, is_chosen
from weightkit.compress.decorrelate.penalty import DecorrelationRegularizer

__all__ = ["RegularizedKernel", "CombinedRegularizer", "regularizable_kernels", "select_kernels",
           "attach_decorrelation", "detach_decorrelation", "default_regularized_layers"]

keras = import_keras()


@keras.saving.register_keras_serializable(package="weightkit")
class CombinedRegularizer(keras.regularizers.Regularizer):
    """The sum of several regularizers (a layer's own weight decay plus decorrelation).

    Parameters
    ----------
    regularizers : list of keras.regularizers.Regularizer or their serialized configs
    """

    def __init__(self, regularizers):
        self.regularizers = [keras.regularizers.get(r) for r in regularizers]

    def __call__(self, x):
        return sum(r(x) for r in self.regularizers)

    def get_config(self):
        return {"regularizers": [keras.saving.serialize_keras_object(r) for r in self.regularizers]}


@dataclass
class RegularizedKernel:
    """One kernel of one layer that can carry the decorrelation penalty.

    Attributes
    ----------
    name : str
        ``layer`` or ``layer/part`` (``sep/pointwise``).
    layer_name : str
        The model-level layer (for ``--layers``).
    owner : keras.layers.Layer
        The object holding the variable (an RNN's cell, a SeparableConv itself).
    variable_attr, regularizer_attr : str
        Attribute names of the kernel variable and of its configured regularizer on ``owner``.
    layout : str
        See :data:`weightkit.compress.decorrelate.penalty.LAYOUTS`.
    blocks : int
        Number of gates for RNN kernels, else 1.
    """

    name: str
    layer_name: str
    owner: object
    variable_attr: str
    regularizer_attr: str
    layout: str
    blocks: int = 1
    original: object = None

    @property
    def variable(self):
        return getattr(self.owner, self.variable_attr)

    @property
    def n_neurons(self):
        shape = tuple(self.variable.shape)
        if self.layout == "transpose":
            return shape[-2]
        if self.layout == "depthwise":
            return shape[-2] * shape[-1]
        return shape[-1]


def _owner(layer, path):
    for name in filter(None, path.split(".")):
        layer = getattr(layer, name)
    return layer


def _kernels(layer, name):
    """The layer's kernels as the registry lists them (wrappers: their wrapped layers')."""
    spec = kind_for(layer)
    if spec is None or not spec.has_neurons:
        return []
    kernels = [RegularizedKernel(entry if k.part is None else f"{entry}/{k.part}", sub.name, _owner(sub, k.owner),
                                 k.variable, k.regularizer, k.layout, len(kind.gates) if k.gated else 1)
               for entry, sub, kind in spec.kernel_layers(layer, name) for k in kind.kernels]
    for kernel in kernels:
        kernel.layer_name = layer.name
    return kernels


def regularizable_kernels(model):
    """Every kernel of a built model that the decorrelation penalty can be put on.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    kernels : list of RegularizedKernel
        In model order, kernels with fewer than two neurons left out.
    """
    kernels = []
    for layer in walk_layers(model):
        if not layer.built:
            continue
        kernels.extend(k for k in _kernels(layer, layer.name) if k.n_neurons // k.blocks >= 2)
    return kernels


def default_regularized_layers(model):
    """Names of the layers regularized when ``--layers`` is not given.

    Every layer with a regularizable kernel except those whose output is a model output: the
    output layer's neurons stand for the classes (or targets) and are meant to differ anyway.
    """
    output_layers = {layer.name for layer in ModelGraph(model).output_layers()}
    names = []
    for kernel in regularizable_kernels(model):
        if kernel.layer_name not in output_layers and kernel.layer_name not in names:
            names.append(kernel.layer_name)
    return names


def select_kernels(model, layers=None):
    """The kernels :func:`attach_decorrelation` would regularize; raises for unknown names.

    Parameters
    ----------
    model : keras.Model
    layers : list of str, default=None
        Layer or entry names; default :func:`default_regularized_layers`.

    Returns
    -------
    list of RegularizedKernel
    """
    kernels = regularizable_kernels(model)
    if layers is None:
        layers = default_regularized_layers(model)
        if not layers:
            raise WeightkitError(
                f"model {model.name!r}: no hidden layer with a Dense, Conv or RNN kernel of two or more "
                "neurons to regularize; name layers with --layers."
            )
    wanted = check_layer_names(layers, [k.layer_name for k in kernels] + [k.name for k in kernels],
                               kind="regularizable", sort=False)
    return [k for k in kernels if is_chosen(k.name, k.layer_name, wanted)]


def attach_decorrelation(model, strength, *, layers=None):
    """Put a :class:`DecorrelationRegularizer` on the kernels of a built model's layers.

    Parameters
    ----------
    model : keras.Model
        Built (loaded or already called). Modified in place.
    strength : float
        See :class:`DecorrelationRegularizer`.
    layers : list of str, default=None
        Layer or entry names; default :func:`default_regularized_layers`.

    Returns
    -------
    kernels : list of RegularizedKernel
        What was regularized, each remembering its previous regularizer for
        :func:`detach_decorrelation`.

    Raises
    ------
    WeightkitError
        When a name in ``layers`` has no regularizable kernel (the message lists those that do).
    """
    kernels = select_kernels(model, layers)
    for kernel in kernels:
        ours = DecorrelationRegularizer(strength, layout=kernel.layout, blocks=kernel.blocks)
        kernel.original = getattr(kernel.owner, kernel.regularizer_attr, None)
        combined = ours if kernel.original is None else CombinedRegularizer([kernel.original, ours])
        setattr(kernel.owner, kernel.regularizer_attr, combined)  # saved in the layer's config
        kernel.variable.regularizer = combined  # what adds the loss on a built layer
    return kernels


def detach_decorrelation(kernels):
    """Give each kernel back the regularizer it had before :func:`attach_decorrelation`."""
    for kernel in kernels:
        setattr(kernel.owner, kernel.regularizer_attr, kernel.original)
        kernel.variable.regularizer = kernel.original
