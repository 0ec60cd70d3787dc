"""Render analysis results: figures and self-contained HTML reports."""

__all__ = []
