"""weightkit: find, see, remove and quantize redundant neurons in trained Keras models.

The verbs are here, imported on first use (PEP 562), so ``import weightkit`` loads neither TensorFlow nor numpy:

>>> import weightkit
>>> result = weightkit.analyze("model.keras")                        # doctest: +SKIP
>>> merged, report = weightkit.merge_neurons("model.keras", ratio=0.3)  # doctest: +SKIP

Three subpackages hold the library: :mod:`weightkit.analysis` (rows, matrices, groups, activations; imports neither of
the others), :mod:`weightkit.compress` (decorrelate, merge, fold, quantize, shrink) and :mod:`weightkit.reports`
(figures and HTML). The command line (:mod:`weightkit.cli`) is a thin front door over them.
"""

from importlib.metadata import PackageNotFoundError, version

from weightkit.analysis._lazy import lazy_names

try:
    #: The installed distribution's version: pyproject.toml is its one source.
    __version__ = version("weightkit")
except PackageNotFoundError:  # a source tree imported without being installed
    __version__ = "0+unknown"

#: Public name -> the module that defines it, imported on first use.
_LAZY = {
    **dict.fromkeys(["analyze", "analyze_activations", "load_model", "load_data", "pearson_matrix", "mad_matrix",
                     "find_groups", "ModelAnalysis", "ActivationAnalysis", "Dataset", "WeightkitError"],
                    "weightkit.analysis"),
    **dict.fromkeys(["merge_neurons", "retrain", "quantize_model", "fold_linear", "shrink_model",
                     "attach_decorrelation", "detach_decorrelation", "DecorrelationRegularizer", "RedundancyMonitor"],
                    "weightkit.compress"),
    **dict.fromkeys(["write_report", "write_summary"], "weightkit.reports"),
}

__all__ = sorted(_LAZY) + ["__version__"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
