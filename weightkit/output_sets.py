"""Outputs of one run written as a set, and a lock that lets one run at a time write an output.

:class:`OutputSet` writes every output of a run (``OUT.keras``, ``OUT.json``, ``OUT.png``) to a
temporary beside it, then records the set in a journal and renames them all at the end. A run
killed during the renames leaves the journal: :func:`complete_set` finishes the renames (what
``--resume`` does) and :func:`discard_set` removes exactly what the journal lists and the file
still holds (a temporary, or a final output whose bytes are the recorded ones: what ``--force``
does). Nothing that the journal does not name, or whose content changed since, is touched.

:func:`output_lock` (kept in :mod:`weightkit.analysis.files.work_folder` with the work folders of the
resumable commands, and named here too) lets one run at a time write an output.
"""

import contextlib
import hashlib
import json
import os

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.io import _finish, atomic_write_json, temporary_path
from weightkit.analysis.files.work_folder import output_lock

__all__ = ["OutputSet", "complete_set", "discard_set", "output_lock"]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OutputSet:
    """Temporaries for several outputs, renamed onto them together by :meth:`commit`.

    Parameters
    ----------
    paths : sequence of str
        The final outputs (already checked with :func:`weightkit.analysis.files.io.check_output`).
    journal : str
        Where :meth:`commit` records the set before renaming (a file in the run's work folder).
    force : bool, default=False
        Replace files at the outputs. Without it an output that exists by the renames (another run
        wrote it meanwhile) is refused, and the outputs this set had renamed already are taken back.

    Examples
    --------
    >>> with OutputSet(["r.keras", "r.json"], journal="work/outputs.json") as outputs:  # doctest: +SKIP
    ...     model.save(outputs["r.keras"])
    ...     write_json(outputs["r.json"])
    ...     outputs.commit()
    """

    def __init__(self, paths, *, journal, force=False):
        self.paths = [os.fspath(p) for p in paths]
        self.journal = os.fspath(journal)
        self.force = bool(force)
        self._temporaries = {p: temporary_path(p) for p in self.paths}
        self.committed = False

    def __getitem__(self, path):
        """The temporary to write for the final output ``path``."""
        return self._temporaries[os.fspath(path)]

    def __enter__(self):
        return self

    def commit(self):
        """Record the set in the journal, then rename every temporary onto its output."""
        records = [{"final": os.path.abspath(p), "temporary": os.path.abspath(t), "replace": self.force,
                    "sha256": _sha256(t)} for p, t in self._temporaries.items()]
        atomic_write_json(self.journal, {"outputs": records}, force=True)
        try:
            _rename_all(records)
        except WeightkitError:
            os.unlink(self.journal)  # nothing of this set is left at the outputs: nothing to complete
            raise
        self.committed = True

    def __exit__(self, *exc):
        for temporary in self._temporaries.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return False


def _rename_all(records):
    """Rename each temporary onto its output; when one is refused, take back those renamed by this call."""
    renamed = []
    for record in records:
        if os.path.lexists(record["temporary"]):
            try:
                _finish(record["temporary"], record["final"], replace=bool(record.get("replace")))
            except WeightkitError:
                for done in renamed:
                    if os.path.isfile(done["final"]) and _sha256(done["final"]) == done["sha256"]:
                        os.replace(done["final"], done["temporary"])
                raise
            renamed.append(record)


def _records(journal):
    try:
        with open(journal, encoding="utf-8") as handle:
            records = json.load(handle)["outputs"]
        return [r for r in records if isinstance(r, dict) and {"final", "temporary", "sha256"} <= set(r)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightkitError(f"{journal}: the record of an interrupted run's outputs cannot be read ({error}); "
                             "pass --force to start over.") from error


def complete_set(journal):
    """Finish the renames a killed run recorded in ``journal``; the finished outputs, in order.

    Raises
    ------
    WeightkitError
        When an output can no longer be completed (its temporary is gone and the output does not
        hold the recorded bytes).
    """
    records = _records(journal)
    for record in records:
        if not os.path.lexists(record["temporary"]) and not (
                os.path.isfile(record["final"]) and _sha256(record["final"]) == record["sha256"]):
            raise WeightkitError(f"{record['final']}: the interrupted run's copy of it is gone, so its outputs cannot "
                                 "be completed; pass --force to start over.")
    _rename_all(records)
    return [record["final"] for record in records]


def discard_set(journal):
    """Remove what ``journal`` lists and is still the run's own: its temporaries, and outputs holding its bytes.

    Returns
    -------
    list of str
        The paths removed.
    """
    removed = []
    for record in _records(journal):
        if os.path.lexists(record["temporary"]):
            os.unlink(record["temporary"])
            removed.append(record["temporary"])
        final = record["final"]
        if os.path.isfile(final) and not os.path.islink(final) and _sha256(final) == record["sha256"]:
            os.unlink(final)
            removed.append(final)
    return removed
