"""Names a package loads on first use (PEP 562): one implementation for every package of weightkit.

A package lists its public names in a table ``name -> module that defines it`` and takes its ``__getattr__`` and
``__dir__`` from :func:`lazy_names`, so importing it costs almost nothing and a caller pays only for the modules it
uses (``import weightkit`` loads neither TensorFlow nor numpy). This module imports nothing of weightkit: the root
package and every subpackage may use it.
"""

import importlib
import sys

__all__ = ["lazy_names"]


def lazy_names(package, table):
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``) whose public names ``table`` maps to modules.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    table : dict of str to str
        Public name -> the module that defines it; a name is imported from there on first use, then kept on the
        package.

    Returns
    -------
    tuple of callable
        The module-level ``__getattr__`` and ``__dir__``.
    """
    def __getattr__(name):
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
