"""Per-layer quantization sensitivity and the smallest mixed-precision model within a drop.

One layer at a time is quantized (int8 weights and activations) in the float32 ``.tflite``
model, every other layer kept float, with LiteRT's post-conversion quantizer
(``ai-edge-quantizer``: a static a8w8 recipe whose regex matches only that layer's ops; the
float model is calibrated once). Each layer's accuracy drop, agreement with the float model and
mean output error are measured on the evaluation inputs. :func:`mixed_precision` then keeps the
k most sensitive layers float and quantizes the rest, for the smallest k whose drop is within
``max_drop``.

The ops of a layer are found by the layer path in their output tensor names
(``model_1/dense_1/MatMul``: the export scope suffixes every name with ``_1``).
"""

import contextlib
import re
from dataclasses import dataclass, field

import numpy as np

from analysis._tf import silenced_stderr, silenced_stdout
from analysis.errors import WeightkitError
from compress.quantize.compare import accuracy, agreement, output_differences, per_element
from compress.quantize.evaluate import TFLiteModel

__all__ = ["LayerSensitivity", "SensitivityReport", "layer_sensitivity", "mixed_precision", "sensitivity_key"]


@dataclass
class LayerSensitivity:
    """What quantizing one layer alone does to the model's outputs.

    Attributes
    ----------
    name : str
    mode : str
        ``"int8"`` (int8 weights and activations of that layer's ops).
    accuracy_drop : float or None
        Points (100 × (float accuracy − accuracy)); None without labels.
    agreement : float
        Share of samples with the float model's class (or within 1 % for regression).
    mean_abs_diff : float
        Mean |output − float output|.
    bytes : int
        Size of the model with that layer quantized.
    """

    name: str
    mode: str
    accuracy_drop: float
    agreement: float
    mean_abs_diff: float
    bytes: int

    def to_dict(self):
        return {"name": self.name, "mode": self.mode, "accuracy_drop": _clean(self.accuracy_drop),
                "agreement": _clean(self.agreement), "mean_abs_diff": _clean(self.mean_abs_diff),
                "bytes": int(self.bytes)}


@dataclass
class SensitivityReport:
    """Every layer's sensitivity, most sensitive first, and the mixed model when asked for."""

    layers: list = field(default_factory=list)
    basis: str = "accuracy"
    mixed: dict = None

    def to_dict(self):
        return {"basis": self.basis, "layers": [layer.to_dict() for layer in self.layers], "mixed": self.mixed}


def _clean(value):
    return None if value is None or not np.isfinite(value) else float(value)


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(silenced_stdout())
    stack.enter_context(silenced_stderr())
    return stack


def _layer_regex(name):
    return f".*/{re.escape(name)}(_[0-9]+)?/.*"


class _Scorer:
    """Scores a candidate ``.tflite`` against the float outputs (and labels when given)."""

    def __init__(self, x, reference, y, kind, threshold):
        self.x, self.kind, self.threshold = x, kind, threshold
        self.reference, _, self.y = per_element(np.asarray(reference), np.asarray(reference), y)
        self.ref_accuracy = accuracy(self.reference, self.y, kind, threshold) \
            if y is not None and kind != "regression" else None

    def __call__(self, content):
        outputs = TFLiteModel(content).predict(self.x).reshape(self.reference.shape)  # one row per element
        drop = None
        if self.ref_accuracy is not None:
            drop = 100.0 * (self.ref_accuracy - accuracy(outputs, self.y, self.kind, self.threshold))
        agree = agreement(self.reference, outputs, self.kind, threshold=self.threshold)
        return drop, agree, output_differences(self.reference, outputs)[1]


def _quantizer(float_content):
    try:
        from ai_edge_quantizer import quantizer
    except ImportError as error:
        raise WeightkitError("--sensitivity: needs ai-edge-quantizer (pip install 'weightkit[litert-quantizer]')."
                             ) from error
    return quantizer.Quantizer(bytearray(float_content))


def _calibrate(float_content, calibration):
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=float_content).get_signature_list()
    key = next(iter(signatures))
    (name,) = signatures[key]["inputs"]
    q = _quantizer(float_content)
    q.add_static_config(regex=".*", operation_name="*", activation_num_bits=8, weight_num_bits=8)
    with _quiet():
        return q.calibrate({key: [{name: np.asarray(s, np.float32)[None]} for s in calibration]})


def _quantized(float_content, layers, calibration_result):
    q = _quantizer(float_content)
    for name in layers:
        q.add_static_config(regex=_layer_regex(name), operation_name="*", activation_num_bits=8, weight_num_bits=8)
    with _quiet():
        return bytes(q.quantize(calibration_result).quantized_model)


def sensitivity_key(row):
    """How much a layer changes the model, in points: the larger of its accuracy drop and its disagreement.

    Accuracy alone can hide a layer that flips many outputs both ways (a recurrent layer at 0.94
    agreement and no accuracy drop); the mean output error breaks ties.
    """
    return max(row.accuracy_drop or 0.0, 100.0 * (1.0 - row.agreement)), row.mean_abs_diff


def layer_sensitivity(float_content, layer_names, calibration, x, reference, *, y=None, kind="multiclass",
                      threshold=0.5, progress=None):
    """Quantize each layer alone (int8) in a float ``.tflite`` model and measure what it costs.

    Parameters
    ----------
    float_content : bytes
        The float32 ``.tflite`` model (one input).
    layer_names : list of str
        The Keras layers to try (those with weights).
    calibration : ndarray of shape (n, ...)
        Calibration inputs (a seeded sample of the training inputs).
    x : ndarray of shape (m, ...)
        Evaluation inputs.
    reference : ndarray of shape (m, ...)
        The float model's outputs on ``x``.
    y : ndarray of shape (m,), default=None
        Labels; without them the drop is disagreement in points.
    kind : {"multiclass", "binary", "regression"}, default="multiclass"
    threshold : float, default=0.5
    progress : callable, default=None
        Called as ``progress(done, total, what)``.

    Returns
    -------
    SensitivityReport
        Layers most sensitive first (:func:`sensitivity_key`); the calibration is kept on the
        report's private ``_state`` for :func:`mixed_precision`.
    """
    score = _Scorer(np.asarray(x, np.float32), reference, y, kind, threshold)
    result = _calibrate(float_content, calibration)
    rows = []
    for done, name in enumerate(layer_names):
        if progress:
            progress(done, len(layer_names), f"sensitivity of {name}")
        content = _quantized(float_content, [name], result)
        drop, agree, diff = score(content)
        rows.append(LayerSensitivity(name, "int8", drop, agree, diff, len(content)))
    rows.sort(key=sensitivity_key, reverse=True)
    report = SensitivityReport(rows, basis="accuracy" if score.ref_accuracy is not None else "agreement")
    report._state = (float_content, result, score)
    return report


def mixed_precision(report, max_drop=1.0):
    """The smallest model that keeps the k most sensitive layers float and quantizes the rest (int8).

    Parameters
    ----------
    report : SensitivityReport
        From :func:`layer_sensitivity`.
    max_drop : float, default=1.0
        Largest accuracy drop in points (disagreement in points without labels).

    Returns
    -------
    content : bytes
        The mixed ``.tflite`` model (the one with the fewest float layers within ``max_drop``;
        everything float when no k fits).
    summary : dict
        ``kept_float`` (layer names), ``quantized``, ``drop``, ``bytes``; also set as
        ``report.mixed``.
    """
    float_content, result, score = report._state
    order = [row.name for row in report.layers]
    chosen = None
    for k in range(len(order) + 1):
        quantized = order[k:]
        content = _quantized(float_content, quantized, result) if quantized else float_content
        drop, agree, diff = score(content)
        value = drop if drop is not None else 100.0 * (1.0 - agree)
        chosen = (content, {"kept_float": order[:k], "quantized": quantized, "drop": float(value),
                            "agreement": float(agree), "mean_abs_diff": float(diff), "bytes": len(content)})
        if value <= max_drop:
            break
    report.mixed = chosen[1]
    return chosen
