"""``--layers``: the one implementation of choosing layers (or entries) by name.

Every command that takes ``--layers`` (analyze, report, merge, retrain) and the redundancy monitor
check the names the same way: a name picks a layer, an analysis entry (``lstm/forget``), or every
entry under a prefix (``bi/forward``); an unknown name is refused with the names that exist.
"""

from weightkit.analysis.errors import WeightkitError

__all__ = ["check_layer_names", "is_chosen"]


def is_chosen(entry_name, layer_name, names):
    """Whether ``--layers`` ``names`` pick this entry: by its layer, its own name, or a prefix of it."""
    return any(entry_name == n or layer_name == n or entry_name.startswith(n + "/") for n in names)


def check_layer_names(names, available, *, kind="analyzable", extra=(), sort=True, prefix="--layers"):
    """The requested names as a set (None when no names are given); raise for any unknown one.

    Parameters
    ----------
    names : list of str or None
    available : iterable of str
        Names that can be chosen (layers and entries), listed in the error.
    kind : str, default="analyzable"
        The word before "layer" in the error (``regularizable``).
    extra : iterable of str, default=()
        Further names accepted without being listed (skipped layers).
    sort : bool, default=True
        List the available names sorted (else in the given order).
    prefix : str, default="--layers"
        What the error names (``RedundancyMonitor``).

    Returns
    -------
    set of str or None

    Raises
    ------
    WeightkitError
        ``--layers: no analyzable layer named 'x'; available: a, b.``
    """
    if not names:
        return None
    listed = list(dict.fromkeys(available))
    known = set(listed) | set(extra)
    unknown = [name for name in dict.fromkeys(names)
               if name not in known and not any(a.startswith(name + "/") for a in listed)]
    if unknown:
        shown = sorted(listed) if sort else listed
        raise WeightkitError(f"{prefix}: no {kind} layer named {', '.join(map(repr, sorted(unknown)))}; available: "
                             f"{', '.join(shown) or '(none)'}.")
    return set(names)
