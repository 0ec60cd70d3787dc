"""Outputs of one run written as a set, and a lock that lets one run at a time write an output.

:class:`OutputSet` writes every output of a run (``OUT.keras``, ``OUT.json``, ``OUT.png``) to a
temporary beside it, then records the set in a journal and renames them all at the end. A run
killed during the renames leaves the journal: :func:`complete_set` finishes the renames (what
``--resume`` does) and :func:`discard_set` removes exactly what the journal lists and the file
still holds (a temporary, or a final output whose bytes are the recorded ones: what ``--force``
does). Nothing that the journal does not name, or whose content changed since, is touched.

:func:`output_lock` holds an exclusive ``flock`` on a hidden lock file beside an output for the
whole run; the kernel releases it when the process dies, even by SIGKILL, so a lock is never
stale.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.io import _finish, atomic_write_json, temporary_path

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
        The final outputs (already checked with :func:`weightkit.analysis.io.check_output`).
    journal : str
        Where :meth:`commit` records the set before renaming (a file in the run's work folder).

    Examples
    --------
    >>> with OutputSet(["r.keras", "r.json"], journal="work/outputs.json") as outputs:  # doctest: +SKIP
    ...     model.save(outputs["r.keras"])
    ...     write_json(outputs["r.json"])
    ...     outputs.commit()
    """

    def __init__(self, paths, *, journal):
        self.paths = [os.fspath(p) for p in paths]
        self.journal = os.fspath(journal)
        self._existed = {p: os.path.lexists(p) for p in self.paths}
        self._temporaries = {p: temporary_path(p) for p in self.paths}
        self.committed = False

    def __getitem__(self, path):
        """The temporary to write for the final output ``path``."""
        return self._temporaries[os.fspath(path)]

    def __enter__(self):
        return self

    def commit(self):
        """Record the set in the journal, then rename every temporary onto its output."""
        records = [{"final": os.path.abspath(p), "temporary": os.path.abspath(t), "replace": self._existed[p],
                    "sha256": _sha256(t)} for p, t in self._temporaries.items()]
        atomic_write_json(self.journal, {"outputs": records})
        _rename_all(records)
        self.committed = True

    def __exit__(self, *exc):
        for temporary in self._temporaries.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return False


def _rename_all(records):
    for record in records:
        if os.path.lexists(record["temporary"]):
            _finish(record["temporary"], record["final"], existed=record["replace"] and
                    os.path.lexists(record["final"]))


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


@contextlib.contextmanager
def output_lock(output, *, what="run"):
    """Hold the lock of ``output`` (``.NAME.lock`` beside it) for the block; refuse if another run holds it.

    Parameters
    ----------
    output : str
        The run's main output.
    what : str, default="run"
        The kind of run, for the message (``"retrain"``).

    Raises
    ------
    WeightkitError
        When another live process holds the lock.
    """
    parent, name = os.path.split(os.path.abspath(output))
    path = os.path.join(parent, f".{name}.lock")
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise WeightkitError(
                f"{output}: another {what} to this output is running (process {holder}, lock {path}); wait for it to "
                "finish or choose another output.") from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file the previous holder removed while we waited for it
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()
