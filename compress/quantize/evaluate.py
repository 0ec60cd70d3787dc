"""Run ``.tflite`` models in the LiteRT interpreter: batched, numpy in and numpy out.

One ``invoke()`` per sample is far slower than resizing the input to a batch once
(``resize_tensor_input`` + ``allocate_tensors``) and invoking per batch; :class:`TFLiteModel`
does the latter, padding the last partial batch so the tensors are allocated once. Quantized
(integer) inputs are quantized and outputs dequantized with the tensors' scale and zero point, so
callers always pass and receive float32; an integer input without a scale (token ids for an
Embedding) takes the values as integers.
"""

import contextlib
import statistics
import time

import numpy as np

from weightkit.analysis._tf import import_tensorflow, silenced_stderr

__all__ = ["make_interpreter", "TFLiteModel", "quantize_array", "dequantize_array", "time_calls"]


def make_interpreter(content, num_threads=None):
    """A LiteRT interpreter for a ``.tflite`` flatbuffer (``tf.lite.Interpreter`` as fallback).

    Parameters
    ----------
    content : bytes
    num_threads : int, default=None
        The interpreter's default when None.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency; TF is the fallback
        Interpreter = import_tensorflow().lite.Interpreter
    return Interpreter(model_content=content, num_threads=num_threads)


def quantize_array(x, scale, zero_point, dtype):
    """Float → integer with a tensor's affine parameters: ``round(x / scale) + zero_point``, clipped.

    Parameters
    ----------
    x : ndarray
    scale : float
    zero_point : int
    dtype : numpy dtype
        int8, uint8 or int16.
    """
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_array(q, scale, zero_point):
    """Integer → float32: ``(q - zero_point) * scale``."""
    return ((np.asarray(q).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def _affine(details):
    scale, zero_point = details.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


class TFLiteModel:
    """A ``.tflite`` model with one input and one output, run on numpy batches.

    Parameters
    ----------
    content : bytes
        The flatbuffer.
    num_threads : int, default=None
    quiet : bool, default=True
        Hide the interpreter's log lines on stderr ("Created TensorFlow Lite XNNPACK delegate")
        while tensors are allocated. Its errors are raised as exceptions either way.

    Attributes
    ----------
    input_dtype, output_dtype : numpy dtype
        The tensors' own types (int8 for an int8-io model).
    input_shape : tuple
        One sample's shape (without the batch).
    """

    def __init__(self, content, num_threads=None, quiet=True):
        self.quiet = quiet
        self.interpreter = make_interpreter(content, num_threads)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"expected a model with one input and one output, got {len(inputs)} and {len(outputs)}")
        self._input, self._output = inputs[0], outputs[0]
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        signature = self._input.get("shape_signature", self._input["shape"])
        # A model converted with a static batch (a frozen function of batch 1) runs at that batch only.
        self.fixed_batch = int(signature[0]) if len(signature) and int(signature[0]) > 0 and \
            int(self._input["shape"][0]) == int(signature[0]) and _static(signature) else None
        self._batch = None

    def _resize(self, batch):
        if self.fixed_batch is not None:
            if self._batch is None:
                with _stderr_hidden(self.quiet):
                    self.interpreter.allocate_tensors()
                self._batch = self.fixed_batch
            return
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [batch, *self.input_shape], strict=False)
            with _stderr_hidden(self.quiet):
                self.interpreter.allocate_tensors()
            self._batch = batch

    def _to_input(self, x):
        scale, zero_point = _affine(self._input)
        if self.input_dtype.kind in "iu" and scale != 0.0:  # a quantized input
            return quantize_array(x, scale, zero_point, self.input_dtype)
        if self.input_dtype.kind in "iu":  # integers of their own (token ids): passed as they are
            return np.rint(np.asarray(x)).astype(self.input_dtype)
        return np.asarray(x, dtype=self.input_dtype)

    def _from_output(self, y):
        scale, zero_point = _affine(self._output)
        if self.output_dtype.kind in "iu" and scale != 0.0:
            return dequantize_array(y, scale, zero_point)
        return np.asarray(y, dtype=np.float32)

    def run_batch(self, x):
        """One ``invoke()`` on a batch already in the input's type; returns the raw output (a copy)."""
        self._resize(len(x))
        # A fused recurrent op (UNIDIRECTIONAL_SEQUENCE_LSTM) keeps its state in variable tensors that persist
        # between invokes; each batch is a new set of sequences, as in Keras.
        self.interpreter.reset_all_variables()
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def predict(self, x, batch_size=256):
        """Outputs for ``x``, batched.

        Parameters
        ----------
        x : ndarray of shape (n, ...)
            Float inputs (quantized here for an integer input).
        batch_size : int, default=256
            Samples per ``invoke()``. The last partial batch is padded, so the tensors are
            allocated once.

        Returns
        -------
        ndarray of shape (n, ...), float32
            Dequantized for an integer output.
        """
        x = self._to_input(x)
        n = len(x)
        if n == 0:
            return np.zeros((0,) + tuple(int(d) for d in self._output["shape"][1:]), np.float32)
        batch = self.fixed_batch or min(int(batch_size), n)
        parts = []
        for start in range(0, n, batch):
            chunk = x[start:start + batch]
            if len(chunk) < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
            parts.append(self.run_batch(chunk)[:min(batch, n - start)])
        return self._from_output(np.concatenate(parts))

    def predict_one_by_one(self, x):
        """Outputs for ``x`` with one ``invoke()`` per sample (the slow way; for comparison)."""
        x = self._to_input(x)
        self._resize(1)
        return self._from_output(np.concatenate([self.run_batch(x[i:i + 1]) for i in range(len(x))]))

    def latency_ms(self, sample, repeats=50, warmup=3):
        """Median milliseconds of one ``invoke()`` at batch 1 over ``repeats`` runs."""
        x = self._to_input(sample[:1])
        self._resize(1)
        return 1000.0 * time_calls(lambda: self.run_batch(x), repeats, warmup)

    def throughput(self, samples, batch_size=64, repeats=10, warmup=2):
        """Samples per second at ``batch_size``, from the median time of ``repeats`` invokes."""
        batch_size = self.fixed_batch or batch_size
        x = self._to_input(_fill_batch(samples, batch_size))
        self._resize(batch_size)
        return batch_size / time_calls(lambda: self.run_batch(x), repeats, warmup)


def _static(signature):
    """A batch fixed in the flatbuffer's own signature: every dimension known (no -1)."""
    return all(int(d) > 0 for d in signature)


def _stderr_hidden(quiet):
    return silenced_stderr() if quiet else contextlib.nullcontext()


def _fill_batch(samples, batch_size):
    samples = np.asarray(samples)
    reps = -(-batch_size // len(samples))
    return np.concatenate([samples] * reps)[:batch_size] if reps > 1 else samples[:batch_size]


def time_calls(function, repeats, warmup=1):
    """Median wall-clock seconds of ``function()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
