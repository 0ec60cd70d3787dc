"""A retrain's per-epoch history and backup, read back from its work folder (resumed runs included)."""

import csv
import json
import os

import numpy as np

__all__ = ["HISTORY_FILE", "finished_epochs", "read_history"]

HISTORY_FILE = "history.csv"


def read_history(path):
    """``{key: [value per epoch]}`` from a CSVLogger file, ``"epoch"`` numbered from 1; ``{}`` when absent.

    A rerun epoch (interrupted after logging, before its backup) replaces the old row; columns with no
    value in any epoch (CSVLogger's "NA" for keys an epoch lacks) are left out.
    """
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_epoch = {}
    for row in rows:
        by_epoch[int(row["epoch"])] = row
    history = {}
    for epoch in sorted(by_epoch):
        for key, value in by_epoch[epoch].items():
            if key == "epoch":
                continue
            history.setdefault(key, []).append(float(value) if value not in ("", "NA", None) else float("nan"))
    history = {key: values for key, values in history.items() if not all(np.isnan(values))}
    history["epoch"] = [epoch + 1 for epoch in sorted(by_epoch)]
    return history


def finished_epochs(work_dir):
    """Epochs a backup in ``work_dir`` holds (0 when none finished: BackupAndRestore writes this file per epoch)."""
    try:
        with open(os.path.join(work_dir, "training_metadata.json")) as handle:
            return int(json.load(handle).get("epoch", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0
