"""Resume a shrink run from its last finished stage: a folder with ``state.json`` and the models made so far.

The folder is shrink's :class:`weightkit.analysis.files.work_folder.WorkFolder`: created with its marker,
and a fresh run removes only the files a run writes there (a folder holding anything else, or a file
or link in its place, is refused in one line).
"""

import json
import os

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.io import atomic_path, atomic_write_json
from weightkit.analysis.files.work_folder import OWNED, WorkFolder

__all__ = ["STAGES", "STATE", "Checkpoint"]

#: The stages of a run, in order; each one's results are stored when it finishes.
STAGES = ("original", "stream", "sensitivity", "search", "quantize")

#: The file holding the finished stages' results (and the settings a resumed run must match).
STATE = "state.json"


class Checkpoint:
    """The state of one run in ``folder`` (None: nothing is stored, nothing resumes).

    Parameters
    ----------
    folder : str or None
    settings : dict
        The run's options; a resumed run must have the same.
    resume : bool
        Continue from ``folder``; otherwise an old state there is removed.

    Raises
    ------
    WeightkitError
        When ``folder`` is not shrink's work folder (see :meth:`WorkFolder.check`), or the
        interrupted run used other settings.
    """

    def __init__(self, folder, settings, resume=False):
        self.folder, self.settings = folder, settings
        self.state = {"settings": settings, "stages": {}}
        if folder is None:
            return
        work = WorkFolder(folder, "shrink")
        work.check()
        path = os.path.join(folder, STATE)
        resumed = resume and os.path.isfile(path)
        if resumed:
            try:
                with open(path, encoding="utf-8") as handle:
                    stored = json.load(handle)
                stored["stages"].items()
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                raise WeightkitError(f"--resume: {path} cannot be read ({error}); rerun without --resume to "
                                     "start over.") from error
            if stored.get("settings") != settings:
                changed = sorted(k for k in set(settings) | set(stored.get("settings", {}))
                                 if settings.get(k) != stored.get("settings", {}).get(k))
                raise WeightkitError(f"--resume: the interrupted run in {folder} used other settings "
                                     f"({', '.join(changed)}); rerun with the same options, or without --resume.")
            self.state = stored
        work.start(resume=resumed)

    def done(self, stage):
        """The stored results of ``stage``, or None when it has not finished."""
        return self.state["stages"].get(stage)

    def finish(self, stage, results, models=None):
        """Store ``results`` (JSON) and ``models`` (``{name: keras.Model}``) of a finished stage."""
        if self.folder is None:
            self.state["stages"][stage] = results
            return
        for name, model in (models or {}).items():
            if f"{name}.keras" not in OWNED["shrink"]:
                raise ValueError(f"{name}.keras is not one of shrink's files {OWNED['shrink']}: add it there first.")
            with atomic_path(os.path.join(self.folder, f"{name}.keras"), suffix=".keras", force=True) as temporary:
                model.save(temporary)
        self.state["stages"][stage] = results
        atomic_write_json(os.path.join(self.folder, STATE), self.state, force=True)

    def model(self, name):
        """A model stored by :meth:`finish`, loaded (uncompiled)."""
        from weightkit.analysis.data.inputs import as_model

        return as_model(os.path.join(self.folder, f"{name}.keras")).model

    @property
    def finished(self):
        return [stage for stage in STAGES if stage in self.state["stages"]]
