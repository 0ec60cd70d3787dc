"""Limits on what a hostile file may make us inflate, allocate or read, checked before reading it.

A zip archive (``.keras``, ``.npz``) lists every member's declared size in its central
directory; Python's :mod:`zipfile` never inflates a member past that size (a stream that tries
fails its CRC check). So a decompression bomb is refused from the directory alone, before any
member is inflated. An HDF5 dataset or an ``.npy`` header declares a shape that reading would
allocate; a dataset that declares far more than the file stores is refused before anything is
built from it.
"""

import os
import stat

from weightkit.analysis.errors import WeightkitError

__all__ = ["LARGE_MEMBER_BYTES", "MAX_ARRAY_BYTES", "MAX_CONFIG_BYTES", "MAX_CSV_BYTES", "MAX_RATIO",
           "check_h5_storage", "check_npz_headers", "check_regular_file", "check_zip_directory"]

MiB = 1 << 20
GiB = 1 << 30

#: A model's ``config.json`` (a real VGG16's is 20 KB).
MAX_CONFIG_BYTES = 64 * MiB
#: Inflated/compressed size of one member; checked only on members over ``LARGE_MEMBER_BYTES``
#: (float weights deflate by less than 2; a bomb of zeros by about 1000).
MAX_RATIO = 100
LARGE_MEMBER_BYTES = 16 * MiB
#: All arrays of one ``.npz``, as their headers declare them.
MAX_ARRAY_BYTES = 8 * GiB
#: A ``--data`` CSV file.
MAX_CSV_BYTES = 2 * GiB
#: An HDF5 dataset may declare this many bytes more than it stores (a fill-valued bias, a
#: small chunked dataset's rounding) before it is called forged.
_STORAGE_SLACK = 1 * MiB


def _size(n):
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def check_regular_file(path, prefix=""):
    """Refuse a path that is not a regular file (a device such as ``/dev/zero``, a FIFO, a socket).

    ``prefix`` starts the message (``"--data "``).
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise WeightkitError(f"{prefix}{path}: is {kind}, not a regular file; give the path of a saved file.")


def check_zip_directory(path, archive, *, config_member=None, fix):
    """Refuse a zip whose declared sizes are a decompression bomb, from its directory alone.

    Parameters
    ----------
    path : str
        Named in the message.
    archive : zipfile.ZipFile
    config_member : str, default=None
        A member held to ``MAX_CONFIG_BYTES`` (``"config.json"``).
    fix : str
        What the user should do, ending the message.
    """
    for info in archive.infolist():
        if info.filename == config_member and info.file_size > MAX_CONFIG_BYTES:
            raise WeightkitError(
                f"{path}: archive member {info.filename} declares {_size(info.file_size)}, over the limit of "
                f"{_size(MAX_CONFIG_BYTES)} for a model configuration; refusing to inflate it. {fix}")
        if info.file_size > LARGE_MEMBER_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise WeightkitError(
                f"{path}: archive member {info.filename} would inflate {_size(info.compress_size)} to "
                f"{_size(info.file_size)} (ratio {ratio:.0f}, over the limit of {MAX_RATIO}); refusing a "
                f"possible decompression bomb. {fix}")


def check_npz_headers(path, archive):
    """Refuse an ``.npz`` whose ``.npy`` headers declare more than the limit or than each member holds.

    Reads each member's header only (a few hundred bytes), never its data.
    """
    import numpy as np

    fix = "save plain arrays with np.savez."
    total = 0
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with archive.open(info) as member:
            try:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member, max_header_size=10000)
            except (ValueError, SyntaxError, EOFError) as error:
                raise WeightkitError(f"{path}: array {info.filename} has an unreadable header ({error}); "
                                     f"{fix}") from error
            header = member.tell()
        declared = int(np.prod(shape, dtype=object)) * (dtype.itemsize or 1) if not dtype.hasobject else 0
        stored = max(info.file_size - header, 0)
        if declared > MAX_ARRAY_BYTES:
            raise WeightkitError(
                f"{path}: array {info.filename} declares shape {tuple(shape)} ({_size(declared)}), over the limit of "
                f"{_size(MAX_ARRAY_BYTES)} for --data (the archive stores {_size(stored)} of it); refusing to "
                "allocate it: give a smaller sample of the data.")
        if declared > info.file_size - header:
            raise WeightkitError(
                f"{path}: array {info.filename} declares shape {tuple(shape)} ({_size(declared)}) but the archive "
                f"stores {_size(stored)} of it; the file is truncated or forged: {fix}")
        total += declared
        if total > MAX_ARRAY_BYTES:
            raise WeightkitError(
                f"{path}: arrays up to {info.filename} declare {_size(total)}, over the limit of "
                f"{_size(MAX_ARRAY_BYTES)} for --data; give a smaller sample of the data.")


def check_h5_storage(path, handle, where=""):
    """Refuse an HDF5 file with a dataset that declares far more bytes than the file stores for it.

    Parameters
    ----------
    path : str
        The model file, named in the message.
    handle : h5py.File or h5py.Group
    where : str, default=""
        Prefix for the dataset's name (``"model.weights.h5:"`` inside a ``.keras`` archive).

    Returns
    -------
    stored : int
        Bytes of weights the file holds, over all datasets.
    """
    import h5py

    found, total = [], [0]

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and not found:
            declared = int(item.size) * item.dtype.itemsize
            stored = item.id.get_storage_size()
            total[0] += min(declared, stored)
            if declared > _STORAGE_SLACK and declared > 2 * stored + _STORAGE_SLACK:
                found.append((name, item.shape, declared, stored))

    handle.visititems(visit)
    if found:
        name, shape, declared, stored = found[0]
        raise WeightkitError(
            f"{path}: weight dataset {where}{name} declares shape {tuple(shape)} ({_size(declared)}) but the file "
            f"stores {_size(stored)} of it; refusing to allocate it (the file is truncated or forged): save the "
            "model again with model.save('model.keras').")
    return total[0]
