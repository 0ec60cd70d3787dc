"""Shrink trained Keras models: decorrelation regularizer, neuron merging, quantization.

The verbs, each taking a model (a ``keras.Model`` or a path) and returning the new model (or
the ``.tflite`` files) first and a result with ``to_dict()`` second:

- :func:`merge_neurons` ``(model, mode="weights" | "data", data=None, ...) -> (model, report)``;
- :func:`retrain` ``(model, dataset, ...) -> (model, RetrainResult)``;
- :func:`quantize_model` ``(model, modes, data, ...) -> (contents, QuantizationReport)``;
- :func:`fold_linear` ``(model, ...) -> (model, FoldReport)``: layers with no nonlinearity between them, folded;
- :func:`slice_streams` ``(model, x, keep=0.5 | energy=0.99) -> (model, streams)``: a pre-norm transformer's
  residual stream turned to its principal directions and cut (SliceGPT);
- :func:`shrink_model` ``(model, dataset, max_drop=1, ...) -> ShrinkOutcome``: merge, fine-tune and quantize
  to the smallest model within an accuracy budget.

Six subpackages hold the rest: :mod:`weightkit.compress.merge`, :mod:`weightkit.compress.decorrelate`,
:mod:`weightkit.compress.quantize`, :mod:`weightkit.compress.fold`, :mod:`weightkit.compress.stream`,
:mod:`weightkit.compress.shrink`.

Names are imported on first use (PEP 562), so ``import weightkit.compress`` (or one of its light modules, such
as :mod:`weightkit.compress.quantize.modes`) does not load TensorFlow.
"""

from weightkit.analysis._lazy import lazy_names

#: Public name -> the module that defines it, imported on first use.
_LAZY = {
    "DecorrelationRegularizer": "weightkit.compress.decorrelate",
    "RedundancyMonitor": "weightkit.compress.decorrelate",
    "RetrainResult": "weightkit.compress.decorrelate",
    "attach_decorrelation": "weightkit.compress.decorrelate",
    "detach_decorrelation": "weightkit.compress.decorrelate",
    "redundancy_summary": "weightkit.compress.decorrelate",
    "retrain": "weightkit.compress.decorrelate",
    "FoldReport": "weightkit.compress.fold",
    "fold_linear": "weightkit.compress.fold",
    "BaseMergeReport": "weightkit.compress.merge",
    "DataMergeReport": "weightkit.compress.merge",
    "MergeReport": "weightkit.compress.merge",
    "merge_neurons": "weightkit.compress.merge",
    "slice_streams": "weightkit.compress.stream",
    "QuantizationReport": "weightkit.compress.quantize",
    "TFLiteModel": "weightkit.compress.quantize",
    "quantize_model": "weightkit.compress.quantize",
    "write_outputs": "weightkit.compress.quantize",
    "ShrinkOutcome": "weightkit.compress.shrink",
    "shrink_model": "weightkit.compress.shrink",
}

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

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
