"""Open HDF5 files that hold their own weights: every opener of weightkit goes through :func:`open_h5`.

HDF5 can keep a dataset's values outside the file: *external storage* (raw bytes in other files,
``dataset.external``), *virtual datasets* (values mapped from other files' datasets,
``dataset.is_virtual``), and *external links* (a name that opens another file). h5py follows all
three silently when a dataset is read, so a forged model file can make a reader take
``/etc/passwd`` as kernel weights, or hang on a FIFO. Keras never writes any of them, nor soft
links, nor a group linked from two places (a link cycle makes a recursive walk run forever), and
its own ``.keras`` loader refuses the first ones (``keras/src/saving/saving_lib.py``,
``safe_get_h5_dataset``).

:func:`check_self_contained` walks the file's links without following any, and refuses in one
line the first link or dataset that is not stored inside the file, before a byte of any dataset
is read. It opens no other file, so an external file that is a FIFO cannot block it.
"""

import contextlib

from weightkit.analysis.errors import WeightkitError

__all__ = ["FIX", "MAX_H5_DEPTH", "check_self_contained", "open_h5"]

#: Deepest group nesting accepted (Keras' own files nest a few levels: a nested model's RNN cell).
MAX_H5_DEPTH = 64

#: What the user should do, ending each message (a retrain backup says how to start over instead).
FIX = "save the model again with model.save('model.keras')"


@contextlib.contextmanager
def open_h5(source, path, *, where="", fix=FIX):
    """An ``h5py.File`` open read-only, refused unless everything in it is stored inside it.

    Parameters
    ----------
    source : str or file-like
        What h5py opens (a path, or a seekable window on a zip member).
    path : str
        The file the user named, in messages.
    where : str, default=""
        Prefix for names inside ``path`` (``"model.weights.h5:"`` inside a ``.keras`` archive).
    fix : str, default=FIX
        What the user should do, ending the message.

    Yields
    ------
    h5py.File

    Raises
    ------
    WeightkitError
        As :func:`check_self_contained`. What h5py raises for a file that is not HDF5 (``OSError``)
        propagates: the caller words it.
    """
    import h5py

    with h5py.File(source, "r") as handle:
        check_self_contained(path, handle, where, fix=fix)
        yield handle


def _name(prefix, name):
    return f"{prefix}/{name}" if prefix else name


def check_self_contained(path, handle, where="", *, fix=FIX):
    """Refuse an HDF5 file whose links or datasets reach outside it, or whose groups form a cycle.

    Parameters
    ----------
    path : str
        Named in the message.
    handle : h5py.File
    where : str, default=""
        Prefix for names inside the file.
    fix : str, default=FIX
        What the user should do, ending the message.

    Raises
    ------
    WeightkitError
        A soft or external link (any link that is not a plain hard link), a dataset with external
        storage, a virtual dataset, a dataset whose layout is not one HDF5 keeps inside the file,
        a group linked from two places (a cycle among them), or nesting deeper than ``MAX_H5_DEPTH``.
    """
    import h5py

    start = f"{path}: {where}"
    groups = {h5py.h5o.get_info(handle.id).addr: "/"}
    stack = [(handle, "", 0)]
    while stack:
        group, prefix, depth = stack.pop()
        if depth > MAX_H5_DEPTH:
            raise WeightkitError(f"{start}{prefix} nests groups more than {MAX_H5_DEPTH} deep (Keras' own files "
                                 f"nest a few levels); refusing to walk it (a forged file?): {fix}.")
        for name in group:
            full = _name(prefix, name)
            info = group.id.links.get_info(name.encode("utf-8", "surrogateescape"))
            if info.type != h5py.h5l.TYPE_HARD:
                raise WeightkitError(f"{start}{full} {_link_text(group, name, info.type)}; Keras never writes links, "
                                     f"so refusing to follow it (a forged file?): {fix}.")
            item = group[name]
            if isinstance(item, h5py.Group):
                seen = groups.get(info.u)
                if seen is not None:
                    what = ("links back to its ancestor {!r} (a link cycle" if _is_ancestor(seen, full)
                            else "is a second link to group {!r} (one group under two names").format(seen)
                    raise WeightkitError(f"{start}{full} {what}, which Keras never writes); refusing to walk it "
                                         f"(a forged file?): {fix}.")
                groups[info.u] = full
                stack.append((item, full, depth + 1))
            elif isinstance(item, h5py.Dataset):
                _check_dataset(start, full, item, fix)


def _is_ancestor(seen, full):
    return seen == "/" or full.startswith(seen + "/")


def _link_text(group, name, link_type):
    import h5py

    link = group.get(name, getlink=True) if link_type in (h5py.h5l.TYPE_SOFT, h5py.h5l.TYPE_EXTERNAL) else None
    if isinstance(link, h5py.ExternalLink):
        return f"is an external link to {link.filename}:{link.path}"
    if isinstance(link, h5py.SoftLink):
        return f"is a soft link to {link.path}"
    return f"is a user-defined link (type {link_type})"


def _check_dataset(start, full, dataset, fix):
    """Refuse a dataset whose values are not stored in the file; reads its creation properties only."""
    import h5py

    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        files = ", ".join(repr(entry[0].decode("utf-8", "replace") if isinstance(entry[0], bytes) else entry[0])
                          for entry in (dataset.external or []))
        raise WeightkitError(f"{start}{full} keeps its values in other files ({files}: HDF5 external storage); "
                             f"refusing to read them (a forged file?): {fix}.")
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise WeightkitError(f"{start}{full} is a virtual dataset (its values are mapped from other files); "
                             f"refusing to read it (a forged file?): {fix}.")
    if layout not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        raise WeightkitError(f"{start}{full} is not stored inside the file (HDF5 layout {layout}); refusing to "
                             f"read it: {fix}.")
