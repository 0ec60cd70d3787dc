"""Resume a shrink run from its last finished stage: a folder with ``state.json`` and the models made so far."""

import json
import os
import shutil

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.io import atomic_path, atomic_write_json

__all__ = ["STAGES", "Checkpoint"]

#: The stages of a run, in order; each one's results are stored when it finishes.
STAGES = ("original", "sensitivity", "search", "quantize")


class Checkpoint:
    """The state of one run in ``folder`` (None: nothing is stored, nothing resumes).

    Parameters
    ----------
    folder : str or None
    settings : dict
        The run's options; a resumed run must have the same.
    resume : bool
        Continue from ``folder``; otherwise an old state there is removed.
    """

    def __init__(self, folder, settings, resume=False):
        self.folder, self.settings = folder, settings
        self.state = {"settings": settings, "stages": {}}
        if folder is None:
            return
        path = os.path.join(folder, "state.json")
        if resume and os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                stored = json.load(handle)
            if stored.get("settings") != settings:
                changed = sorted(k for k in set(settings) | set(stored.get("settings", {}))
                                 if settings.get(k) != stored.get("settings", {}).get(k))
                raise WeightkitError(f"--resume: the interrupted run in {folder} used other settings "
                                     f"({', '.join(changed)}); rerun with the same options, or without --resume.")
            self.state = stored
        elif os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)

    def done(self, stage):
        """The stored results of ``stage``, or None when it has not finished."""
        return self.state["stages"].get(stage)

    def finish(self, stage, results, models=None):
        """Store ``results`` (JSON) and ``models`` (``{name: keras.Model}``) of a finished stage."""
        if self.folder is None:
            self.state["stages"][stage] = results
            return
        for name, model in (models or {}).items():
            with atomic_path(os.path.join(self.folder, f"{name}.keras"), suffix=".keras") as temporary:
                model.save(temporary)
        self.state["stages"][stage] = results
        atomic_write_json(os.path.join(self.folder, "state.json"), self.state)

    def model(self, name):
        """A model stored by :meth:`finish`, loaded (uncompiled)."""
        from weightkit.analysis.inputs import as_model

        return as_model(os.path.join(self.folder, f"{name}.keras")).model

    @property
    def finished(self):
        return [stage for stage in STAGES if stage in self.state["stages"]]
