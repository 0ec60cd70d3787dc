"""The per-epoch backup of a retrain, written so that a failed write never spoils it.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` and ``training_metadata.json`` in
place: a disk that fills up mid-write leaves a half file that ``--resume`` then fails on. Here each
is written to a temporary beside it and renamed over it, weights first: the backup on disk is
always one complete epoch (after a failure between the two renames, the weights one epoch
ahead of the metadata, so a resume repeats one epoch from newer weights).
"""

import contextlib
import errno
import json
import os
import re
import resource
import warnings

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.hdf5 import open_h5

__all__ = ["AtomicBackupAndRestore"]

#: HDF5's bytes per saved variable and a fixed allowance: a 14-variable backup holding 908 bytes of values took
#: 21,728 bytes (h5py 3, Keras 3.15), estimated at 31,500.
_PER_VARIABLE = 1600
_FIXED = 8192

keras = import_keras()


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` whose files are replaced atomically (see the module docstring).

    Parameters
    ----------
    backup_dir : str
        The run's work folder.
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir, delete_checkpoint=False, double_checkpoint=False)

    def _load_model(self):
        """Keras' restore, after the backup is checked to hold its own weights (see :mod:`weightkit.analysis.files.hdf5`).

        A backup is a file on disk that anyone with access to the work folder can replace; ``--resume``
        must not read other files through it.
        """
        if os.path.exists(self._weights_path):
            fix = f"remove {self.backup_dir} (or rerun with --force) and start over"
            with open_h5(self._weights_path, self._weights_path, fix=fix):
                pass
        with warnings.catch_warnings(record=True) as caught:  # Keras warns, then skips or fails, on a mismatch
            warnings.simplefilter("always")
            try:
                super()._load_model()
                error = None
            except ValueError as raised:
                error = raised
        messages = [str(w.message) for w in caught]  # an optimizer's state skipped only restarts its moments
        skipped = [m for m in messages if ("Skipping" in m or "could not" in m) and "optimizer" not in m]
        if error is not None or skipped:
            raise WeightkitError(_mismatch(self.backup_dir, error, skipped)) from error

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        _check_room(self.backup_dir, self._weights_path, _backup_bytes(self.model))
        weights = os.path.join(self.backup_dir, ".latest.part.weights.h5")  # Keras insists on .weights.h5
        metadata = self._training_metadata_path + ".part"
        try:
            self.model.save_weights(filepath=weights, overwrite=True)
            os.replace(weights, self._weights_path)
            with open(metadata, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(metadata, self._training_metadata_path)
        finally:
            for leftover in (weights, metadata):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)


def _mismatch(backup_dir, error, skipped):
    """One line: the backup is another model's (a run of another model or other options to the same output)."""
    found = re.search(r"<(\w+) name=([^,>]+).*?variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))",
                      str(error or ""), re.S)
    what = (f"layer {found.group(2)!r} ({found.group(1)}) has weights of shape {found.group(4)} there, "
            f"{found.group(3)} here" if found else "its weights do not fit this model's layers")
    return (f"--resume: the backup in {backup_dir} was written for another model ({what}); resume with the model and "
            "options of the interrupted run, or pass --force to start over.")


def _backup_bytes(model):
    """An upper estimate of one backup's size: the model's and the optimizer's variables, and HDF5's overhead."""
    variables = list(model.weights) + list(getattr(getattr(model, "optimizer", None), "variables", []) or [])
    raw = sum(int(v.numpy().nbytes) if hasattr(v, "numpy") else 0 for v in variables)
    return raw + _PER_VARIABLE * len(variables) + _FIXED


def _check_room(folder, path, needed):
    """Raise ENOSPC (or EFBIG under a file-size limit) before a write of ``needed`` bytes that cannot fit.

    HDF5 crashes the process (a segmentation fault in h5py's close, seen with h5py 3 on Linux) when a
    write fails half-way, so a backup that would not fit is never started.
    """
    stats = os.statvfs(folder)
    if needed > stats.f_bavail * stats.f_frsize:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and needed > limit:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), path)
