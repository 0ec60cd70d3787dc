"""The model being quantized: a Keras model or a SavedModel directory, behind one small interface.

A :class:`ModelSource` gives the pipeline what it needs from either kind: the input and output
shapes, the size on disk, and reference predictions (numpy in, numpy out) against which every
TFLite model is compared.
"""

import os
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from weightkit.analysis._tf import import_keras, import_tensorflow, silenced_stderr
from weightkit.analysis.data.batches import n_samples, rows
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.compress.quantize.graph_scan import check_saved_model

__all__ = ["ModelSource", "keras_source", "saved_model_source", "output_names", "path_bytes", "probe_activation"]


def path_bytes(path):
    """Size of a file, or the total size of the files under a folder, in bytes."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)


@dataclass
class ModelSource:
    """What the quantization pipeline needs to know about the float model.

    Attributes
    ----------
    name : str
        The path it came from, or the Keras model's name.
    input_shape : tuple
        ``(None, ...)``, the batch dimension first.
    output_shape : tuple
        ``(None, ...)``.
    bytes : int
        Size of the model file (or SavedModel folder) on disk; for an in-memory model, the
        bytes of its weights.
    keras_model : keras.Model or None
        Set for a Keras source (it can use ``from_keras_model`` as a fallback converter).
    saved_model_dir : str or None
        Set for a SavedModel source: the converter reads it directly.
    final_activation : str or None
        Name of the last layer's activation (for a SavedModel, guessed from its outputs by
        :func:`probe_activation`).
    input_dtype : str, default="float32"
        The input's type; integers (token ids) are never quantized.
    input_names, input_dtypes : list of str or None
        Every input's name and type in model order (set for a Keras model; several inputs are
        fed one array each, by name).
    output_count : int, default=1
        With several outputs, :meth:`predict` returns a list with one array per output.
    """

    name: str
    input_shape: tuple
    output_shape: tuple
    bytes: int
    keras_model: object = None
    saved_model_dir: str = None
    final_activation: str = None
    input_dtype: str = "float32"
    input_names: list = None
    input_dtypes: list = None
    output_count: int = 1
    _call: object = field(default=None, repr=False)

    @property
    def kind(self):
        return "SavedModel" if self.saved_model_dir else "Keras"

    @property
    def several(self):
        """Several inputs or outputs: inputs are a list of arrays and run by signature."""
        return len(self.input_names or [None]) > 1 or self.output_count > 1

    def predict(self, x, batch_size=256):
        """Reference outputs for ``x`` of shape (n, ...), as float32 of shape (n, ...).

        With several inputs ``x`` is a list of arrays; with several outputs the result is a list.
        """
        if self.several:
            n = n_samples(x)
            parts = [self._call(rows(x, start, start + batch_size)) for start in range(0, n, batch_size)]
            parts = [p if isinstance(p, (list, tuple)) else [p] for p in parts]
            outputs = [np.concatenate([np.asarray(p[k], np.float32) for p in parts]) for k in range(len(parts[0]))]
            return outputs if self.output_count > 1 else outputs[0]
        x = np.asarray(x, dtype=np.float32)
        parts = [np.asarray(self._call(x[start:start + batch_size]), dtype=np.float32)
                 for start in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0,) + tuple(self.output_shape[1:]), np.float32)

    def call(self, x):
        """One forward pass on a batch (used for the reference latency)."""
        return self._call(x if isinstance(x, list) else np.asarray(x, dtype=np.float32))

    def shape_view(self):
        """A stand-in for a Keras model in the shared data checks (:mod:`weightkit.analysis.data.datasets`).

        It has what :func:`weightkit.analysis.data.datasets.load_data_for_model` reads from a model: ``name``,
        ``inputs[0].shape``, ``outputs[0].shape`` and a last layer whose activation is
        :attr:`final_activation` (``"linear"`` when unknown).
        """
        activation = SimpleNamespace(__name__=self.final_activation or "linear")
        return SimpleNamespace(name=os.path.basename(str(self.name).rstrip("/")),
                               inputs=[SimpleNamespace(shape=self.input_shape, dtype="float32")],
                               outputs=[SimpleNamespace(shape=self.output_shape)],
                               layers=[SimpleNamespace(activation=activation)])


def probe_activation(outputs):
    """Guess a model's output activation from its outputs of shape (n, k).

    ``"softmax"`` when every row is a probability vector (k > 1), ``"sigmoid"`` when a single
    output stays in [0, 1], else ``"linear"``. Used for a SavedModel, whose layers are unknown.
    """
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if outputs.size == 0 or outputs.min() < 0.0 or outputs.max() > 1.0:
        return "linear"
    if outputs.shape[1] == 1:
        return "sigmoid"
    return "softmax" if np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3) else "linear"


def _single(tensors, what, name):
    if len(tensors) != 1:
        raise WeightkitError(
            f"{name}: the SavedModel's serving signature has {len(tensors)} {what}s; quantize reads a SavedModel "
            f"folder with one input and one output only; quantize the .keras (or .h5) model it came from, which "
            f"may have several."
        )
    return tensors[0]


def keras_source(model, path=None):
    """A :class:`ModelSource` for a Keras model (loaded from ``path`` when given).

    A variable-size input (``keras.Input((None, 3))``) is kept as it is: the pipeline fixes it to
    its data's shape (:func:`~weightkit.compress.quantize.shapes.fix_to_data`) or refuses it without data.
    """
    name = path or model.name
    inputs, outputs = list(model.inputs)[0], list(model.outputs)[0]
    input_shape = tuple(inputs.shape)  # unknown sizes besides the batch are fixed to the data (.shapes.fix_to_data)
    size = path_bytes(path) if path else int(sum(np.asarray(w).nbytes for w in model.weights))
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", None) if model.layers else None

    keys = _dict_keys(model)

    def call(batch):
        # predict_on_batch runs Keras' compiled (graph) predict function: the fair speed of the
        # float model; an eager model(batch) call is several times slower.
        if keys is not None and isinstance(batch, list):  # a model called on a dict: one array per key
            batch = dict(zip(keys, batch))
        return model.predict_on_batch(batch)

    return ModelSource(name=name, input_shape=input_shape, output_shape=tuple(outputs.shape), bytes=size,
                       keras_model=model, final_activation=activation, input_dtype=str(inputs.dtype),
                       input_names=_input_names(model), input_dtypes=[str(t.dtype) for t in model.inputs],
                       output_count=len(model.outputs), _call=call)


def _dict_keys(model):
    """The dict keys of a model called on a dict of inputs, in ``model.inputs`` order; None otherwise."""
    structure = None if isinstance(model, import_keras().Sequential) else getattr(model, "input", None)
    if not isinstance(structure, dict):
        return None
    key_of = {id(tensor): key for key, tensor in structure.items()}
    return [key_of.get(id(tensor)) for tensor in model.inputs]


def _input_names(model):
    try:
        return ModelGraph(model).input_names
    except WeightkitError:
        return [t.name.split(":")[0] for t in model.inputs]


def saved_model_source(path, unsafe=False):
    """A :class:`ModelSource` for a TensorFlow SavedModel directory (its serving signature).

    Parameters
    ----------
    path : str
    unsafe : bool, default=False
        Run the SavedModel even when its graph holds ops that are not pure math (file, network,
        process or Python ops); without it such a graph is refused before anything of it runs
        (:func:`~weightkit.compress.quantize.graph_scan.check_saved_model`).
    """
    check_saved_model(path, unsafe=unsafe)
    tf = import_tensorflow()
    try:
        with silenced_stderr():
            loaded = tf.saved_model.load(path)
    except Exception as error:  # noqa: BLE001 - TensorFlow raises many kinds here
        text = " ".join(str(error).split())[:200]
        raise WeightkitError(
            f"{path}: TensorFlow could not load the SavedModel ({type(error).__name__}: {text}); check that it "
            "was written by tf.saved_model.save or model.export()."
        ) from error
    signatures = dict(loaded.signatures)
    if not signatures:
        raise WeightkitError(f"{path}: the SavedModel has no serving signature; export it with model.export(path).")
    key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    function = signatures[key]
    input_specs = function.structured_input_signature[1]
    input_name = _single(sorted(input_specs), "input", path)
    output_name = _single(sorted(function.structured_outputs), "output", path)
    input_shape = tuple(input_specs[input_name].shape.as_list())
    output_shape = tuple(function.structured_outputs[output_name].shape.as_list())
    if any(d is None for d in input_shape[1:]):
        raise WeightkitError(
            f"{path}: the serving signature's input shape {input_shape} has unknown dimensions besides the batch; "
            "export the model with a fixed input size."
        )
    input_shape = (None,) + input_shape[1:]

    def call(batch):
        return function(**{input_name: tf.constant(batch)})[output_name].numpy()

    source = ModelSource(name=path, input_shape=input_shape, output_shape=(None,) + output_shape[1:],
                         bytes=path_bytes(path), saved_model_dir=path, _call=call)
    source._loaded = loaded  # keep the functions' variables alive
    probe = np.random.default_rng(0).random((8,) + tuple(int(d) for d in input_shape[1:]), dtype=np.float32)
    source.final_activation = probe_activation(source.predict(probe))
    return source


def output_names(source, count):
    """The output names of ``source``'s Keras model, in order; ``output_0``... when it has none to read."""
    try:
        return ModelGraph(source.keras_model).output_names
    except (WeightkitError, AttributeError):
        return [f"output_{i}" for i in range(count)]
