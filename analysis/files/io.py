"""Atomic, non-clobbering output: temporary file (or folder) beside the target, then rename.

Temporary names are ``.NAME.HOST-PID-RANDOM.part[SUFFIX]`` beside the output (``NAME`` shortened
with a hash when long, so the temporary name stays under 255 bytes). A run removes the ones a
killed run on this machine left for the same output (their process is gone), and no others.

No clobbering, even under races: without ``force`` the final step is an exclusive rename
(``renameat2(RENAME_NOREPLACE)``, else ``link`` then ``unlink``), which fails when anything is at
the output by then, whether it was there when the run began or another run to the same output put
it there meanwhile: that output stays and this run is refused in one line. Only ``force`` (the
commands' ``--force``) lets the final step replace a file.

An output folder given as a symbolic link to a folder is written into the link's target (the link
stays, and now leads to the new output), as every earlier folder of an output path is followed.
"""

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile

from weightkit.analysis.errors import WeightkitError

__all__ = ["OUTPUT_MARKER", "full_disk_errno", "full_disk_error",
           "is_weightkit_output", "check_output", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json",
           "atomic_path", "atomic_directory", "temporary_path", "named_if_full"]


def check_output(path, *, force=False, directory=False, inputs=()):
    """Refuse to replace an existing output without ``force``; check the parent is writable.

    Parameters
    ----------
    path : str
        The final output path.
    force : bool, default=False
    directory : bool, default=False
        The output is a folder: an existing *empty* folder is accepted, and a link to a folder stands
        for the folder it leads to.
    inputs : sequence of str, default=()
        The run's input files or folders (None and ``sklearn:NAME`` are ignored). An output that
        is one of them, or a folder holding one, is refused even with ``force``: replacing it
        would destroy the input.

    Returns
    -------
    str
        The output path; for a folder given as a link, the folder the link leads to.
    """
    path = os.fspath(path)
    if directory:
        path = _through_link(path)
    _refuse_inputs(path, inputs)
    if os.path.lexists(path):
        if directory and os.path.isdir(path) and not os.listdir(path):
            pass
        elif directory and os.path.isdir(path) and not is_weightkit_output(path):
            raise WeightkitError(
                f"{path}: folder is not empty and weightkit did not write it (no {OUTPUT_MARKER} in it), so it is "
                "never replaced, not even with --force; choose another output folder or empty it yourself."
            )
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


#: The file weightkit leaves in every output folder it writes: only such a folder is replaced by --force.
OUTPUT_MARKER = ".weightkit-output"


def is_weightkit_output(path):
    """Whether ``path`` is a folder that weightkit wrote (it holds :data:`OUTPUT_MARKER`)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, OUTPUT_MARKER))


def _through_link(path):
    """An output folder given as a symbolic link: the folder it leads to; a link to anything else is refused.

    Writing through the link (rather than replacing the link by a folder) is what every earlier link
    in an output path already gets, and what the user who made the link meant by it.
    """
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if not os.path.isdir(target):
        what = "is not a folder" if os.path.lexists(target) else "does not exist"
        raise WeightkitError(f"{path}: is a link to {target}, which {what}; give a folder as the output, or "
                             "change or remove the link.")
    return target


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


#: Longest output name kept whole in a temporary name; longer ones keep their start and a hash.
_LONG_NAME = 96
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _short_name(name):
    if len(name.encode()) <= _LONG_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return name.encode()[:_LONG_NAME - 17].decode(errors="ignore") + "~" + digest


def _temporary_prefix(path):
    """``.NAME.HOST-PID-`` for the temporaries of ``path``, and removes this output's stale ones."""
    parent, name = os.path.split(os.path.abspath(path))
    short = _short_name(name)
    _remove_stale(parent, short)
    return f".{short}.{_HOST}-{os.getpid()}-"


def _remove_stale(parent, short):
    """Remove ``.SHORT.HOST-PID-RANDOM.part*`` / ``.old`` left in ``parent`` by dead processes of this host."""
    pattern = re.compile(re.escape(f".{short}.{_HOST}-") + r"(\d+)-[a-z0-9_]{8}\.(part|old)")
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for entry in names:
        match = pattern.match(entry)
        if match is None or _alive(int(match.group(1))):
            continue
        stale = os.path.join(parent, entry)
        if os.path.isdir(stale) and not os.path.islink(stale):
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(stale)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _appeared(path):
    return WeightkitError(
        f"{path}: appeared while this run was writing it (another run to the same output?); it was left as it "
        "is and nothing was written: choose another path, or pass --force to replace it."
    )


_RENAME_NOREPLACE = 1


def _rename_noreplace(source, target):
    """Rename ``source`` to ``target`` unless ``target`` exists (atomic where the system allows).

    Raises
    ------
    FileExistsError
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), target)
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), target)
    if os.path.isdir(source) and not os.path.islink(source):
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", target)
        os.rename(source, target)  # fails on a non-empty folder
    else:
        os.link(source, target)  # fails if target exists
        os.unlink(source)


def _finish(temporary, path, replace):
    """Put ``temporary`` at ``path``: replacing a file there only when ``replace`` (``--force``), else if absent.

    Raises
    ------
    WeightkitError
        Without ``replace``, when anything is at ``path`` by now (another run's output).
    """
    if not replace:
        try:
            _rename_noreplace(temporary, path)
        except FileExistsError:
            raise _appeared(path) from None
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise _appeared(path) from None
            raise
        return
    if os.path.isdir(path) and not os.path.islink(path):
        raise WeightkitError(f"{path}: is a folder; a file output never replaces a folder: choose another path.")
    os.replace(temporary, path)


def _suffix_of(path):
    suffix = os.path.splitext(path)[1]
    return suffix if len(suffix) <= 16 else ""


#: errno of a full disk or file-size limit: ENOSPC, EDQUOT, EFBIG.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def full_disk_error(error):
    """The first error in ``error``'s chain (itself, then its causes) that is a full disk, and its errno.

    ENOSPC, EDQUOT or EFBIG (a file-size limit), from ``errno`` or from the text of errors that
    carry only that (HDF5's ``errno = 28``, TensorFlow's "No space left on device" / "File too
    large"). ``(None, None)`` when there is none.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        code = getattr(error, "errno", None)
        if code not in _FULL:
            text = str(error)
            found = re.search(r"errno = (\d+)", text)
            code = int(found.group(1)) if found else next(
                (number for number in _FULL if os.strerror(number).lower() in text.lower()), None)
        if code in _FULL:
            return error, code
        error = error.__cause__ or error.__context__
    return None, None


def full_disk_errno(error):
    """ENOSPC, EDQUOT or EFBIG when ``error`` (or what caused it) is a full disk, else None.

    See :func:`full_disk_error`.
    """
    return full_disk_error(error)[1]


@contextlib.contextmanager
def named_if_full(path):
    """A full disk while writing ``path``'s temporary is reported as an OSError naming ``path``.

    A plain ``write`` (matplotlib, zipfile, our own) raises ENOSPC without a file name, and HDF5
    puts ``errno = 28`` in its text only.
    """
    try:
        yield
    except OSError as error:
        code = full_disk_errno(error)
        if code is not None:
            raise OSError(code, os.strerror(code), path) from error
        raise


def temporary_path(path, *, suffix=None):
    """A fresh temporary name beside ``path`` (``.NAME.HOST-PID-RANDOM.part[SUFFIX]``), not created.

    Removes the temporaries that dead runs left for the same output. ``suffix`` defaults to the
    output's own (writers such as Keras insist on ``.keras``).
    """
    path = os.fspath(path)
    suffix = suffix if suffix is not None else _suffix_of(path)
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=f".part{suffix}",
                                         dir=os.path.dirname(os.path.abspath(path)))
    os.close(handle)
    os.unlink(temporary)  # some writers (Keras) refuse an existing file
    return temporary


@contextlib.contextmanager
def atomic_path(path, *, suffix=None, force=False):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Whatever is written to the yielded path appears at ``path`` all at once, or not at all.

    Parameters
    ----------
    path : str
    suffix : str, default=None
        The temporary's suffix (default: the output's own).
    force : bool, default=False
        Replace a file at ``path``. Without it nothing at ``path`` is ever replaced: if something is
        there by the final rename (another run to the same output created it meanwhile),
        :class:`WeightkitError` says so and that output stays.
    """
    path = os.fspath(path)
    temporary = temporary_path(path, suffix=suffix)
    try:
        with named_if_full(path):
            yield temporary
        _finish(temporary, path, replace=force)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.lexists(temporary):
            os.unlink(temporary)


def atomic_write_bytes(path, data, *, force=False):
    """Write ``data`` to ``path`` atomically; replace a file there only with ``force`` (see :func:`atomic_path`)."""
    with atomic_path(path, force=force) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path, text, *, force=False):
    """Write ``text`` (UTF-8) to ``path`` atomically; replace a file there only with ``force``."""
    atomic_write_bytes(path, text.encode("utf-8"), force=force)


def atomic_write_json(path, document, *, force=False):
    """Write a JSON document atomically, indented, keys in insertion order; replace only with ``force``."""
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n", force=force)


@contextlib.contextmanager
def atomic_directory(path, *, force=False):
    """Yield a temporary folder beside ``path``; on success it becomes ``path``.

    An interrupted run leaves at most a hidden ``.NAME.part*`` folder, never a half output. Without
    ``force`` the final rename only takes an absent name or an empty folder (atomically: another run
    that filled it meanwhile keeps its output and this one is refused); with ``force`` an earlier
    weightkit output folder is replaced. A link to a folder is written through (see the module notes).
    """
    path = check_output(path, force=force, directory=True)
    parent = os.path.dirname(os.path.abspath(path))
    temporary = tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".part", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it 0700; the output folder gets the usual mode
    try:
        with named_if_full(path):
            yield temporary
        with open(os.path.join(temporary, OUTPUT_MARKER), "w", encoding="utf-8") as handle:
            handle.write("written by weightkit; `--force` may replace this folder\n")
        _finish_directory(temporary, path, force)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def _finish_directory(temporary, path, force):
    """Rename the finished folder ``temporary`` onto ``path`` (see :func:`atomic_directory`)."""
    if not force or not os.path.lexists(path):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(temporary, path)  # takes an empty folder only, atomically
            else:
                _rename_noreplace(temporary, path)
        except FileExistsError:
            raise _appeared(path) from None
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise _appeared(path) from None
            raise
        return
    if os.listdir(path) and not is_weightkit_output(path):
        check_output(path, force=force, directory=True)  # refused: something else moved in
    backup = tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".old", dir=os.path.dirname(os.path.abspath(path)))
    os.rmdir(backup)
    os.replace(path, backup)
    os.replace(temporary, path)
    shutil.rmtree(backup, ignore_errors=True)
