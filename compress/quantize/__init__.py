"""Post-training quantization with TFLite/LiteRT and an honest float-versus-quantized comparison.

:func:`quantize_model` converts a model in each mode of :data:`MODES`, runs every ``.tflite`` in
the LiteRT interpreter (batched) and measures size, accuracy, agreement with the float model,
output error and speed; :func:`write_outputs` writes the files. The numeric core
(:mod:`.compare`) takes numpy arrays only.

Names are imported on first use (PEP 562): the mode names (:mod:`.modes`) can be checked without TensorFlow.
"""

import importlib

#: Public name -> the module that defines it, imported on first use.
_LAZY = {
    "DROP_BASES": "weightkit.compress.quantize.compare",
    "OUTPUT_KINDS": "weightkit.compress.quantize.compare",
    "accuracy": "weightkit.compress.quantize.compare",
    "agreement": "weightkit.compress.quantize.compare",
    "choose_export": "weightkit.compress.quantize.compare",
    "decision_threshold": "weightkit.compress.quantize.compare",
    "mean_absolute_error": "weightkit.compress.quantize.compare",
    "output_differences": "weightkit.compress.quantize.compare",
    "output_kind": "weightkit.compress.quantize.compare",
    "per_class_accuracy": "weightkit.compress.quantize.compare",
    "score_drop": "weightkit.compress.quantize.compare",
    "Conversion": "weightkit.compress.quantize.convert",
    "convert_mode": "weightkit.compress.quantize.convert",
    "convert_modes": "weightkit.compress.quantize.convert",
    "converter_reason": "weightkit.compress.quantize.convert",
    "float_compute_ops": "weightkit.compress.quantize.convert",
    "representative_dataset": "weightkit.compress.quantize.convert",
    "TFLiteModel": "weightkit.compress.quantize.evaluate",
    "dequantize_array": "weightkit.compress.quantize.evaluate",
    "make_interpreter": "weightkit.compress.quantize.evaluate",
    "quantize_array": "weightkit.compress.quantize.evaluate",
    "PURE_OPS": "weightkit.compress.quantize.graph_scan",
    "check_saved_model": "weightkit.compress.quantize.graph_scan",
    "unsafe_ops": "weightkit.compress.quantize.graph_scan",
    "DATA_FREE_MODES": "weightkit.compress.quantize.modes",
    "MODES": "weightkit.compress.quantize.modes",
    "MODE_NAMES": "weightkit.compress.quantize.modes",
    "QuantizationMode": "weightkit.compress.quantize.modes",
    "configure_converter": "weightkit.compress.quantize.modes",
    "parse_modes": "weightkit.compress.quantize.modes",
    "write_outputs": "weightkit.compress.quantize.output",
    "quantize_model": "weightkit.compress.quantize.pipeline",
    "random_inputs": "weightkit.compress.quantize.pipeline",
    "ExportChoice": "weightkit.compress.quantize.results",
    "ModeResult": "weightkit.compress.quantize.results",
    "QuantizationReport": "weightkit.compress.quantize.results",
    "ReferenceResult": "weightkit.compress.quantize.results",
    "LayerSensitivity": "weightkit.compress.quantize.sensitivity",
    "SENSITIVITY_MODES": "weightkit.compress.quantize.sensitivity",
    "SensitivityReport": "weightkit.compress.quantize.sensitivity",
    "layer_sensitivity": "weightkit.compress.quantize.sensitivity",
    "mixed_precision": "weightkit.compress.quantize.sensitivity",
    "quantize_sensitivity": "weightkit.compress.quantize.sensitivity_run",
    "fix_to_data": "weightkit.compress.quantize.shapes",
    "ModelSource": "weightkit.compress.quantize.source",
    "keras_source": "weightkit.compress.quantize.source",
    "saved_model_source": "weightkit.compress.quantize.source",
}

__all__ = [
    "Conversion",
    "DATA_FREE_MODES",
    "PURE_OPS",
    "check_saved_model",
    "unsafe_ops",
    "DROP_BASES",
    "ExportChoice",
    "MODES",
    "MODE_NAMES",
    "ModeResult",
    "ModelSource",
    "OUTPUT_KINDS",
    "QuantizationMode",
    "QuantizationReport",
    "ReferenceResult",
    "TFLiteModel",
    "accuracy",
    "agreement",
    "choose_export",
    "configure_converter",
    "convert_mode",
    "convert_modes",
    "converter_reason",
    "decision_threshold",
    "dequantize_array",
    "float_compute_ops",
    "keras_source",
    "make_interpreter",
    "mean_absolute_error",
    "output_differences",
    "output_kind",
    "parse_modes",
    "per_class_accuracy",
    "quantize_array",
    "quantize_model",
    "random_inputs",
    "representative_dataset",
    "saved_model_source",
    "score_drop",
    "write_outputs",
    "LayerSensitivity",
    "SensitivityReport",
    "layer_sensitivity",
    "mixed_precision",
    "quantize_sensitivity",
    "SENSITIVITY_MODES",
    "fix_to_data",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'weightkit.compress.quantize' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
