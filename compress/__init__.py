"""Shrink trained Keras models: decorrelation regularizer, neuron merging, quantization.

Three subpackages: :mod:`compress.merge`, :mod:`compress.decorrelate`, :mod:`compress.quantize`.
"""

from compress.decorrelate import (
                                  CombinedRegularizer,
                                  DecorrelationRegularizer,
                                  RedundancyMonitor,
                                  RetrainResult,
                                  attach_decorrelation,
                                  decorrelation_penalty,
                                  detach_decorrelation,
                                  redundancy_summary,
                                  retrain,
)
from compress.merge import DataMergeReport, MergeReport, merge_by_data, merge_redundant
from compress.quantize import QuantizationReport, TFLiteModel, quantize_model, write_outputs

__all__ = [
    "CombinedRegularizer",
    "DataMergeReport",
    "DecorrelationRegularizer",
    "MergeReport",
    "QuantizationReport",
    "RedundancyMonitor",
    "RetrainResult",
    "TFLiteModel",
    "attach_decorrelation",
    "decorrelation_penalty",
    "detach_decorrelation",
    "merge_by_data",
    "merge_redundant",
    "quantize_model",
    "redundancy_summary",
    "retrain",
    "write_outputs",
]
