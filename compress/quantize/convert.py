"""Keras model or SavedModel → ``.tflite`` bytes, one mode at a time.

The path that works with Keras 3 on TensorFlow 2.21: ``model.export(dir, format="tf_saved_model")``
once, then ``tf.lite.TFLiteConverter.from_saved_model(dir)`` per mode; ``from_keras_model`` is
the fallback when the export or that conversion fails. The converter prints ``Saved artifact at``
on stdout and C++ log lines on stderr: both are hidden unless ``verbose``; its errors are raised
as exceptions and are never hidden.
"""

import contextlib
import re
import tempfile
from dataclasses import dataclass

import numpy as np

from analysis._tf import import_tensorflow, silenced_stderr, silenced_stdout
from compress.quantize.evaluate import make_interpreter
from compress.quantize.modes import MODES, configure_converter
from compress.quantize.unroll import unrolled_copy

__all__ = ["Conversion", "convert_modes", "convert_mode", "representative_dataset", "converter_reason",
           "float_compute_ops"]

# Ops that move or reinterpret data (or read only a shape): running them on a float tensor is
# not float arithmetic, so they do not break an integer-only model.
_NON_COMPUTE_OPS = {"QUANTIZE", "DEQUANTIZE", "SHAPE"}


@dataclass
class Conversion:
    """The outcome of converting a model in one mode.

    Attributes
    ----------
    mode : str
    content : bytes or None
        The ``.tflite`` flatbuffer, None when the mode failed.
    error : str or None
        One line: why the mode failed.
    converter : str or None
        ``"saved_model"`` or ``"keras"``: which converter entry point produced it.
    """

    mode: str
    content: bytes = None
    error: str = None
    converter: str = None

    @property
    def ok(self):
        return self.content is not None


def _quiet(verbose):
    stack = contextlib.ExitStack()
    if not verbose:
        stack.enter_context(silenced_stdout())
        stack.enter_context(silenced_stderr())
    return stack


def _skip_parenthesized(text, start):
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(text)


def converter_reason(error, limit=240):
    """The converter's reason for a failure, in one line.

    The MLIR converter's messages start with ``<unknown>:0: error: loc(callsite(...)): reason``
    and repeat notes for every call site; keep the first ``error:`` line's reason only.

    Parameters
    ----------
    error : BaseException
    limit : int, default=240
        Longest reason kept (cut with an ellipsis).

    Returns
    -------
    str
    """
    text = str(error)
    lines = [line for line in text.splitlines() if "error:" in line]
    if lines:
        line = lines[0]
        reason = line[line.index("error:") + len("error:"):].strip()
        if reason.startswith("loc("):
            reason = reason[_skip_parenthesized(reason, 3):].lstrip(": ").strip()
        text = reason or line
    text = " ".join(text.split()) or type(error).__name__
    text = re.sub(r"\s*See instructions:.*$", "", text)
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    return f"{type(error).__name__}: {text}"


def representative_dataset(x, n_samples=200, seed=0, dtype=np.float32, names_and_dtypes=None):
    """A seeded random sample of ``x`` as a TFLite representative dataset.

    Parameters
    ----------
    x : ndarray of shape (n, ...)
        Training inputs.
    n_samples : int, default=200
        At most this many samples (all of ``x`` when it has fewer).
    seed : int, default=0
    dtype : numpy dtype, default=float32
        The model input's type: an integer input (token ids) is calibrated with integers.
    names_and_dtypes : (list of str, list of dtype), default=None
        With several inputs (``x`` a list of arrays): each input's signature name and type.

    Returns
    -------
    callable
        A generator function yielding ``[sample]`` with ``sample`` of shape (1, ...), of ``dtype``.
    """
    if isinstance(x, (list, tuple)):  # several inputs: one dict per sample, keyed by the signature's input names
        names, dtypes = names_and_dtypes
        rng = np.random.default_rng(seed)
        count = len(x[0])
        chosen = np.sort(rng.choice(count, size=min(int(n_samples), count), replace=False))
        arrays = [np.asarray(a)[chosen].astype(t) for a, t in zip(x, dtypes)]

        def generate_several():
            for i in range(len(chosen)):
                yield {name: a[i:i + 1] for name, a in zip(names, arrays)}

        return generate_several
    x = np.asarray(x)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(x), size=min(int(n_samples), len(x)), replace=False))
    samples = x[chosen].astype(dtype)

    def generate():
        for sample in samples:
            yield [sample[None]]

    return generate


def float_compute_ops(content):
    """Ops of a ``.tflite`` model that still compute in floating point.

    Parameters
    ----------
    content : bytes

    Returns
    -------
    list of str
        Sorted op names whose outputs are float (QUANTIZE, DEQUANTIZE and SHAPE excepted).
        Empty for a model that is integer throughout.
    """
    interpreter = make_interpreter(content)
    details = getattr(interpreter, "_get_ops_details", None)
    if details is None:  # an interpreter without op introspection: nothing to check
        return []
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    found = set()
    for op in details():
        if op["op_name"] in _NON_COMPUTE_OPS:
            continue
        if any(dtypes.get(int(i), np.dtype(np.int32)).kind == "f" for i in op["outputs"] if int(i) >= 0):
            found.add(op["op_name"])
    return sorted(found)


def _convert(converter, mode, representative, verbose, integer_inputs=False):
    configure_converter(converter, mode, representative, integer_inputs=integer_inputs)
    with _quiet(verbose):
        return converter.convert()


def convert_mode(mode, *, saved_model_dir=None, keras_model=None, representative=None, verbose=False,
                 integer_inputs=False):
    """Convert one model in one mode; never raises for a converter failure.

    Parameters
    ----------
    mode : str
        A key of :data:`~compress.quantize.modes.MODES`.
    saved_model_dir : str, default=None
        Tried first when given.
    keras_model : keras.Model, default=None
        ``from_keras_model`` fallback (or the only path when there is no SavedModel).
    representative : callable, default=None
        From :func:`representative_dataset`; required by the modes that need data.
    verbose : bool, default=False
        Let the converter print.
    integer_inputs : bool, default=False
        The model takes integers: they stay integers in every mode (never quantized).

    Returns
    -------
    Conversion
    """
    tf = import_tensorflow()
    attempts = []
    if saved_model_dir is not None:
        attempts.append(("saved_model", lambda: tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)))
    if keras_model is not None:
        attempts.append(("keras", lambda: tf.lite.TFLiteConverter.from_keras_model(keras_model)))
    first_error = None
    for entry, make in attempts:
        try:
            content = _convert(make(), mode, representative, verbose, integer_inputs)
        except Exception as error:  # noqa: BLE001 - the converter raises many kinds; reported per mode
            first_error = first_error or converter_reason(error)
            continue
        if MODES[mode].integer_only:
            left = float_compute_ops(content)
            if left:
                return Conversion(mode, error=(
                    f"not integer-only: the converter left {', '.join(left)} in float (no "
                    f"{'int16x8' if mode == 'int16x8' else 'int8'} quantization for "
                    f"{'it' if len(left) == 1 else 'them'}); use dynamic or float16, or replace that layer"),
                    converter=entry)
        return Conversion(mode, content=bytes(content), converter=entry)
    return Conversion(mode, error=first_error or "no converter input (neither a SavedModel nor a Keras model)")


@contextlib.contextmanager
def exported_saved_model(keras_model, verbose=False):
    """Yield a temporary SavedModel folder exported from ``keras_model``, or None if export fails.

    Yields
    ------
    directory : str or None
    error : str or None
        The export's reason for failing.
    """
    with tempfile.TemporaryDirectory(prefix="weightkit-savedmodel-") as directory:
        try:
            with _quiet(verbose):
                keras_model.export(directory, format="tf_saved_model", verbose=verbose)
        except Exception as error:  # noqa: BLE001 - fall back to from_keras_model
            yield None, converter_reason(error)
            return
        yield directory, None


def convert_modes(source, modes, *, calibration=None, calibration_samples=200, seed=0, verbose=False,
                  progress=None):
    """Convert a model in every requested mode.

    Parameters
    ----------
    source : ModelSource
    modes : list of str
    calibration : ndarray of shape (n, ...), default=None
        Training inputs for the representative dataset; needed by int8, int8-io and int16x8.
    calibration_samples : int, default=200
    seed : int, default=0
    verbose : bool, default=False
    progress : callable, default=None
        Called as ``progress(done, total, mode)``.

    Returns
    -------
    list of Conversion
        One per mode, in order; failed modes carry their reason.
    """
    dtypes = source.input_dtypes or [source.input_dtype]
    integer_inputs = any(np.dtype(t).kind in "iub" for t in dtypes)
    representative = None
    if calibration is not None:
        representative = representative_dataset(calibration, calibration_samples, seed, dtype=source.input_dtype,
                                                 names_and_dtypes=(source.input_names, dtypes))
    keras_model = source.keras_model
    if keras_model is not None:
        keras_model = unrolled_copy(keras_model) or keras_model
    if source.saved_model_dir is not None:
        context = contextlib.nullcontext((source.saved_model_dir, None))
    else:
        context = exported_saved_model(keras_model, verbose)
    results = []
    with context as (directory, export_error):
        for done, mode in enumerate(modes):
            if progress:
                progress(done, len(modes), f"converting {mode}")
            conversion = convert_mode(mode, saved_model_dir=directory, keras_model=keras_model,
                                      representative=representative, verbose=verbose,
                                      integer_inputs=integer_inputs)
            if not conversion.ok and export_error and directory is None:
                conversion.error = f"{conversion.error} (SavedModel export also failed: {export_error})"
            results.append(conversion)
    return results
