"""Sensitivity and the mixed model for a whole model: the glue between a source and :mod:`.sensitivity`.

:func:`quantize_sensitivity` is the entry point for other packages (a model and its data in, a
:class:`~weightkit.compress.quantize.sensitivity.SensitivityReport` out); :func:`run_sensitivity` is what
:func:`~weightkit.compress.quantize.pipeline.quantize_model` calls with what it has already measured.
"""

import numpy as np

from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.files.loading import walk_layers
from weightkit.compress.quantize.compare import class_threshold, output_kind
from weightkit.compress.quantize.convert import convert_modes
from weightkit.compress.quantize.int16x8 import float32_for_quantizer
from weightkit.compress.quantize.litert_quantizer import calibration_feed, output_tensor_names
from weightkit.compress.quantize.sensitivity import OutputScoring, layer_sensitivity, mixed_precision
from weightkit.compress.quantize.shapes import fix_to_data
from weightkit.compress.quantize.source import output_names

__all__ = ["quantize_sensitivity", "run_sensitivity", "weighted_layers"]


def weighted_layers(keras_model):
    """Names of the leaf layers that hold weights, in model order."""
    from weightkit.analysis._tf import import_keras

    keras = import_keras()
    return [layer.name for layer in walk_layers(keras_model)
            if layer.weights and not isinstance(layer, keras.Model)]


def _no_float32(source, mixed):
    """Why ai-edge-quantizer has nothing to work on: the float32 ``.tflite`` did not convert, and the fix."""
    option = "--mixed" if mixed else "--sensitivity"
    compute = sorted({str(getattr(getattr(layer, "dtype_policy", None), "compute_dtype", "float32"))
                      for layer in walk_layers(source.keras_model) if layer.weights} - {"float32"})
    if compute:
        return (f"{source.name}: {option} quantizes the model's float32 .tflite, which did not convert: its layers "
                f"compute in {', '.join(compute)} (a mixed-precision policy), whose ops TFLite's builtins do not take; "
                "save a float32 copy (rebuild it under keras.mixed_precision.set_global_policy('float32') and copy the "
                "weights) and quantize that.")
    return (f"{source.name}: {option} quantizes the model's float32 .tflite, which did not convert (see the float32 "
            f"mode's reason without {option}); quantize without {option} to see it.")


def _scorings(source, references, labels, kind, threshold, task):
    """One :class:`OutputScoring` per output: the first with the pipeline's kind, the others as in its per-output table."""
    names = output_names(source, len(references))
    activations = output_activations(source.keras_model) if len(references) > 1 else []
    scorings = [OutputScoring(names[0], references[0], labels[0], kind, threshold)]
    for k in range(1, len(references)):
        reference, y = references[k], labels[k]
        if y is not None:
            task_k = "classification" if np.issubdtype(np.asarray(y).dtype, np.integer) else "regression"
        else:
            task_k = "classification" if k < len(activations) and activations[k] in ("softmax", "sigmoid") else None
        width = int(reference.shape[-1]) if reference.ndim > 1 else 1
        kind_k = output_kind(width, task_k)
        scorings.append(OutputScoring(names[k], reference, y, kind_k, class_threshold(reference, kind_k)))
    return scorings


def _output_writers(source, float_content):
    """``{layer name: [tensor names of the model outputs it writes]}`` in the float ``.tflite``."""
    try:
        graph = ModelGraph(source.keras_model)
    except (WeightkitError, AttributeError):
        return {}
    writers = {}
    for tid, tensor in zip(graph.output_ids, output_tensor_names(float_content)):
        node = graph.producer(tid)
        if node is not None:
            writers.setdefault(node.layer.name, []).append(tensor)
    return writers


def run_sensitivity(source, float_content, calibration, x, reference, *, y=None, kind="multiclass", threshold=0.5,
                    task=None, mixed=False, max_drop=1.0, calibration_samples=200, seed=0, mode="int8", progress=None):
    """``(SensitivityReport, mixed .tflite bytes or None)`` for a Keras source.

    Parameters
    ----------
    source : ModelSource
        A Keras model, one or several inputs and outputs.
    float_content : bytes
        Its float32 ``.tflite`` model.
    calibration : ndarray or list of ndarray
        Training inputs (one array per input).
    x : ndarray or list of ndarray
        Evaluation inputs.
    reference : ndarray or list of ndarray
        The float model's outputs on ``x``, one array per output.
    y : ndarray or list, default=None
        Labels, one entry (or None) per output.
    kind, threshold : str, float
        Of the first output; the others' are found as the pipeline's per-output table does.
    task : {"classification", "regression"}, default=None
        The data's task (for the first output).
    mode : {"int8", "int4", "int16x8"}, default="int8"
        Each layer's recipe (:data:`~weightkit.compress.quantize.sensitivity.SENSITIVITY_MODES`); the mixed
        model quantizes its other layers the same way.
    """
    if source.keras_model is None:
        raise WeightkitError(f"{source.name}: --sensitivity needs the Keras model (a SavedModel was given); "
                             "quantize the .keras file.")
    if calibration is None:
        raise WeightkitError("--sensitivity: needs calibration data; pass --data DATA (training inputs).")
    if float_content is None:
        raise WeightkitError(_no_float32(source, mixed))
    references = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    labels = list(y) if isinstance(y, (list, tuple)) else [y]
    labels += [None] * (len(references) - len(labels))
    feed = calibration_feed(float_content, calibration, source, calibration_samples, seed)
    report = layer_sensitivity(float_content, weighted_layers(source.keras_model), feed, x,
                               _scorings(source, references, labels, kind, threshold, task),
                               input_names=source.input_names if source.several else None,
                               output_tensors=_output_writers(source, float_content), mode=mode, progress=progress)
    content = mixed_precision(report, max_drop=max_drop)[0] if mixed else None
    return report, content


def quantize_sensitivity(model, data, *, mixed=False, max_drop=1.0, calibration_samples=200, seed=0, mode="int8"):
    """Per-layer sensitivity (int8, int4 or int16x8) of a Keras model on its data (and the mixed model within ``max_drop``).

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        One or several inputs and outputs.
    data : Dataset, str or os.PathLike
        Labelled data fitted to the model (a :class:`weightkit.analysis.data.datasets.Dataset` or a specification).
    mixed : bool, default=False
    max_drop : float, default=1.0
        Accuracy drop in points allowed for the mixed model.
    calibration_samples : int, default=200
    seed : int, default=0
    mode : {"int8", "int4", "int16x8"}, default="int8"

    Returns
    -------
    report : SensitivityReport
        ``report.layers`` most sensitive first; ``report.mixed`` when ``mixed``.
    mixed_content : bytes or None
        The mixed ``.tflite`` model.

    Examples
    --------
    >>> report, _ = quantize_sensitivity(model, "sklearn:digits")  # doctest: +SKIP
    >>> [(row.name, row.accuracy_drop) for row in report.layers]  # doctest: +SKIP
    """
    from weightkit.analysis.data.inputs import as_dataset, as_model
    from weightkit.compress.quantize.source import keras_source

    loaded = as_model(model)
    dataset = as_dataset(data, loaded.model, seed=seed)
    source, _ = fix_to_data(keras_source(loaded.model, path=loaded.path), dataset.x_train)
    (conversion,) = convert_modes(source, ["float32"])
    if not conversion.ok:
        raise WeightkitError(f"{source.name}: the float32 TFLite conversion failed ({conversion.error}).")
    content = float32_for_quantizer([conversion], source)  # unrolled where the converter fused a recurrent op
    x = dataset.x_test if isinstance(dataset.x_test, (list, tuple)) else np.asarray(dataset.x_test, np.float32)
    references = source.predict(x)
    references = references if isinstance(references, list) else [references]
    kind = output_kind(int(references[0].shape[-1]) if references[0].ndim > 1 else 1, dataset.task)
    return run_sensitivity(source, content, dataset.x_train, x, references,
                           y=dataset.y_test, kind=kind, threshold=class_threshold(references[0], kind),
                           task=dataset.task, mixed=mixed, max_drop=max_drop,
                           calibration_samples=calibration_samples, seed=seed, mode=mode)
