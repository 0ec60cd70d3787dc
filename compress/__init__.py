"""Shrink trained Keras models: decorrelation regularizer, neuron merging, quantization.

The verbs, each taking a model (a ``keras.Model`` or a path) and returning the new model (or
the ``.tflite`` files) first and a result with ``to_dict()`` second:

- :func:`merge_neurons` ``(model, mode="weights" | "data", data=None, ...) -> (model, report)``;
- :func:`retrain` ``(model, dataset, ...) -> (model, RetrainResult)``;
- :func:`quantize_model` ``(model, modes, data, ...) -> (contents, QuantizationReport)``.

Three subpackages hold the rest: :mod:`compress.merge`, :mod:`compress.decorrelate`,
:mod:`compress.quantize`.
"""

from compress.decorrelate import (
    DecorrelationRegularizer,
    RedundancyMonitor,
    RetrainResult,
    attach_decorrelation,
    detach_decorrelation,
    redundancy_summary,
    retrain,
)
from compress.merge import BaseMergeReport, DataMergeReport, MergeReport, merge_neurons
from compress.quantize import QuantizationReport, TFLiteModel, quantize_model, write_outputs

__all__ = [
    "BaseMergeReport",
    "DataMergeReport",
    "DecorrelationRegularizer",
    "MergeReport",
    "QuantizationReport",
    "RedundancyMonitor",
    "RetrainResult",
    "TFLiteModel",
    "attach_decorrelation",
    "detach_decorrelation",
    "merge_neurons",
    "quantize_model",
    "redundancy_summary",
    "retrain",
    "write_outputs",
]
