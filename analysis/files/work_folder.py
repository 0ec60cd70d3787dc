"""A resumable command's work folder and lock: hidden beside the output, marked, one run at a time.

``retrain`` and ``shrink`` keep what an interrupted run needs (a per-epoch backup, stage checkpoints)
in ``.OUT.COMMAND`` beside their output ``OUT``, and hold the lock ``.OUT.lock`` for the whole run.

- The folder is created holding :data:`MARKER`. Starting over (a fresh run, ``--force``) and
  finishing remove only what the command writes there (its names in :data:`OWNED`, and their
  temporaries), then the folder once it is empty.
- A work path that is a file or a link, an unmarked folder holding anything, a marked folder
  holding files the command did not write, or one holding an input, is refused in one line naming
  it and the way out, before anything is deleted: ``--force`` never deletes a user's files.
- :func:`output_lock` holds an exclusive ``flock`` on the lock file: a second run to the same output
  is refused while the first lives; the kernel releases the lock when its process dies, even by
  SIGKILL, so a dead run's lock file is simply taken over. A lock path that is not a plain file (a
  link, a folder, a FIFO) is refused, never followed.
"""

import contextlib
import errno
import fcntl
import fnmatch
import os
import re
import stat

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.io import OUTPUT_MARKER

__all__ = ["MARKER", "OWNED", "WorkFolder", "output_lock"]

#: The file that marks a folder as a weightkit work folder (the same as an output folder's marker).
MARKER = OUTPUT_MARKER

#: What each resumable command writes in its work folder: file names or ``fnmatch`` patterns. One table, so that
#: a new file is one entry; anything else found there is the user's.
OWNED = {
    "retrain": ("latest.weights.h5", "training_metadata.json", "history.csv", "outputs.json",
                ".latest.part.weights.h5", "training_metadata.json.part", "*.bkp"),
    "shrink": ("state.json", "merged.keras", "sliced.keras"),
}

#: What each command keeps there, for messages.
_KEEPS = {"retrain": "its backup", "shrink": "its checkpoints"}

#: A temporary of ``weightkit.analysis.files.io`` for the output NAME: ``.NAME.HOST-PID-RANDOM.part*`` or ``.old``.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{6}-\d+-[a-z0-9_]{8}\.(part|old)(\..*)?")


class WorkFolder:
    """The work folder ``path`` of one resumable ``command``.

    Parameters
    ----------
    path : str
    command : {"retrain", "shrink"}
        A key of :data:`OWNED`.
    output : str, default=None
        The run's output, named in messages and keying the lock (default: ``path``).

    Examples
    --------
    >>> work = WorkFolder.beside("small", "shrink")  # doctest: +SKIP
    >>> work.check(inputs=("model.keras",))  # doctest: +SKIP
    >>> with work.lock():  # doctest: +SKIP
    ...     work.start(resume=False)
    """

    def __init__(self, path, command, *, output=None):
        if command not in OWNED:
            raise ValueError(f"Invalid value for argument `command`. Expected one of {sorted(OWNED)}. "
                             f"Received: command={command!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.command = command
        self.output = os.fspath(output) if output is not None else self.path

    @classmethod
    def beside(cls, output, command):
        """The work folder of ``command`` writing ``output``: ``.NAME.COMMAND`` beside it."""
        output = os.fspath(output)
        directory, name = os.path.split(os.path.abspath(output.rstrip(os.sep) or output))
        return cls(os.path.join(directory, f".{name}.{command}"), command, output=output)

    def _ours(self, name):
        if name == MARKER:
            return True
        temporary = _TEMPORARY.fullmatch(name)
        name = temporary.group("name") if temporary else name
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in OWNED[self.command])

    def check(self, inputs=()):
        """Refuse a work path that is not this command's folder, or a folder holding an input or a user's file.

        Raises
        ------
        WeightkitError
            In one line naming the path and the way out; nothing is deleted.
        """
        path, output, command = self.path, self.output, self.command
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            kind = "a link" if os.path.islink(path) else "a file"
            raise WeightkitError(f"{output}: {command} keeps {_KEEPS[command]} in {path}, which exists and is {kind}, "
                                 f"not {command}'s folder; move or remove it, or choose another output.")
        real_path = os.path.realpath(path)
        for item in inputs:
            if item and os.path.exists(item):
                real = os.path.realpath(item)
                if real == real_path or real.startswith(real_path + os.sep):
                    raise WeightkitError(f"{item}: is inside {path}, the work folder {command} deletes when it starts "
                                         f"over or finishes {output}; move the input out of that folder first.")
        if not os.path.isdir(path):
            return
        names = sorted(os.listdir(path))
        if names and MARKER not in names:
            raise WeightkitError(f"{output}: {path} holds files {command} did not write (no {MARKER} in it), so it is "
                                 "never deleted, not even with --force; move them or choose another output.")
        foreign = [name for name in names if not self._ours(name) or not _plain_file(os.path.join(path, name))]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise WeightkitError(f"{output}: {path} holds files {command} did not write ({shown}), so they are never "
                                 "deleted, not even with --force; move them out or choose another output.")

    def interrupted(self):
        """Whether an earlier run left its folder here: a run that failed with nothing to resume removes it."""
        return os.path.isdir(self.path) and not os.path.islink(self.path)

    def holds(self, name):
        """Whether the folder holds the file ``name``."""
        return os.path.isfile(os.path.join(self.path, name))

    def start(self, *, resume=False):
        """Check the folder, remove an earlier run's work unless ``resume``, and create it with its marker."""
        self.check()
        if not resume:
            self.remove()
        os.makedirs(self.path, exist_ok=True)
        marker = os.path.join(self.path, MARKER)
        if not os.path.isfile(marker):
            with open(marker, "w", encoding="utf-8") as handle:
                handle.write(f"{self.command}'s work, written by weightkit; --force or a finished run removes it\n")

    def remove(self, *, strict=True):
        """Remove the command's own files, then the folder if nothing else is in it.

        Parameters
        ----------
        strict : bool, default=True
            Refuse first (see :meth:`check`) when the folder holds anything else. ``False``, for the
            clean-up after a failure: remove what is ours and leave the rest, quietly.
        """
        if not os.path.lexists(self.path):
            return
        if strict:
            self.check()
        elif os.path.islink(self.path) or not os.path.isdir(self.path):
            return
        for name in os.listdir(self.path):
            if name != MARKER and self._ours(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.path, name))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, MARKER))
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(self.path)  # something appeared meanwhile: left as it is

    def lock(self):
        """The output's lock (see :func:`output_lock`), held around the whole run."""
        return output_lock(self.output, what=self.command)


def _plain_file(path):
    return os.path.isfile(path) and not os.path.islink(path)


def _open_lock(path):
    """Open (or create) the lock file ``path``; a link, folder or other non-file there is refused."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        descriptor = None
    if descriptor is not None and stat.S_ISREG(os.fstat(descriptor).st_mode):
        return os.fdopen(descriptor, "r+", encoding="utf-8")
    if descriptor is not None:
        os.close(descriptor)
    raise WeightkitError(f"{path}: is not a plain file but weightkit keeps its lock there (one run per output); "
                         "move or remove it, or choose another output.")


@contextlib.contextmanager
def output_lock(output, *, what="run"):
    """Hold the lock of ``output`` (``.NAME.lock`` beside it) for the block; refuse if another run holds it.

    Parameters
    ----------
    output : str
        The run's main output.
    what : str, default="run"
        The kind of run, for the message (``"retrain"``, ``"shrink"``).

    Raises
    ------
    WeightkitError
        When another live process holds the lock, or the lock path is not a plain file.
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(output).rstrip(os.sep) or output))
    path = os.path.join(parent, f".{name}.lock")
    while True:
        handle = _open_lock(path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read(32).strip() or "?"
            handle.close()
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise WeightkitError(
                f"{output}: another {what} to this output is running (process {holder}, lock {path}); wait for it to "
                "finish or choose another output.") from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path, follow_symlinks=False).st_ino
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
