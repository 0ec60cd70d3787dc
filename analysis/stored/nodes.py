"""Linear chains of a stored model: the plain layer-call records of :mod:`analysis.linear_chains`, from config.json."""

from analysis.linear_chains import find_linear_chains

__all__ = ["stored_linear_chains", "stored_nodes"]


def stored_nodes(model):
    return []


def stored_linear_chains(model):
    return find_linear_chains(stored_nodes(model))
