"""Per-layer quantization sensitivity and the smallest mixed-precision model within a drop.

One layer at a time is quantized (int8 weights and activations; or int4 weights, or int16
activations: :data:`SENSITIVITY_MODES`) in the float32 ``.tflite`` model, every other layer kept
float, with LiteRT's post-conversion quantizer
(``ai-edge-quantizer``: a static a8w8 recipe whose regex matches only that layer's ops; the
float model is calibrated once, see :mod:`.litert_quantizer`). Each layer's accuracy drop,
agreement with the float model and mean output error are measured on the evaluation inputs.
A model with several outputs is scored on every output: agreement and output error are the
mean over the outputs, the accuracy drop the mean over the labelled classification outputs
(:data:`COMBINED`), and each output's own numbers are kept beside them. :func:`mixed_precision` then keeps the
k most sensitive layers float and quantizes the rest, for the smallest k whose drop is within
``max_drop``.

The ops of a layer are found by the layer path in their output tensor names
(``model_1/dense_1/MatMul``: the export scope suffixes every name with ``_1``).
"""

import re
from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.quantize.compare import accuracy, agreement, output_differences, per_element
from weightkit.compress.quantize.evaluate import TFLiteModel
from weightkit.compress.quantize.litert_quantizer import calibrate, quantize_with
from weightkit.compress.quantize.signature import SignatureModel

__all__ = ["COMBINED", "SENSITIVITY_MODES", "LayerSensitivity", "OutputScoring", "SensitivityReport",
           "layer_sensitivity", "mixed_precision", "sensitivity_key"]

#: Per-layer recipes: mode -> (activation bits, weight bits); weights per channel, activations per tensor.
SENSITIVITY_MODES = {"int8": (8, 8), "int4": (8, 4), "int16x8": (16, 8)}

COMBINED = ("mean over the outputs: agreement and mean_abs_diff of every output, accuracy_drop of the labelled "
            "classification outputs")


@dataclass
class LayerSensitivity:
    """What quantizing one layer alone does to the model's outputs.

    Attributes
    ----------
    name : str
    mode : str
        A key of :data:`SENSITIVITY_MODES`: ``"int8"`` (int8 weights and activations of that
        layer's ops), ``"int4"`` (int4 weights, int8 activations) or ``"int16x8"`` (int8 weights,
        int16 activations).
    accuracy_drop : float or None
        Points (100 × (float accuracy − accuracy)); None without labels. With several outputs,
        the mean over the labelled classification outputs.
    agreement : float
        Share of samples with the float model's class (or within 1 % for regression); with
        several outputs, the mean over the outputs.
    mean_abs_diff : float
        Mean |output − float output| (the mean over the outputs).
    bytes : int
        Size of the model with that layer quantized.
    outputs : dict of str to dict, default=None
        With several outputs: each output's ``accuracy_drop``, ``agreement``, ``mean_abs_diff``.
    """

    name: str
    mode: str
    accuracy_drop: float
    agreement: float
    mean_abs_diff: float
    bytes: int
    outputs: dict = None

    def to_dict(self):
        document = {"name": self.name, "mode": self.mode, "accuracy_drop": _clean(self.accuracy_drop),
                    "agreement": _clean(self.agreement), "mean_abs_diff": _clean(self.mean_abs_diff),
                    "bytes": int(self.bytes)}
        if self.outputs:
            document["outputs"] = {name: {key: _clean(value) for key, value in values.items()}
                                   for name, values in self.outputs.items()}
        return document


@dataclass
class SensitivityReport:
    """Every layer's sensitivity, most sensitive first, and the mixed model when asked for.

    ``combined`` says how several outputs were made one number (:data:`COMBINED`); None for one output.
    """

    layers: list = field(default_factory=list)
    basis: str = "accuracy"
    mixed: dict = None
    combined: str = None
    mode: str = "int8"

    def to_dict(self):
        document = {"basis": self.basis, "mode": self.mode, "layers": [layer.to_dict() for layer in self.layers],
                    "mixed": self.mixed}
        if self.combined:
            document["combined"] = self.combined
        return document


def _clean(value):
    return None if value is None or not np.isfinite(value) else float(value)


def _layer_regex(name):
    return f".*/{re.escape(name)}(_[0-9]+)?/.*"


def _regexes(names, output_tensors):
    """Recipe scopes of layers ``names``: their ops by layer path, and the model outputs they write by tensor name."""
    return [_layer_regex(n) for n in names] + [f"{re.escape(t)}(?![0-9])" for n in names
                                               for t in output_tensors.get(n, ())]


@dataclass
class OutputScoring:
    """How one output is scored: its float outputs on the evaluation inputs, labels, kind and threshold."""

    name: str
    reference: np.ndarray
    y: np.ndarray = None
    kind: str = "multiclass"
    threshold: float = 0.5


class _Scorer:
    """Scores a candidate ``.tflite`` against the float outputs (and labels when given), every output."""

    def __init__(self, x, outputs, input_names=None):
        self.x, self.input_names = x, input_names
        self.shapes = [np.asarray(o.reference).shape for o in outputs]
        self.outputs = []
        for o in outputs:
            reference, _, y = per_element(np.asarray(o.reference), np.asarray(o.reference), o.y)
            labelled = y is not None and o.kind != "regression"
            self.outputs.append((o, reference, y, accuracy(reference, y, o.kind, o.threshold) if labelled else None))
        self.ref_accuracy = next((a for *_, a in self.outputs if a is not None), None)
        self.per_output = None

    def _predict(self, content):
        if self.input_names is not None:
            return SignatureModel(content, self.input_names).predict(self.x)
        return [TFLiteModel(content).predict(self.x)]

    def __call__(self, content):
        """``(accuracy drop or None, agreement, mean |diff|)``, each the mean over the outputs (see :data:`COMBINED`)."""
        scores = {}
        for (o, reference, y, ref_accuracy), shape, candidate in zip(self.outputs, self.shapes, self._predict(content)):
            candidate = per_element(np.asarray(candidate).reshape(shape), np.asarray(candidate).reshape(shape))[0]
            drop = None if ref_accuracy is None else 100.0 * (ref_accuracy - accuracy(candidate, y, o.kind,
                                                                                       o.threshold))
            scores[o.name] = {"accuracy_drop": drop,
                              "agreement": agreement(reference, candidate, o.kind, threshold=o.threshold),
                              "mean_abs_diff": output_differences(reference, candidate)[1]}
        self.per_output = scores if len(scores) > 1 else None
        drops = [v["accuracy_drop"] for v in scores.values() if v["accuracy_drop"] is not None]
        return (float(np.mean(drops)) if drops else None, float(np.mean([v["agreement"] for v in scores.values()])),
                float(np.mean([v["mean_abs_diff"] for v in scores.values()])))


def sensitivity_key(row):
    """How much a layer changes the model, in points: the larger of its accuracy drop and its disagreement.

    Accuracy alone can hide a layer that flips many outputs both ways (a recurrent layer at 0.94
    agreement and no accuracy drop); the mean output error breaks ties.
    """
    return max(row.accuracy_drop or 0.0, 100.0 * (1.0 - row.agreement)), row.mean_abs_diff


def layer_sensitivity(float_content, layer_names, feed, x, outputs, *, input_names=None, output_tensors=None,
                      mode="int8", progress=None):
    """Quantize each layer alone (``mode``) in a float ``.tflite`` model and measure what it costs.

    Parameters
    ----------
    float_content : bytes
        The float32 ``.tflite`` model.
    layer_names : list of str
        The Keras layers to try (those with weights).
    feed : dict
        Calibration inputs by signature and input name
        (:func:`~weightkit.compress.quantize.litert_quantizer.calibration_feed`).
    x : ndarray of shape (m, ...) or list of them
        Evaluation inputs (one array per input when ``input_names`` is given).
    outputs : list of OutputScoring
        One per model output: its float outputs on ``x``, labels (or None: the drop is then
        disagreement in points), kind and threshold.
    input_names : list of str, default=None
        With several inputs or outputs: the signature's input names, in model order.
    output_tensors : dict of str to list of str, default=None
        For each layer that writes a model output, that output's tensor name in the ``.tflite``
        (:func:`~weightkit.compress.quantize.litert_quantizer.output_tensor_names`): the op writing it
        does not carry the layer's name, and is quantized with the layer only through it.
    mode : {"int8", "int4", "int16x8"}, default="int8"
        The recipe each layer is quantized with (:data:`SENSITIVITY_MODES`).
    progress : callable, default=None
        Called as ``progress(done, total, what)``.

    Returns
    -------
    SensitivityReport
        Layers most sensitive first (:func:`sensitivity_key`); the calibration is kept on the
        report's private ``_state`` for :func:`mixed_precision`.
    """
    if mode not in SENSITIVITY_MODES:
        raise WeightkitError(f"--sensitivity-mode {mode}: unknown; expected one of {', '.join(SENSITIVITY_MODES)}.")
    bits = SENSITIVITY_MODES[mode]
    score = _Scorer(x, outputs, input_names)
    result = calibrate(float_content, feed, bits[0])
    rows = []
    for done, name in enumerate(layer_names):
        if progress:
            progress(done, len(layer_names), f"sensitivity of {name}")
        content = quantize_with(float_content, _regexes([name], output_tensors or {}), result, *bits)
        drop, agree, diff = score(content)
        rows.append(LayerSensitivity(name, mode, drop, agree, diff, len(content), score.per_output))
    rows.sort(key=sensitivity_key, reverse=True)
    report = SensitivityReport(rows, basis="accuracy" if score.ref_accuracy is not None else "agreement",
                               combined=COMBINED if len(outputs) > 1 else None, mode=mode)
    report._state = (float_content, result, score, output_tensors or {}, bits)
    return report


def mixed_precision(report, max_drop=1.0):
    """The smallest model that keeps the k most sensitive layers float and quantizes the rest (in the report's mode).

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
    float_content, result, score, output_tensors, bits = report._state
    order = [row.name for row in report.layers]
    chosen = None
    for k in range(len(order) + 1):
        quantized = order[k:]
        content = quantize_with(float_content, _regexes(quantized, output_tensors), result, *bits) if quantized \
            else float_content
        drop, agree, diff = score(content)
        value = drop if drop is not None else 100.0 * (1.0 - agree)
        chosen = (content, {"kept_float": order[:k], "quantized": quantized, "drop": float(value),
                            "agreement": float(agree), "mean_abs_diff": float(diff), "bytes": len(content)})
        if value <= max_drop:
            break
    report.mixed = chosen[1]
    return chosen
