"""Render analysis results: figures and self-contained HTML reports."""

__all__ = []

# The HTML report (matplotlib) is imported on first use, so `weightkit analyze` does not load it.
_LAZY = {"write_report": "weightkit.reports.report", "render_layer_figures": "weightkit.reports.report",
         "render_page": "weightkit.reports.html", "similarity_figure": "weightkit.reports.figures",
         "weight_rows_figure": "weightkit.reports.figures", "histogram_figure": "weightkit.reports.charts",
         "overview_figure": "weightkit.reports.charts", "save_figure": "weightkit.reports.canvas"}
_LAZY.update({"write_summary": "weightkit.reports.journey_page", "render_summary_page": "weightkit.reports.journey_page",
              "summary_figure": "weightkit.reports.journey_page"})
__all__ += list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'weightkit.reports' has no attribute {name!r}")
