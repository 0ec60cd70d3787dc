"""The first step of a quantization run: the float model as a source, and the inputs every mode is compared on.

:func:`prepare_inputs` turns what the caller gave (a model, a path or a source; a dataset, a data
specification, an array of inputs, or nothing) into a :class:`~.source.ModelSource` and an
:class:`EvaluationSet`: the test split of a dataset, the given inputs, or seeded random inputs.
"""

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from weightkit.analysis.data.batches import n_samples
from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.data.inputs import as_dataset, as_inputs, as_model, is_path
from weightkit.analysis.files.loading import is_saved_model_dir
from weightkit.compress.quantize.sampling import input_sampler, random_inputs
from weightkit.compress.quantize.shapes import fix_to_data
from weightkit.compress.quantize.source import ModelSource, keras_source, saved_model_source

__all__ = ["EvaluationSet", "SANITY", "prepare_inputs", "inputs_of"]

SANITY = "agreement on random inputs is only a sanity check: pass --data for accuracy on real inputs"


@dataclass(frozen=True)
class EvaluationSet:
    """The inputs every mode runs on, and what calibrates the integer modes.

    Attributes
    ----------
    x : ndarray or list of ndarray
        The inputs, ``(n_samples, ...)`` (a list for a model with several inputs).
    description : str
        In words, for the report (``"test split of sklearn:digits (360 samples)"``).
    dataset : Dataset or None
        The labelled dataset, when one was given.
    task : str or None
        The dataset's task; None without labels.
    calibration : ndarray, list of ndarray or None
        The training inputs, or the given inputs; None for random inputs.
    """

    x: Any
    description: str
    dataset: Optional[Dataset]
    task: Optional[str]
    calibration: Any

    def labels_per_output(self, count):
        """The test labels of each of ``count`` outputs, None where there are none."""
        if self.dataset is None:
            return [None] * count
        y = self.dataset.y_test
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        return ys + [None] * (count - len(ys))


def prepare_inputs(model, data, options):
    """``(source, evaluation, notes)``: the model as a source, the inputs it is compared on, and notes so far.

    Parameters
    ----------
    model : keras.Model, ModelSource, str or os.PathLike
    data : Dataset, ndarray, str, os.PathLike or None
    options : QuantizeOptions

    Returns
    -------
    source : ModelSource
        Its variable-size inputs fixed to the data's shape.
    evaluation : EvaluationSet
    notes : list of str
    """
    source = _as_source(model, options.unsafe)
    dataset, inputs = _as_data(data, source, options.seed)
    source, notes = fix_to_data(source, inputs if dataset is None else dataset.x_train)  # (None, None, 3) inputs
    if dataset is not None:
        x = inputs_of(dataset.x_test, source)
        return source, EvaluationSet(x, f"test split of {dataset.source} ({n_samples(x)} samples)", dataset,
                                     dataset.task, dataset.x_train), notes
    if inputs is not None:
        notes.append(f"data without labels: outputs compared on the {n_samples(inputs)} given inputs, which also "
                     "calibrate the integer modes; only agreement and output error are measured, not accuracy")
        return source, EvaluationSet(inputs, f"{n_samples(inputs)} given inputs; no labels", None, None,
                                     inputs), notes
    return source, _random_set(source, options, notes), notes


def _random_set(source, options, notes):
    """Seeded random inputs of the model's input shapes, in the range each input's first reader expects."""
    count = len(source.keras_model.inputs) if source.several else 1
    x = [random_inputs(source.keras_model.inputs[i].shape if source.several else source.input_shape,
                       options.random_samples, options.seed, model=source.keras_model, index=i) for i in range(count)]
    x = x if len(x) > 1 else x[0]
    ranges = "; ".join(sorted({input_sampler(source.keras_model, i)[0] for i in range(count)}))
    notes.append(f"no --data: outputs compared on {options.random_samples} random inputs ({ranges}) of the "
                 f"model's input {'shapes' if count > 1 else 'shape'}; only agreement and output error are "
                 f"measured, not accuracy; {SANITY}")
    return EvaluationSet(x, f"{options.random_samples} random inputs ({ranges}); no labels", None, None, None)


def _as_source(model, unsafe):
    """A :class:`ModelSource` from a source, a Keras model, a model file or a SavedModel folder."""
    if isinstance(model, ModelSource):
        return model
    if is_path(model) and is_saved_model_dir(os.fspath(model)):
        return saved_model_source(os.fspath(model), unsafe=unsafe)
    loaded = as_model(model, unsafe=unsafe)
    return keras_source(loaded.model, path=loaded.path)


def _as_data(data, source, seed):
    """``(dataset, inputs)``: a Dataset (labels, splits) or an array of unlabelled inputs, or neither."""
    if data is None:
        return None, None
    if isinstance(data, Dataset) or is_path(data):
        view = source.keras_model if source.keras_model is not None else source.shape_view()
        return as_dataset(data, view, seed=seed), None
    inputs, _ = as_inputs(data, source.keras_model)  # arrays: no model needed
    return None, inputs_of(list(inputs) if isinstance(inputs, (list, tuple)) else inputs, source)


def inputs_of(x, source):
    """Test inputs as the model takes them: float32 for one input; for several, each array in its own type."""
    if isinstance(x, (list, tuple)):
        dtypes = source.input_dtypes or ["float32"] * len(x)
        arrays = [np.asarray(a, dtype=np.dtype(t) if np.dtype(t).kind in "iub" else np.float32)
                  for a, t in zip(x, dtypes)]
        return arrays if len(arrays) > 1 else arrays[0]
    return np.asarray(x, dtype=np.float32)
