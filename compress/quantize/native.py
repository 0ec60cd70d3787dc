"""Keras' own quantization (``keras-*``), beside the TFLite modes (ONNX: :mod:`~weightkit.compress.quantize.onnx_export`).

``keras-int8``, ``keras-int4``, ``keras-float8``: ``model.quantize(kind)`` on a copy (the model is
saved and reloaded, never changed), written as a ``.keras`` file and run by Keras after a reload from
those bytes, as a user would. Keras 3 quantizes Dense, EinsumDense and Embedding; every other layer
with weights stays float and is listed. Each conversion returns a
:class:`~weightkit.compress.quantize.convert.Conversion` with the file's bytes and a runner with the interface of :class:`~weightkit.compress.quantize.evaluate.TFLiteModel`
(``predict``, ``latency_ms``, ``throughput``).
"""

import contextlib
import os
import tempfile
import warnings

import numpy as np

from weightkit.analysis._tf import import_keras, silenced_stderr, silenced_stdout
from weightkit.analysis.data.batches import n_samples, rows
from weightkit.analysis.files.loading import walk_layers
from weightkit.compress.quantize.convert import Conversion, converter_reason
from weightkit.compress.quantize.evaluate import time_calls

__all__ = ["KERAS_KINDS", "KerasRunner", "convert_keras_mode", "keras_skipped", "quiet_export"]

KERAS_KINDS = {"keras-int8": "int8", "keras-int4": "int4", "keras-float8": "float8"}


@contextlib.contextmanager
def quiet_export(verbose):
    """Hide the exporters' stdout, stderr and warnings unless ``verbose``."""
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(silenced_stdout())
            stack.enter_context(silenced_stderr())
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
        yield


def _copy(model, directory):
    keras = import_keras()
    path = os.path.join(directory, "copy.keras")
    model.save(path)
    return keras.saving.load_model(path, compile=False)


def keras_skipped(model):
    """``"Conv2D conv1, ..."``: layers with weights that Keras left unquantized (None when none)."""
    left = [f"{type(layer).__name__} {layer.name}" for layer in walk_layers(model)
            if layer.weights and getattr(layer, "quantization_mode", None) is None
            and not isinstance(layer, import_keras().Model)]
    return ", ".join(left) or None


class KerasRunner:
    """A Keras model run on numpy batches with the interface of :class:`TFLiteModel`."""

    def __init__(self, model):
        self.model = model

    def _call(self, x):
        out = self.model.predict_on_batch(x)
        return [np.asarray(o, np.float32) for o in out] if isinstance(out, (list, tuple)) else \
            np.asarray(out, np.float32)

    def predict(self, x, batch_size=256):
        """Outputs for ``x`` (an array, or a list of arrays for several inputs), batched."""
        n = n_samples(x)
        parts = [self._call(rows(x, start, min(n, start + batch_size))) for start in range(0, n, batch_size)]
        if isinstance(parts[0], list):
            return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        return np.concatenate(parts)

    def latency_ms(self, x, repeats=50, warmup=3):
        one = rows(x, 0, 1)
        return 1000.0 * time_calls(lambda: self._call(one), repeats, warmup)

    def throughput(self, x, batch_size=64, repeats=10, warmup=2):
        index = np.arange(batch_size) % n_samples(x)
        batch = [a[index] for a in x] if isinstance(x, list) else np.asarray(x)[index]
        return batch_size / time_calls(lambda: self._call(batch), repeats, warmup)


def _unreloadable(model):
    """Layers of ``model`` whose quantized form Keras 3.15 cannot load back from a ``.keras`` file.

    A quantized MultiHeadAttention saves its EinsumDense projections' quantized variables, but the
    reloaded layer looks for float ones ("Layer 'key' expected 2 variables, but received 0"): the
    sublayers of a composite layer (one whose sublayers hold the weights) stay float. So do layers of
    other packages (keras-hub's ReversibleEmbedding fails the same way): their quantized variables
    are theirs to restore.

    Returns
    -------
    names : list of str
        The top-most such layers, as ``"MultiHeadAttention b0_mha"``.
    excluded : set of int
        ``id`` of every layer to leave float (the listed layers and their sublayers).
    """
    keras = import_keras()
    names, excluded = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):  # Keras' walk, sublayers included
        if id(layer) in excluded or isinstance(layer, keras.Model):
            continue
        composite = any(sub.weights for sub in layer._flatten_layers(include_self=False, recursive=True))
        foreign = not type(layer).__module__.startswith("keras.")
        if composite or (foreign and layer.weights):
            names.append(f"{type(layer).__name__} {layer.name}")
            excluded.update(id(sub) for sub in layer._flatten_layers(include_self=True, recursive=True))
    return names, excluded


def _quantized_file(keras_model, kind, directory, mode, excluded=None):
    """Quantize a copy (leaving the layers whose ``id`` is in ``excluded`` float), save it, reload it."""
    keras = import_keras()
    copy = _copy(keras_model, directory)
    if excluded is None:
        copy.quantize(kind)
    else:
        _, left = _unreloadable(copy)
        copy.quantize(kind, filters=lambda layer: id(layer) not in left)
    path = os.path.join(directory, f"model_{mode}.keras")
    copy.save(path)
    return path, keras.saving.load_model(path, compile=False)


def convert_keras_mode(mode, keras_model, verbose=False):
    """``(Conversion, runner or None, note or None)`` for a ``keras-*`` mode.

    The note lists the layers with weights Keras did not quantize. When the quantized file does not
    load back (Keras 3.15 and a MultiHeadAttention, or a layer of another package: see
    :func:`_unreloadable`), it is quantized again with those layers float, and the note says so.
    """
    kind = KERAS_KINDS[mode]
    kept = []
    with tempfile.TemporaryDirectory(prefix="weightkit-keras-quantize-") as directory:
        try:
            with quiet_export(verbose):
                try:
                    path, reloaded = _quantized_file(keras_model, kind, directory, mode)
                except Exception:  # noqa: BLE001 - retried without the layers Keras cannot reload
                    kept, excluded = _unreloadable(keras_model)
                    if not kept:
                        raise
                    path, reloaded = _quantized_file(keras_model, kind, directory, mode, excluded)
        except Exception as error:  # noqa: BLE001 - Keras raises many kinds for layers it cannot quantize
            return Conversion(mode, error=converter_reason(error), converter="keras.quantize"), None, None
        with open(path, "rb") as handle:
            content = handle.read()
    skipped = keras_skipped(reloaded)
    quantized = [layer.name for layer in walk_layers(reloaded) if getattr(layer, "quantization_mode", None)]
    if not quantized:
        return Conversion(mode, error=f"Keras quantized no layer ({kind} covers Dense, EinsumDense and Embedding); "
                                      f"it left {skipped} in float", converter="keras.quantize"), None, None
    notes = []
    skipped = ", ".join(name for name in (skipped or "").split(", ") if name and name not in kept) or None
    if kept:
        notes.append(f"{', '.join(kept)} left in float: Keras {import_keras().__version__} cannot load the "
                     f"quantized layer back from a .keras file")
    if skipped:
        notes.append(f"Keras does not quantize {skipped}")
    note = f"{mode}: {'; '.join(notes)} (left in float in the .keras file)" if notes else None
    return Conversion(mode, content=content, converter="keras.quantize"), KerasRunner(reloaded), note
