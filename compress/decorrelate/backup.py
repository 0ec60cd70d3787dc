"""The per-epoch backup of a retrain, written so that a failed write never spoils it.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` and ``training_metadata.json`` in
place: a disk that fills up mid-write leaves a half file that ``--resume`` then fails on. Here each
is written to a temporary beside it and renamed over it, weights first: the backup on disk is
always one complete epoch (after a failure between the two renames, the weights one epoch
ahead of the metadata, so a resume repeats one epoch from newer weights).
"""

import contextlib
import json
import os

from analysis._tf import import_keras

__all__ = ["AtomicBackupAndRestore"]

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

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
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
