"""The ``weightkit`` command line: a thin front door to ``analysis``, ``compress`` and ``reports``."""

__version__ = "0.1.0"
