"""``weightkit retrain``'s files around training: its work folder, its lock and its set of outputs.

A retrain writing ``OUT.keras`` keeps its per-epoch backup in the hidden work folder
``.OUT.keras.retrain`` beside it and holds the lock ``.OUT.keras.lock`` (one run per output): the
resumable commands' :class:`weightkit.analysis.files.work_folder.WorkFolder`.
Its three outputs are renamed together at the end (:class:`weightkit.output_sets.OutputSet`), with a
journal in the work folder, so a run killed between the renames leaves something ``--resume``
completes and ``--force`` removes. Nothing here imports TensorFlow.
"""

import os

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.work_folder import WorkFolder

__all__ = ["JOURNAL", "check_work_folder", "finish_interrupted_outputs", "work_folder"]

#: The journal of the outputs being renamed, inside the work folder.
JOURNAL = "outputs.json"


def work_folder(output):
    """The backup folder of a retrain writing ``output``: hidden, beside it."""
    return WorkFolder.beside(output, "retrain").path


def check_work_folder(output, work, inputs):
    """Refuse a work folder that is not a folder, is not retrain's, or holds one of the inputs.

    A fresh run (and ``--force``) removes retrain's files there, so it must hold nothing of the user's
    (:meth:`weightkit.analysis.files.work_folder.WorkFolder.check`).
    """
    WorkFolder(work, "retrain", output=output).check(inputs)


def finish_interrupted_outputs(output, work, *, resume, force):
    """Deal with a run killed while renaming its outputs; the outputs completed (``--resume``) or None.

    Without ``--resume`` or ``--force`` such a run is refused in one line naming both ways out;
    ``--force`` removes what that run had written (its temporaries, and outputs still holding the
    bytes it recorded) and the work folder, then the run starts over.
    """
    from weightkit.output_sets import complete_set, discard_set

    journal = os.path.join(work, JOURNAL)
    if not os.path.isfile(journal):
        return None
    folder = WorkFolder(work, "retrain", output=output)
    if resume:
        finished = complete_set(journal)
        folder.remove()
        return finished
    if force:
        discard_set(journal)
        folder.remove()
        return None
    raise WeightkitError(
        f"{output}: a killed run finished training but not renaming its outputs (recorded in {journal}); pass "
        f"--resume to complete them, or --force to start over, which removes {work} and the outputs that still "
        "hold that run's bytes.")
