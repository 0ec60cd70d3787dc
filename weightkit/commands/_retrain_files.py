"""``weightkit retrain``'s files around training: its work folder, its lock and its set of outputs.

A retrain writing ``OUT.keras`` keeps its per-epoch backup in the hidden work folder
``.OUT.keras.retrain`` beside it and holds the lock ``.OUT.keras.lock`` (one run per output).
Its three outputs are renamed together at the end (:class:`weightkit.analysis.output_sets.OutputSet`), with a
journal in the work folder, so a run killed between the renames leaves something ``--resume``
completes and ``--force`` removes. Nothing here imports TensorFlow.
"""

import os
import shutil

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.io import OUTPUT_MARKER

__all__ = ["JOURNAL", "check_work_folder", "finish_interrupted_outputs", "work_folder"]

#: The journal of the outputs being renamed, inside the work folder.
JOURNAL = "outputs.json"


def work_folder(output):
    """The backup folder of a retrain writing ``output``: hidden, beside it."""
    directory, name = os.path.split(os.path.abspath(output))
    return os.path.join(directory, f".{name}.retrain")


def check_work_folder(output, work, inputs):
    """Refuse a work folder that is not a folder, is not retrain's, or holds one of the inputs.

    A fresh run (and ``--force``) deletes the work folder, so it must hold nothing of the user's.
    """
    if os.path.islink(work) or (os.path.lexists(work) and not os.path.isdir(work)):
        kind = "a link" if os.path.islink(work) else "a file"
        raise WeightkitError(f"{output}: retrain keeps its backup in {work}, which exists and is {kind}, not "
                             "retrain's folder; move or remove it, or choose another output.")
    real_work = os.path.realpath(work)
    for item in inputs:
        if item and os.path.exists(item):
            real = os.path.realpath(item)
            if real == real_work or real.startswith(real_work + os.sep):
                raise WeightkitError(f"{item}: is inside {work}, the work folder retrain deletes when it starts "
                                     f"over or finishes {output}; move the input out of that folder first.")
    if os.path.isdir(work) and os.listdir(work) and not os.path.isfile(os.path.join(work, OUTPUT_MARKER)):
        raise WeightkitError(f"{output}: {work} holds files retrain did not write (no {OUTPUT_MARKER} in it), so it "
                             "is never deleted, not even with --force; move them or choose another output.")


def finish_interrupted_outputs(output, work, *, resume, force):
    """Deal with a run killed while renaming its outputs; the outputs completed (``--resume``) or None.

    Without ``--resume`` or ``--force`` such a run is refused in one line naming both ways out;
    ``--force`` removes what that run had written (its temporaries, and outputs still holding the
    bytes it recorded) and the work folder, then the run starts over.
    """
    from weightkit.analysis.output_sets import complete_set, discard_set

    journal = os.path.join(work, JOURNAL)
    if not os.path.isfile(journal):
        return None
    if resume:
        finished = complete_set(journal)
        shutil.rmtree(work, ignore_errors=True)
        return finished
    if force:
        discard_set(journal)
        shutil.rmtree(work, ignore_errors=True)
        return None
    raise WeightkitError(
        f"{output}: a killed run finished training but not renaming its outputs (recorded in {journal}); pass "
        f"--resume to complete them, or --force to start over, which removes {work} and the outputs that still "
        "hold that run's bytes.")
