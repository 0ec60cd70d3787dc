"""The demo's headline: ``weightkit shrink`` on the original, with the journey's stages on its frontier.

:func:`shrink_for_journey` runs :func:`weightkit.compress.shrink.shrink_model` with settings light enough
for the demo's time budget (:data:`DEMO_SHRINK`), and :func:`write_frontier` writes its
``shrink.json``, ``frontier.json`` and ``frontier.png`` with every Keras stage of the journey
added as a labelled point (``demo:<stage>``), measured on the same held-out split.
"""

import os

__all__ = ["DEMO_SHRINK", "FAST_SHRINK", "shrink_for_journey", "write_frontier"]

#: shrink options of the demo: two fractions per layer, two probes, a short fine-tune (the demo stays near 2 minutes;
#: with three fractions, three probes and 10 epochs it took 161 s wall, shrink 59 s of it).
DEMO_SHRINK = {"fractions": (0.5, 0.9), "max_probes": 2, "fine_tune_epochs": 6}
#: ``weightkit demo --fast``: two fractions, two probes, four epochs.
FAST_SHRINK = {"fractions": (0.5, 0.9), "max_probes": 2, "fine_tune_epochs": 4}


def shrink_for_journey(model, dataset, *, max_drop, modes, seed, fast=False):
    """:func:`weightkit.compress.shrink.shrink_model` with :data:`DEMO_SHRINK` (:data:`FAST_SHRINK` when ``fast``)."""
    from weightkit.compress.shrink import shrink_model

    options = FAST_SHRINK if fast else DEMO_SHRINK
    return shrink_model(model, dataset, max_drop=max_drop, modes=modes, seed=seed, **options)


def write_frontier(outcome, stages, folder):
    """Write ``shrink.json``, ``frontier.json`` and ``frontier.png`` into ``folder``.

    Parameters
    ----------
    outcome : weightkit.compress.shrink.ShrinkOutcome
    stages : list of weightkit.demo.journey.Stage
        The journey's Keras stages, added to the frontier as ``demo:<key>`` (4 bytes per
        parameter, their held-out accuracy).
    folder : str

    Returns
    -------
    dict of str to str
        ``{"json": "shrink.json", "plot": "frontier.png", "frontier_json": "frontier.json"}``.
    """
    from weightkit.analysis.files.io import atomic_write_json
    from weightkit.compress.shrink.result import FLOAT_BYTES
    from weightkit.reports.shrink_plot import plot_frontier

    result = outcome.result
    frontier = result.frontier()
    for stage in stages:
        if stage.kind != "keras" or stage.key == "original":
            continue
        frontier["candidates"].append({"key": f"demo:{stage.key}", "stage": "demo", "kind": "keras",
                                       "title": stage.title, "params": stage.params,
                                       "bytes": stage.params * FLOAT_BYTES, "bytes_estimated": True,
                                       "validation_accuracy": None, "test_accuracy": stage.accuracy,
                                       "agreement": stage.agreement, "removed": {}, "within_budget": None,
                                       "chosen": False})
    atomic_write_json(os.path.join(folder, "shrink.json"), result.to_dict())
    atomic_write_json(os.path.join(folder, "frontier.json"), frontier)
    plot_frontier(frontier, os.path.join(folder, "frontier.png"))
    return {"json": "shrink.json", "plot": "frontier.png", "frontier_json": "frontier.json"}
