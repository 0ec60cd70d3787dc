"""Keras model or SavedModel → ``.tflite`` bytes, one mode at a time.

The path that works with Keras 3 on TensorFlow 2.21: ``model.export(dir, format="tf_saved_model")``
once, then ``tf.lite.TFLiteConverter.from_saved_model(dir)`` per mode; ``from_keras_model`` is
the fallback when the export or that conversion fails. The converter prints ``Saved artifact at``
on stdout and C++ log lines on stderr: both are hidden unless ``verbose``; its errors are raised
as exceptions and are never hidden.
"""

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass

import numpy as np

from weightkit.analysis._tf import import_tensorflow, silenced_stderr, silenced_stdout
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.io import full_disk_errno
from weightkit.analysis.files.loading import walk_layers
from weightkit.compress.quantize.diagnose import describe, flex_ops, float_ops, layer_in
from weightkit.compress.quantize.fused import allocation_error, fused_op_counts
from weightkit.compress.quantize.fused_plan import recurrent_plan
from weightkit.compress.quantize.modes import MODES, configure_converter
from weightkit.compress.quantize.lean_ops import fewer_ops
from weightkit.compress.quantize.norms import integer_friendly_norms, norms_note
from weightkit.compress.quantize.rotary import attention_note, integer_friendly_attention
from weightkit.compress.quantize.unroll import UNROLL_MAX_STEPS

__all__ = ["UNROLL_MAX_STEPS", "Conversion", "convert_mode", "convert_modes", "converter_reason", "float_compute_ops",
           "representative_dataset"]

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
        Which converter entry point produced it: ``"saved_model"``, ``"keras"``, ``"fused"`` (a
        SavedModel of static batch 1 whose LSTM layers became TFLite's fused recurrent op) or
        ``"static_batch"`` (a frozen function of batch 1, for recurrent layers too long to
        unroll); ``+select_tf_ops`` when only TensorFlow ops (Flex) made it convert.
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


def converter_reason(error, limit=240, layer_names=()):
    """The converter's reason for a failure, in one line.

    The MLIR converter's messages start with ``<unknown>:0: error: loc(callsite(...)): reason``
    and repeat notes for every call site; keep the first ``error:`` line's reason only.

    Parameters
    ----------
    error : BaseException
    limit : int, default=240
        Longest reason kept (cut with an ellipsis).
    layer_names : collection of str, default=()
        The model's layers: the one named in the error's location leads the reason.

    Returns
    -------
    str
    """
    text = str(error)
    layer = layer_in(text, layer_names) if layer_names else None
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
    return (f"layer {layer}: " if layer else "") + f"{type(error).__name__}: {text}"


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
        Empty for a model that is integer throughout. :func:`~weightkit.compress.quantize.diagnose.float_ops`
        also names their layers.
    """
    return sorted({op for op, _ in float_ops(content)})


def _convert(converter, mode, representative, verbose, integer_inputs=False, select_tf_ops=False):
    configure_converter(converter, mode, representative, integer_inputs=integer_inputs)
    if select_tf_ops:
        tf = import_tensorflow()
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with _quiet(verbose):
        return converter.convert()


def _not_integer(mode, content, layer_names, entry):
    left = float_ops(content, layer_names)
    if not left:
        return None
    ops = {op for op, _ in left}
    return Conversion(mode, error=(
        f"not integer-only: the converter left {describe(left)} in float (no "
        f"{'int16x8' if mode == 'int16x8' else 'int8'} quantization for {'it' if len(ops) == 1 else 'them'}); "
        "use dynamic or float16, or replace that layer"), converter=entry)


def convert_mode(mode, *, saved_model_dir=None, keras_model=None, representative=None, verbose=False,
                 integer_inputs=False, static_function=None, layer_names=(), select_tf_ops=True, graph_def=None):
    """Convert one model in one mode; never raises for a converter failure.

    Parameters
    ----------
    mode : str
        A key of :data:`~weightkit.compress.quantize.modes.MODES`.
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
    static_function : tf.types.experimental.ConcreteFunction, default=None
        A frozen function of static batch 1, tried last (recurrent layers kept rolled).
    layer_names : collection of str, default=()
        The model's layers, to name the one a failure comes from.
    select_tf_ops : bool, default=True
        As a last resort for a float mode, let TensorFlow ops (Flex) into the model; the
        Conversion's ``converter`` then ends in ``+select_tf_ops``.
    graph_def : (GraphDef, list of (str, list of int), list of str), default=None
        A frozen graph with its input names and shapes and output names, tried first
        (``tf.compat.v1.lite.TFLiteConverter``; the fused SimpleRNN's path).

    Returns
    -------
    Conversion
    """
    tf = import_tensorflow()
    attempts = []
    if graph_def is not None:
        frozen, inputs, outputs = graph_def
        attempts.append(("graph_def", lambda: tf.compat.v1.lite.TFLiteConverter(
            frozen, None, None, input_arrays_with_shape=inputs, output_arrays=outputs)))
    if saved_model_dir is not None:
        attempts.append(("saved_model", lambda: tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)))
    if keras_model is not None:
        attempts.append(("keras", lambda: tf.lite.TFLiteConverter.from_keras_model(keras_model)))
    if static_function is not None and not MODES[mode].needs_data:
        # TF 2.21's integer quantizer kills the process on a rolled while loop: float modes only.
        attempts.append(("static_batch", lambda: tf.lite.TFLiteConverter.from_concrete_functions([static_function])))
    first_error = None
    for entry, make in attempts:
        try:
            content = _convert(make(), mode, representative, verbose, integer_inputs)
        except Exception as error:  # noqa: BLE001 - the converter raises many kinds; reported per mode
            _raise_if_full(error, tempfile.gettempdir())
            first_error = first_error or converter_reason(error, layer_names=layer_names)
            continue
        if MODES[mode].integer_only:
            failed = _not_integer(mode, content, layer_names, entry)
            if failed is not None:
                return failed
        return Conversion(mode, content=bytes(content), converter=entry)
    if select_tf_ops and attempts and not MODES[mode].integer_only:
        entry, make = attempts[0]
        try:
            content = _convert(make(), mode, representative, verbose, integer_inputs, select_tf_ops=True)
        except Exception:  # noqa: BLE001 - the first reason is the one to report
            content = None
        if content is not None:
            kept = flex_ops(content)
            return Conversion(mode, error=(
                f"{first_error}; converts only with SELECT_TF_OPS (TensorFlow ops {', '.join(kept) or 'kept'}), "
                "which needs a LiteRT build with the Flex delegate, not the one here, so it was not measured"),
                converter=f"{entry}+select_tf_ops")
    return Conversion(mode, error=first_error or "no converter input (neither a SavedModel nor a Keras model)")


@contextlib.contextmanager
def exported_saved_model(keras_model, verbose=False, input_signature=None):
    """Yield a temporary SavedModel folder exported from ``keras_model``, or None if export fails.

    Normalization layers and keras-hub's rotary attention are exported as ops with int8 kernels
    (:mod:`weightkit.compress.quantize.norms`, :mod:`weightkit.compress.quantize.rotary`), and Dense,
    Reshape and MultiHeadAttention as fewer ops (:mod:`weightkit.compress.quantize.lean_ops`).

    Parameters
    ----------
    keras_model : keras.Model
    verbose : bool, default=False
    input_signature : list of tf.TensorSpec, default=None
        The serving function's inputs (a static batch for the fused recurrent ops); Keras' own
        (batch unknown) when None.

    Yields
    ------
    directory : str or None
    error : str or None
        The export's reason for failing.
    """
    with tempfile.TemporaryDirectory(prefix="weightkit-savedmodel-") as directory:
        try:
            with _quiet(verbose), integer_friendly_norms(keras_model), integer_friendly_attention(keras_model), \
                    fewer_ops(keras_model):
                keras_model.export(directory, format="tf_saved_model", verbose=verbose,
                                   input_signature=input_signature)
        except Exception as error:  # noqa: BLE001 - fall back to from_keras_model
            _raise_if_full(error, directory)
            yield None, converter_reason(error)
            return
        yield directory, None


def _raise_if_full(error, directory):
    """A full disk is not a converter's failure: say so in one line, for every mode at once."""
    code = full_disk_errno(error)
    if code is not None:
        raise WeightkitError(f"{directory}: no space left on device ({os.strerror(code).lower()}) while exporting "
                             "the model for the TFLite converter; free space in that folder or set TMPDIR to a "
                             "folder with room.") from error


def convert_modes(source, modes, *, calibration=None, calibration_samples=200, seed=0, verbose=False,
                  progress=None, notes=None, fuse=True):
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
    notes : list, default=None
        Receives a sentence on how recurrent layers were converted.
    fuse : bool, default=True
        Convert LSTM and SimpleRNN layers to TFLite's fused recurrent ops where they can be
        (:mod:`weightkit.compress.quantize.fused_plan`); False unrolls them (up to 64 steps) as before, for a
        tool that reads the model op by op (ai-edge-quantizer has no fused LSTM support).

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
    keras_model, layer_names, plan = source.keras_model, (), None
    if keras_model is not None:
        layer_names = [layer.name for layer in walk_layers(keras_model)]
        plan = recurrent_plan(keras_model, source.input_shape, None if fuse else "fusing not asked for (fuse=False)")
    settings = {"representative": representative, "verbose": verbose, "integer_inputs": integer_inputs,
                "layer_names": layer_names}
    results = []
    with contextlib.ExitStack() as stack:
        fused_input = None
        if plan is not None and plan.fused_graph is not None:
            fused_input = {"graph_def": plan.fused_graph}
        elif plan is not None and plan.fused_model is not None:
            fused_dir, error = stack.enter_context(exported_saved_model(plan.fused_model, verbose,
                                                                        plan.fused_signature))
            if fused_dir is None:
                plan.refuse(f"the export at a static batch failed: {error}")
            else:
                fused_input = {"saved_model_dir": fused_dir}
        standard = None
        for done, mode in enumerate(modes):
            if progress:
                progress(done, len(modes), f"converting {mode}")
            conversion = _fused_conversion(mode, fused_input, plan, settings) if fused_input else None
            if conversion is None and plan is not None and plan.rolled_integer(mode):
                conversion = Conversion(mode, error=plan.integer_failure(mode))  # fails in TF 2.21: not tried
            if conversion is None:
                standard = standard or _StandardPath(stack, source, plan, verbose)
                conversion = standard.convert(mode, settings)
            results.append(conversion)
    if plan is not None and notes is not None:
        notes.extend(plan.notes())
    if notes is not None and keras_model is not None and any(MODES[m].integer_only for m in modes):
        notes.extend(norms_note(keras_model) + attention_note(keras_model))
    return results


def _fused_conversion(mode, fused_input, plan, settings):
    """The mode converted from the fused export, or None (recorded in ``plan``) when it did not come out fused."""
    if plan.known_unfused(mode):
        return None
    conversion = convert_mode(mode, select_tf_ops=False, **fused_input, **settings)
    if not conversion.ok:
        plan.not_fused(mode, conversion.error)
        return None
    counts = fused_op_counts(conversion.content)
    if not counts:
        plan.not_fused(mode, "the converter did not fuse the exported recurrent function")
        return None
    failed = allocation_error(conversion.content)
    if failed:
        plan.not_fused(mode, f"LiteRT cannot run the fused model: {failed}")
        return None
    plan.fused_modes[mode] = counts
    conversion.converter = "fused"
    return conversion


class _StandardPath:
    """The SavedModel export of the model (recurrent layers unrolled or kept rolled), made on first need."""

    def __init__(self, stack, source, plan, verbose):
        self.source, self.plan = source, plan
        self.keras_model, self.static = source.keras_model, None
        if plan is not None:
            self.keras_model, self.static, _ = plan.fallback()
        if source.saved_model_dir is not None:
            self.directory, self.export_error = source.saved_model_dir, None
        else:
            self.directory, self.export_error = stack.enter_context(exported_saved_model(self.keras_model, verbose))

    def convert(self, mode, settings):
        conversion = convert_mode(mode, saved_model_dir=self.directory, keras_model=self.keras_model,
                                  static_function=self.static, **settings)
        if not conversion.ok and self.static is not None and MODES[mode].needs_data:
            conversion.error = self.plan.integer_failure(mode)
        elif not conversion.ok and settings["integer_inputs"] and mode == "int16x8" and \
                "Empty min/max" in conversion.error:
            conversion.error = ("TF 2.21's 16x8 quantizer tries to quantize the integer input (token ids) and "
                                "fails; integer inputs are never quantized here: use int8")
        elif not conversion.ok and self.export_error and self.directory is None:
            conversion.error = f"{conversion.error} (SavedModel export also failed: {self.export_error})"
        return conversion
