"""Post-training quantization with TFLite/LiteRT and an honest float-versus-quantized comparison.

:func:`quantize_model` converts a model in each mode of :data:`MODES`, runs every ``.tflite`` in
the LiteRT interpreter (batched) and measures size, accuracy, agreement with the float model,
output error and speed; :func:`write_outputs` writes the files. The numeric core
(:mod:`.compare`) takes numpy arrays only.
"""

from weightkit.compress.quantize.compare import (
                                       DROP_BASES,
                                       OUTPUT_KINDS,
                                       accuracy,
                                       agreement,
                                       choose_export,
                                       decision_threshold,
                                       mean_absolute_error,
                                       output_differences,
                                       output_kind,
                                       per_class_accuracy,
                                       score_drop,
)
from weightkit.compress.quantize.convert import (
                                       Conversion,
                                       convert_mode,
                                       convert_modes,
                                       converter_reason,
                                       float_compute_ops,
                                       representative_dataset,
)
from weightkit.compress.quantize.evaluate import TFLiteModel, dequantize_array, make_interpreter, quantize_array
from weightkit.compress.quantize.graph_scan import PURE_OPS, check_saved_model, unsafe_ops
from weightkit.compress.quantize.modes import (
                                       DATA_FREE_MODES,
                                       MODE_NAMES,
                                       MODES,
                                       QuantizationMode,
                                       configure_converter,
                                       parse_modes,
)
from weightkit.compress.quantize.output import write_outputs
from weightkit.compress.quantize.pipeline import quantize_model, random_inputs
from weightkit.compress.quantize.results import ExportChoice, ModeResult, QuantizationReport, ReferenceResult
from weightkit.compress.quantize.sensitivity import (
    SENSITIVITY_MODES,
    LayerSensitivity,
    SensitivityReport,
    layer_sensitivity,
    mixed_precision,
)
from weightkit.compress.quantize.sensitivity_run import quantize_sensitivity
from weightkit.compress.quantize.shapes import fix_to_data
from weightkit.compress.quantize.source import ModelSource, keras_source, saved_model_source

__all__ = [
    "Conversion", "DATA_FREE_MODES", "PURE_OPS", "check_saved_model", "unsafe_ops", "DROP_BASES", "ExportChoice",
    "MODES", "MODE_NAMES", "ModeResult",
    "ModelSource", "OUTPUT_KINDS", "QuantizationMode", "QuantizationReport", "ReferenceResult", "TFLiteModel",
    "accuracy", "agreement", "choose_export", "configure_converter", "convert_mode",
    "convert_modes", "converter_reason", "decision_threshold", "dequantize_array", "float_compute_ops",
    "keras_source", "make_interpreter", "mean_absolute_error", "output_differences",
    "output_kind", "parse_modes", "per_class_accuracy", "quantize_array",
    "quantize_model", "random_inputs", "representative_dataset", "saved_model_source", "score_drop",
    "write_outputs", "LayerSensitivity", "SensitivityReport", "layer_sensitivity", "mixed_precision",
    "quantize_sensitivity", "SENSITIVITY_MODES", "fix_to_data",
]
