"""The package's verb: :func:`analyze` a model (or the file it was saved to), weights and, with data, activations.

The building blocks stay public for those who want one layer or one matrix
(:func:`weightkit.analysis.analyze_rows`, :func:`weightkit.analysis.pearson_matrix`, :func:`weightkit.analysis.find_groups`);
this is the front door for a whole model, the one ``weightkit analyze`` uses.
"""

from weightkit.analysis.data.inputs import as_inputs, as_model, as_weights_source
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET
from weightkit.analysis.model_analysis import analyze_model

#: Inputs drawn from ``data`` (:data:`weightkit.analysis.activations.collect.DEFAULT_SAMPLES`, which a test
#: keeps equal: the activation modules are imported only when data is given).
DEFAULT_SAMPLES = 1000

__all__ = ["analyze"]


def analyze(model, *, metric="pearson", threshold=None, layers=None, include_bias=True, data=None,
            samples=DEFAULT_SAMPLES, memory_budget=DEFAULT_MEMORY_BUDGET, progress=None, path=None, notes=(),
            on_layer=None, unsafe=False):
    """Find the redundant neurons of every analyzable layer of a model.

    Parameters
    ----------
    model : keras.Model, weightkit.analysis.files.stored.StoredModel, str or os.PathLike
        Without ``data``, a path is read as data (:func:`weightkit.analysis.files.stored.open_stored`: no
        TensorFlow, no code from the file, one layer in memory); with ``data`` it is loaded with
        :func:`weightkit.analysis.load_model` (safe mode unless ``unsafe``). The result records the path and
        the reader's notes.
    metric : {"pearson", "mad"}, default="pearson"
        The similarity that defines a redundant group (see :func:`weightkit.analysis.find_groups`).
    threshold : float, default=None
        0.9 (Pearson r) or 0.2 (fraction of the layer's median MAD) when None.
    layers : list of str, default=None
        Analyze only these layers or entries (``dense_1``, ``lstm/forget``).
    include_bias : bool, default=True
        Append each neuron's bias to its weight row (the default of every command and verb: merging compares
        rows with the bias, and a neuron's bias is part of what it computes).
    data : Dataset, ndarray, str or os.PathLike, default=None
        Also run ``samples`` inputs through the model (a dataset's training split, an array, or a
        data specification; see :mod:`weightkit.analysis.data.inputs`) and attach each entry's dead neurons and
        activation groups (:func:`weightkit.analysis.attach_activations`), as ``weightkit analyze --data``.
    samples : int, default=1000
        Inputs drawn (seeded) from ``data``.
    memory_budget : int, default=256 MiB
        Working memory for one layer's MAD matrix, in bytes.
    progress : callable, default=None
        Called as ``progress(done, total, name)``.
    path : str, default=None
        Recorded in the result (the model's path when ``model`` is one).
    notes : sequence of str
        Recorded in the result, after the loader's.
    on_layer : callable, default=None
        Called as ``on_layer(layer_analysis)`` while each entry's full matrices are attached
        (see :func:`weightkit.analysis.model_analysis.analyze_model`).
    unsafe : bool, default=False
        Load a model path with its embedded code (Lambda layers, custom classes) when ``data``
        needs the model run; weight analysis alone never runs code from the file.

    Returns
    -------
    ModelAnalysis
        Summaries and groups per layer; ``result.layer(name)`` looks one up, ``result.to_dict()``
        is the document ``weightkit analyze --json`` writes.

    Examples
    --------
    >>> result = analyze("model.keras")                                  # doctest: +SKIP
    >>> result.layer("dense_1").groups                                   # doctest: +SKIP
    [[0, 6, 7], [1, 8, 9]]
    >>> analyze(model, data="sklearn:digits").layer("dense_1").extras["dead"]   # doctest: +SKIP
    [3]
    """
    loaded = as_weights_source(model) if data is None else as_model(model, unsafe=unsafe)
    result = analyze_model(loaded.model, metric=metric, threshold=threshold, layers=layers,
                           include_bias=include_bias, memory_budget=memory_budget, progress=progress,
                           path=loaded.path if path is None else path, notes=[*loaded.notes, *notes],
                           on_layer=on_layer)
    if data is not None:
        from weightkit.analysis.activations.analyze import analyze_activations, attach_activations

        x, source = as_inputs(data, loaded.model)
        activations = analyze_activations(loaded.model, x, layers=layers, samples=samples, metric=metric,
                                          threshold=threshold, progress=progress)
        attach_activations(result, activations, source=source)
    return result
