"""Atomic, non-clobbering output: temporary file (or folder) beside the target, then rename."""

import contextlib
import json
import os
import shutil
import tempfile

from analysis.errors import WeightkitError

__all__ = ["check_output", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_path", "atomic_directory"]


def check_output(path, *, force=False, directory=False, inputs=()):
    """Refuse to replace an existing output without ``force``; check the parent is writable.

    Parameters
    ----------
    path : str
        The final output path.
    force : bool, default=False
    directory : bool, default=False
        The output is a folder: an existing *empty* folder is accepted.
    inputs : sequence of str, default=()
        The run's input files or folders (None and ``sklearn:NAME`` are ignored). An output that
        is one of them, or a folder holding one, is refused even with ``force``: replacing it
        would destroy the input.
    """
    path = os.fspath(path)
    _refuse_inputs(path, inputs)
    if os.path.lexists(path):
        if directory and os.path.isdir(path) and not os.listdir(path):
            pass
        elif directory and not os.path.isdir(path):
            raise WeightkitError(f"{path}: exists and is not a folder; choose another output folder.")
        elif not directory and os.path.isdir(path):
            raise WeightkitError(f"{path}: is a folder; give a file name for the output.")
        elif not force:
            what = "folder is not empty" if directory else "already exists"
            raise WeightkitError(f"{path}: {what}; pass --force to replace it or choose another path.")
    parent = os.path.dirname(os.path.abspath(path))
    blocker = _existing_file_above(parent)
    if blocker is not None:
        raise WeightkitError(f"{path}: {blocker} is a file, not a folder; choose an output path in a folder.")
    if not os.path.isdir(parent):
        raise WeightkitError(f"{path}: folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK):
        raise WeightkitError(f"{path}: cannot write in {parent} (permission denied); choose another output path.")
    return path


def _refuse_inputs(path, inputs):
    target = os.path.realpath(path)
    for item in inputs:
        if item is None or not os.path.exists(item):
            continue
        real = os.path.realpath(item)
        if real == target or real.startswith(target.rstrip(os.sep) + os.sep):
            raise WeightkitError(
                f"{path}: {'is' if real == target else 'holds'} the input {item}, which is never modified or "
                "deleted (not even with --force); choose another output path."
            )


def _existing_file_above(folder):
    """The nearest existing ancestor of ``folder`` (itself included) when it is not a folder, else None."""
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    return None if os.path.isdir(folder) else folder


@contextlib.contextmanager
def atomic_path(path, *, suffix=None):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Whatever is written to the yielded path appears at ``path`` all at once, or not at all.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = suffix if suffix is not None else os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".part{suffix}", dir=directory)
    os.close(handle)
    os.unlink(temporary)  # some writers (Keras) refuse an existing file
    try:
        yield temporary
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.lexists(temporary):
            os.unlink(temporary)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, document):
    """Write a JSON document atomically, indented, keys in insertion order."""
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path, *, force=False):
    """Yield a temporary folder beside ``path``; on success it replaces ``path``.

    An interrupted run leaves at most a hidden ``.NAME.part*`` folder, never a half output.
    """
    path = check_output(path, force=force, directory=True)
    parent = os.path.dirname(os.path.abspath(path))
    temporary = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.", suffix=".part", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it 0700; the output folder gets the usual mode
    try:
        yield temporary
        if os.path.lexists(path):
            backup = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.rmdir(backup)
            os.replace(path, backup)
            os.replace(temporary, path)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(temporary, path)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
