"""Render analysis results: figures and self-contained HTML reports."""

__all__ = []

# The HTML report (matplotlib) is imported on first use, so `weightkit analyze` does not load it.
_LAZY = {"write_report": "reports.report", "render_layer_figures": "reports.report",
         "render_page": "reports.html", "similarity_figure": "reports.figures",
         "weight_rows_figure": "reports.figures", "histogram_figure": "reports.charts",
         "overview_figure": "reports.charts", "save_figure": "reports.canvas"}
_LAZY.update({"write_summary": "reports.journey_page", "render_summary_page": "reports.journey_page",
              "summary_figure": "reports.journey_page"})
__all__ += list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
