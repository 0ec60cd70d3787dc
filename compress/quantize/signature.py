"""Run a ``.tflite`` model with several inputs or outputs through its serving signature.

``model.export(format="tf_saved_model")`` names the signature's inputs after the model's input
layers and its outputs ``output_0``, ``output_1``... in model order, so each input tensor is fed
by name (never by position in the interpreter's tensor list) and the outputs come back in model
order. The signature runner resizes the batch itself. Quantized tensors are quantized and
dequantized as in :class:`weightkit.compress.quantize.evaluate.TFLiteModel`; integer inputs without a scale
(token ids) are passed as integers.
"""

import contextlib

import numpy as np

from weightkit.analysis._tf import silenced_stderr
from weightkit.analysis.data.batches import n_samples, rows
from weightkit.compress.quantize.evaluate import dequantize_array, make_interpreter, quantize_array, time_calls

__all__ = ["SignatureModel"]


def _affine(details):
    scale, zero_point = details.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def _to_input(x, details):
    dtype = np.dtype(details["dtype"])
    scale, zero_point = _affine(details)
    if dtype.kind in "iu" and scale != 0.0:
        return quantize_array(x, scale, zero_point, dtype)
    if dtype.kind in "iu":
        return np.rint(np.asarray(x)).astype(dtype)
    return np.asarray(x, dtype=dtype)


def _from_output(y, details):
    dtype = np.dtype(details["dtype"])
    scale, zero_point = _affine(details)
    if dtype.kind in "iu" and scale != 0.0:
        return dequantize_array(y, scale, zero_point)
    return np.asarray(y, dtype=np.float32)


class SignatureModel:
    """A ``.tflite`` model run by signature: a list of inputs in, a list of outputs out.

    Parameters
    ----------
    content : bytes
    input_names : list of str
        The model's input names, in model order (the signature's argument names).
    quiet : bool, default=True
        Hide the interpreter's log lines on stderr.
    """

    def __init__(self, content, input_names, quiet=True):
        self.quiet = quiet
        self.interpreter = make_interpreter(content)
        self.runner = self.interpreter.get_signature_runner()
        self._inputs = self.runner.get_input_details()
        self._outputs = self.runner.get_output_details()
        missing = [name for name in input_names if name not in self._inputs]
        if missing:
            raise ValueError(f"the converted model's signature has inputs {sorted(self._inputs)}, not {missing}")
        self.input_names = list(input_names)
        self.output_keys = sorted(self._outputs, key=lambda key: int(key.rsplit("_", 1)[-1])
                                  if key.rsplit("_", 1)[-1].isdigit() else key)

    def _hidden(self):
        return silenced_stderr() if self.quiet else contextlib.nullcontext()

    def _prepare(self, xs):
        xs = xs if isinstance(xs, list) else [xs]
        return {name: _to_input(x, self._inputs[name]) for name, x in zip(self.input_names, xs)}

    def _run(self, feed):
        with self._hidden():
            return self.runner(**feed)

    def predict(self, xs, batch_size=256):
        """Outputs for ``xs`` (one array per input), batched; a list of float32 arrays, one per output."""
        n = n_samples(xs)
        parts = {key: [] for key in self.output_keys}
        for start in range(0, n, int(batch_size)):
            result = self._run(self._prepare(rows(xs, start, min(n, start + int(batch_size)))))
            for key in self.output_keys:
                parts[key].append(result[key])
        return [_from_output(np.concatenate(parts[key]), self._outputs[key]) for key in self.output_keys]

    def latency_ms(self, xs, repeats=50, warmup=3):
        """Median milliseconds of one call at batch 1."""
        feed = self._prepare(rows(xs, 0, 1))
        return 1000.0 * time_calls(lambda: self._run(feed), repeats, warmup)

    def throughput(self, xs, batch_size=64, repeats=10, warmup=2):
        """Samples per second at ``batch_size`` (the samples repeated to fill the batch)."""
        n = n_samples(xs)
        index = np.arange(batch_size) % n
        feed = self._prepare([x[index] for x in xs] if isinstance(xs, list) else xs[index])
        return batch_size / time_calls(lambda: self._run(feed), repeats, warmup)
