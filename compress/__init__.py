"""Shrink trained Keras models: decorrelation regularizer, neuron merging, quantization.

The verbs, each taking a model (a ``keras.Model`` or a path) and returning the new model (or
the ``.tflite`` files) first and a result with ``to_dict()`` second:

- :func:`merge_neurons` ``(model, mode="weights" | "data", data=None, ...) -> (model, report)``;
- :func:`retrain` ``(model, dataset, ...) -> (model, RetrainResult)``;
- :func:`quantize_model` ``(model, modes, data, ...) -> (contents, QuantizationReport)``;
- :func:`fold_linear` ``(model, ...) -> (model, FoldReport)``: layers with no nonlinearity between them, folded;
- :func:`shrink_model` ``(model, dataset, max_drop=1, ...) -> ShrinkOutcome``: merge, fine-tune and quantize
  to the smallest model within an accuracy budget.

Five subpackages hold the rest: :mod:`weightkit.compress.merge`, :mod:`weightkit.compress.decorrelate`,
:mod:`weightkit.compress.quantize`, :mod:`weightkit.compress.fold`, :mod:`weightkit.compress.shrink`.
"""

from weightkit.compress.decorrelate import (
    DecorrelationRegularizer,
    RedundancyMonitor,
    RetrainResult,
    attach_decorrelation,
    detach_decorrelation,
    redundancy_summary,
    retrain,
)
from weightkit.compress.fold import FoldReport, fold_linear
from weightkit.compress.merge import BaseMergeReport, DataMergeReport, MergeReport, merge_neurons
from weightkit.compress.quantize import QuantizationReport, TFLiteModel, quantize_model, write_outputs
from weightkit.compress.shrink import ShrinkOutcome, shrink_model

__all__ = [
    "BaseMergeReport",
    "DataMergeReport",
    "DecorrelationRegularizer",
    "FoldReport",
    "MergeReport",
    "QuantizationReport",
    "RedundancyMonitor",
    "RetrainResult",
    "ShrinkOutcome",
    "TFLiteModel",
    "attach_decorrelation",
    "detach_decorrelation",
    "fold_linear",
    "merge_neurons",
    "quantize_model",
    "redundancy_summary",
    "retrain",
    "shrink_model",
    "write_outputs",
]
