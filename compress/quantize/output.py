"""Write a quantization comparison: the ``.tflite`` files and ``comparison.json``.

The plot of the comparison is drawn by :func:`weightkit.reports.quantize_plot.plot_comparison`.
"""

import os

from weightkit.analysis.files.io import atomic_write_bytes, atomic_write_json
from weightkit.compress.quantize.modes import mode_file

__all__ = ["write_outputs"]


def write_outputs(report, contents, directory):
    """Write every converted model, the chosen ``model.tflite`` and the JSON into ``directory``.

    Parameters
    ----------
    report : QuantizationReport
    contents : dict of str to bytes
        From :func:`~weightkit.compress.quantize.pipeline.quantize_model`.
    directory : str
        An existing folder (the temporary one of :func:`weightkit.analysis.files.io.atomic_directory`).

    Returns
    -------
    list of str
        The file names written.
    """
    written = []
    for mode, content in contents.items():
        name = mode_file(mode)
        atomic_write_bytes(os.path.join(directory, name), content)
        written.append(name)
    if report.exported is not None:
        name = os.path.basename(report.exported.path)
        atomic_write_bytes(os.path.join(directory, name), contents[report.exported.mode])
        written.append(name)
    atomic_write_json(os.path.join(directory, "comparison.json"), report.to_dict())
    written.append("comparison.json")
    if report.sensitivity is not None:
        atomic_write_json(os.path.join(directory, "sensitivity.json"), report.sensitivity.to_dict())
        written.append("sensitivity.json")
    return written
