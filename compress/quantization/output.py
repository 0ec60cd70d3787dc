"""Write a quantization comparison: the ``.tflite`` files, ``comparison.json`` and ``comparison.png``."""

import os

from analysis.io import atomic_write_bytes, atomic_write_json

from .plot import plot_comparison

__all__ = ["write_outputs"]


def write_outputs(report, contents, directory):
    """Write every converted model, the chosen ``model.tflite``, the JSON and the plot into ``directory``.

    Parameters
    ----------
    report : QuantizationReport
    contents : dict of str to bytes
        From :func:`~compress.quantization.pipeline.quantize_model`.
    directory : str
        An existing folder (the temporary one of :func:`analysis.io.atomic_directory`).

    Returns
    -------
    list of str
        The file names written.
    """
    written = []
    for mode, content in contents.items():
        name = f"model_{mode}.tflite"
        atomic_write_bytes(os.path.join(directory, name), content)
        written.append(name)
    if report.exported is not None:
        atomic_write_bytes(os.path.join(directory, "model.tflite"), contents[report.exported.mode])
        written.append("model.tflite")
    atomic_write_json(os.path.join(directory, "comparison.json"), report.to_dict())
    written.append("comparison.json")
    plot_comparison(report, os.path.join(directory, "comparison.png"))
    written.append("comparison.png")
    return written
