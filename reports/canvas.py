"""The Agg canvas the report's figures are drawn on, and how they are written.

Figures are never registered with pyplot: :func:`save_figure` writes a PNG and clears the figure.
"""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["save_figure"]

_DPI = 100


def _new_figure(width, height):
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _top(height, n_lines):
    """Top of the axes area (figure fraction) below a title of ``n_lines`` lines."""
    return 1.0 - (0.12 + 0.17 * n_lines) / height


def _title(figure, lines, height):
    figure.text(0.02, 1.0 - 0.08 / height, "\n".join(lines), fontsize=9, ha="left", va="top")


def save_figure(figure, path):
    """Write ``figure`` as a PNG and clear it; returns ``(width, height)`` in pixels."""
    figure.savefig(path, format="png", dpi=_DPI)
    width, height = figure.canvas.get_width_height()
    figure.clear()
    return int(width), int(height)
