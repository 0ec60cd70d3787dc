"""Render analysis results: figures and self-contained HTML reports."""

from weightkit.analysis._lazy import lazy_names

__all__ = []

# The HTML report (matplotlib) is imported on first use, so `weightkit analyze` does not load it.
_LAZY = {"write_report": "weightkit.reports.report", "render_layer_figures": "weightkit.reports.report",
         "render_page": "weightkit.reports.html", "similarity_figure": "weightkit.reports.figures",
         "weight_rows_figure": "weightkit.reports.figures", "histogram_figure": "weightkit.reports.charts",
         "overview_figure": "weightkit.reports.charts", "save_figure": "weightkit.reports.canvas"}
_LAZY.update({"write_summary": "weightkit.reports.journey_page", "render_summary_page": "weightkit.reports.journey_page",
              "summary_figure": "weightkit.reports.journey_page"})
__all__ += list(_LAZY)

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
