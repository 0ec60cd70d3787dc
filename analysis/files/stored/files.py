"""Open a saved model's weights as HDF5, straight from the file: ``zipfile``, ``json`` and ``h5py`` only.

Three formats, told apart by content (as :func:`weightkit.analysis.files.loading.read_model_config` does):

- ``.keras`` (Keras 3): a zip holding ``config.json`` and ``model.weights.h5``. A stored member (how
  Keras writes it) is read in place through a seekable window on the zip; a deflated one is
  inflated once to a temporary file, so memory never holds the weights file;
- legacy ``.h5`` (Keras 2, or Keras 3's ``model.save("m.h5")``): the ``model_config`` attribute and
  the ``model_weights`` group;
- ``.weights.h5`` (Keras 3 ``model.save_weights``) beside a ``config.json`` (or ``NAME.config.json``)
  that ``model.to_json()`` / the archive's ``config.json`` holds.

Nothing here imports TensorFlow or Keras, and nothing in the file is deserialized: the
configuration is JSON read as data, the weights are arrays.
"""

import contextlib
import os
import shutil
import tempfile
import zipfile

from weightkit.analysis.files.config_files import ZipWindow, parse_config_json
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.hdf5 import open_h5
from weightkit.analysis.files.limits import check_h5_storage

__all__ = ["WEIGHTS_SUFFIX", "config_beside", "open_weights"]

#: What Keras 3's ``model.save_weights`` names its files.
WEIGHTS_SUFFIX = ".weights.h5"


def config_beside(path):
    """The configuration file of a ``.weights.h5`` file: ``NAME.config.json`` or ``config.json`` beside it.

    Raises
    ------
    WeightkitError
        When there is neither.
    """
    stem = path[: -len(WEIGHTS_SUFFIX)]
    for candidate in (stem + ".config.json", stem + ".json", os.path.join(os.path.dirname(path) or ".", "config.json")):
        if os.path.isfile(candidate):
            return candidate
    raise WeightkitError(
        f"{path}: a weights-only file needs the model's configuration beside it; save "
        f"model.to_json() as {os.path.basename(stem)}.config.json next to it, or save the whole model with "
        "model.save('model.keras')."
    )


def read_weights_config(path):
    """``(config, config_path)`` of a ``.weights.h5`` file, its size and nesting checked."""
    config_path = config_beside(path)
    with open(config_path, "rb") as handle:
        raw = handle.read(64 * 2**20 + 1)
    if len(raw) > 64 * 2**20:
        raise WeightkitError(f"{config_path}: over 64 MiB, not a model configuration; save the model again.")
    try:
        return parse_config_json(raw, config_path, os.path.basename(config_path)), config_path
    except ValueError as error:
        raise WeightkitError(f"{config_path}: not valid JSON ({error}); save model.to_json() again.") from error


@contextlib.contextmanager
def open_weights(path, fmt):
    """The model's weights as an open ``h5py.File``, read-only.

    Parameters
    ----------
    path : str
        The model file.
    fmt : {"keras", "h5", "weights"}

    Yields
    ------
    h5py.File
        For ``.keras``, the archive's ``model.weights.h5``; otherwise the file itself.
    """
    with contextlib.ExitStack() as stack:
        if fmt != "keras":
            handle = stack.enter_context(open_h5(path, path))
            if fmt == "weights":
                check_h5_storage(path, handle)
            yield handle
            return
        archive = stack.enter_context(zipfile.ZipFile(path))
        if "model.weights.h5" not in archive.namelist():
            raise WeightkitError(f"{path}: archive without model.weights.h5, so it holds no weights to analyze; "
                                 "save the model again with model.save('model.keras').")
        info = archive.getinfo("model.weights.h5")
        if info.compress_type == zipfile.ZIP_STORED:
            member = ZipWindow(stack.enter_context(open(path, "rb")), info)
        else:  # inflate once to disk: reading HDF5 seeks, and a deflate stream cannot
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="weightkit-weights-"))
            member = os.path.join(folder, "model.weights.h5")
            with archive.open(info) as source, open(member, "wb") as target:
                shutil.copyfileobj(source, target, 16 * 2**20)
        try:
            handle = stack.enter_context(open_h5(member, path, where="model.weights.h5:"))
        except (OSError, ValueError) as error:
            raise WeightkitError(f"{path}: its model.weights.h5 is not an HDF5 file ({error}); save the model "
                                 "again.") from error
        yield handle
