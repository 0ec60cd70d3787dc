"""Sensitivity and the mixed model for a whole model: the glue between a source and :mod:`.sensitivity`.

:func:`quantize_sensitivity` is the entry point for other packages (a model and its data in, a
:class:`~compress.quantize.sensitivity.SensitivityReport` out); :func:`run_sensitivity` is what
:func:`~compress.quantize.pipeline.quantize_model` calls with what it has already measured.
"""

import numpy as np

from analysis.errors import WeightkitError
from analysis.loading import walk_layers
from compress.quantize.compare import class_threshold, output_kind
from compress.quantize.convert import convert_modes, representative_dataset
from compress.quantize.sensitivity import layer_sensitivity, mixed_precision

__all__ = ["quantize_sensitivity", "run_sensitivity", "weighted_layers"]


def weighted_layers(keras_model):
    """Names of the leaf layers that hold weights, in model order."""
    from analysis._tf import import_keras

    keras = import_keras()
    return [layer.name for layer in walk_layers(keras_model)
            if layer.weights and not isinstance(layer, keras.Model)]


def run_sensitivity(source, float_content, calibration, x, reference, *, y=None, kind="multiclass", threshold=0.5,
                    mixed=False, max_drop=1.0, calibration_samples=200, seed=0, progress=None):
    """``(SensitivityReport, mixed .tflite bytes or None)`` for a one-input Keras source."""
    if source.keras_model is None or source.several:
        raise WeightkitError(f"{source.name}: --sensitivity needs a Keras model with one input and one output; "
                             "quantize the .keras file (several inputs or outputs are not supported there yet).")
    if calibration is None:
        raise WeightkitError("--sensitivity: needs calibration data; pass --data DATA (training inputs).")
    sample = representative_dataset(calibration, calibration_samples, seed)
    samples = [batch[0][0] for batch in sample()]
    report = layer_sensitivity(float_content, weighted_layers(source.keras_model), np.stack(samples), x, reference,
                               y=y, kind=kind, threshold=threshold, progress=progress)
    content = mixed_precision(report, max_drop=max_drop)[0] if mixed else None
    return report, content


def quantize_sensitivity(model, data, *, mixed=False, max_drop=1.0, calibration_samples=200, seed=0):
    """Per-layer int8 sensitivity of a Keras model on its data (and the mixed model within ``max_drop``).

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        One input, one output.
    data : Dataset, str or os.PathLike
        Labelled data fitted to the model (a :class:`analysis.data.Dataset` or a specification).
    mixed : bool, default=False
    max_drop : float, default=1.0
        Accuracy drop in points allowed for the mixed model.
    calibration_samples : int, default=200
    seed : int, default=0

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
    from analysis.inputs import as_dataset, as_model
    from compress.quantize.source import keras_source

    loaded = as_model(model)
    source = keras_source(loaded.model, path=loaded.path)
    dataset = as_dataset(data, loaded.model, seed=seed)
    (conversion,) = convert_modes(source, ["float32"])
    if not conversion.ok:
        raise WeightkitError(f"{source.name}: the float32 TFLite conversion failed ({conversion.error}).")
    x = np.asarray(dataset.x_test, np.float32)
    reference = source.predict(x)
    kind = output_kind(int(reference.shape[-1]) if reference.ndim > 1 else 1, dataset.task)
    return run_sensitivity(source, conversion.content, dataset.x_train, x, reference, y=dataset.y_test, kind=kind,
                           threshold=class_threshold(reference, kind), mixed=mixed, max_drop=max_drop,
                           calibration_samples=calibration_samples, seed=seed)
